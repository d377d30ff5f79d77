"""Backends and keys: ONNX Runtime export + parity gate, the shared fp32 key, auto from the table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore.extract import extract
from embedstore.extractors import load_extractor
from embedstore.extractors.backends import ParityError, min_cosine, probe_items
from embedstore.images import load_image
from tests.test_extract import write_dataset


@pytest.fixture(autouse=True)
def _private_caches(tmp_path, monkeypatch):
    """Exported graphs and the user's backend table live in the test's folder."""
    monkeypatch.setenv("EMBEDSTORE_ONNX_CACHE", str(tmp_path / "onnx"))
    monkeypatch.setenv("EMBEDSTORE_BACKEND_TABLE", str(tmp_path / "table.json"))


TEXTS = ["a lesion on the back of a male patient", "melanoma", "the optic disc is present, vessels are present"]


def test_onnx_matches_torch_and_reuses_the_exported_graph(bert_dir, tmp_path):
    ref = load_extractor(bert_dir).encode_texts(TEXTS)
    ext = load_extractor(bert_dir, backend="onnx")
    out = ext.encode_texts(TEXTS)
    assert ext.backend == "onnxruntime" and ext.identity.runtime.startswith("onnxruntime ")
    assert ext.parity["text"] >= 0.99999 and min_cosine(ref, out) >= 0.99999
    graphs = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(graphs) == 1
    mtime = graphs[0].stat().st_mtime_ns
    again = load_extractor(bert_dir, backend="onnx")
    np.testing.assert_allclose(again.encode_texts(TEXTS), out, atol=1e-6)
    assert graphs[0].stat().st_mtime_ns == mtime  # exported once per identity, then reused


def test_parity_gate_refuses_a_broken_graph_and_nothing_is_written(store, tmp_path, vit_dir):
    import onnx
    from onnx import numpy_helper

    ext = load_extractor(vit_dir, backend="onnx")
    ext.encode_images(probe_items("image", 2))
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    model = onnx.load(str(graph))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:  # break the weights, keep the graph valid
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 16:
            init.CopyFrom(numpy_helper.from_array(rng.standard_normal(w.shape).astype(np.float32), init.name))
    onnx.save(model, str(graph))

    write_dataset(store, "toy", tmp_path / "img", range(6))
    with pytest.raises(ParityError, match=r"fails the parity gate: min per-row cosine .* < 0.999.*delete .*onnx"):
        extract(store, "toy", vit_dir, backend="onnx", progress=False, threads=1)
    assert store.embedding_tables() == []  # refused before anything was written

    from embedstore.cli.main import cli

    res = CliRunner().invoke(cli, ["--store", store.uri, "extract", "toy", "--model", vit_dir, "--backend", "onnx",
                                   "--no-progress"])
    assert res.exit_code == 1 and "fails the parity gate" in res.output and "Traceback" not in res.output
    graph.unlink()  # the fix the message names: export again
    assert extract(store, "toy", vit_dir, backend="onnx", progress=False, threads=1).computed == 6


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_cached_graph_is_exported_again(store, tmp_path, vit_dir, damage):
    """A cached graph ONNX Runtime cannot load (a copy cut short, a disk error) is rebuilt, not a protobuf error."""
    write_dataset(store, "toy", tmp_path / "img", range(4))
    first = extract(store, "toy", vit_dir, backend="onnx", progress=False, threads=1)
    (graph,) = (tmp_path / "onnx").glob("*.onnx")
    good = graph.read_bytes()
    graph.write_bytes(good[: len(good) // 3] if damage == "truncated" else b"\x08\x07not a protobuf" * 50)
    write_dataset(store, "more", tmp_path / "img2", range(10, 14))
    from embedstore.cli.main import cli

    res = CliRunner().invoke(cli, ["--store", store.uri, "extract", "more", "--model", vit_dir, "--backend", "onnx",
                                   "--no-progress", "--threads", "1", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["computed"] == 4, res.output
    assert graph.stat().st_size == len(good)  # exported again, in place
    ids, vecs = store.embeddings("more", first.model_key, "image", as_="numpy")
    ref = load_extractor(vit_dir).encode_images([load_image(r) for r in store.samples("more")["image_ref"].to_pylist()])
    assert ids == ["s10", "s11", "s12", "s13"] and min_cosine(ref, vecs) >= 0.999


def test_fp32_runtimes_share_a_key_lower_precision_keeps_its_own(bert_dir):
    idents = {(b, q): load_extractor(bert_dir, backend=b, quantize=q).identity
              for b, q in [("torch", None), ("torch", "bf16"), ("onnx", None), ("onnx", "8bit")]}
    torch_fp32, onnx_fp32 = idents[("torch", None)], idents[("onnx", None)]
    assert onnx_fp32.key == torch_fp32.key  # the rule: fp32 paths share one key
    assert onnx_fp32.runtime.startswith("onnxruntime ") and torch_fp32.runtime == "torch"
    assert len({i.key for i in idents.values()}) == 3  # bf16 and int8: keys of their own
    assert idents[("onnx", "8bit")].dtype == "int8"
    assert idents[("onnx", "8bit")].backend_version.startswith("onnxruntime ")
    assert "backend" not in torch_fp32.keyed_fields()  # the same key as before backends existed


def test_stores_filled_by_torch_and_onnx_fp32_reuse_each_others_rows(tmp_path, bert_dir):
    from embedstore import Store

    stores = {b: Store(tmp_path / f"lab-{b}") for b in ("torch", "onnx")}
    for b, st in stores.items():  # two machines of a lab, each on its own fp32 runtime
        write_dataset(st, "toy", tmp_path / "img", range(10))
        first = extract(st, "toy", bert_dir, modality="text", backend=b, progress=False, threads=1)
        assert first.computed == 10
    a, b = (stores[k].embeddings("toy", first.model_key, "text", as_="numpy")[1] for k in ("torch", "onnx"))
    assert min_cosine(a, b) >= 0.99999  # the tolerance the shared key stands for
    for filled, other in (("torch", "onnx"), ("onnx", "torch")):
        again = extract(stores[filled], "toy", bert_dir, modality="text", backend=other, progress=False, threads=1)
        assert (again.computed, again.forward_calls, again.other_keys) == (0, 0, [])
        write_dataset(stores[filled], "copy", tmp_path / "img", range(10))  # same content, another dataset
        copy = extract(stores[filled], "copy", bert_dir, modality="text", backend=other, progress=False, threads=1)
        assert (copy.reused, copy.computed, copy.forward_calls) == (10, 0, 0)
    # lower precision: not within the tolerance, so computed under its own key, the fp32 rows untouched
    table = first.result("text").table
    version = stores["torch"].version(table)
    bf16 = extract(stores["torch"], "toy", bert_dir, modality="text", quantize="bf16", backend="torch",
                   progress=False, threads=1)
    assert bf16.computed == 10 and bf16.model_key != first.model_key and bf16.other_keys == [first.model_key]
    assert stores["torch"].version(table) == version


def test_a_store_written_before_the_rule_keeps_its_onnx_key_and_vectors(store, tmp_path, bert_dir):
    import dataclasses

    from embedstore.identity import ModelIdentity

    write_dataset(store, "toy", tmp_path / "img", range(6))
    now = load_extractor(bert_dir, backend="onnx").identity
    # what main wrote for --backend onnx before fp32 keys were shared
    old = dataclasses.replace(now, backend="onnxruntime", backend_version="onnxruntime 1.32/opset 17",
                              library_versions={})
    assert old.key != now.key
    samples = store.samples("toy")
    vectors = np.random.default_rng(0).standard_normal((6, old.dim("text"))).astype(np.float32)
    store.write_embeddings("toy", old, "text", samples["sample_id"].to_pylist(), vectors,
                           samples["text_sha256"].to_pylist())
    old_table = store.embedding_tables()[0]
    version = store.version(old_table)
    (registered,) = store.models()
    assert ModelIdentity.from_json(registered.to_json()).key == old.key  # read back under the key it was written
    rep = extract(store, "toy", bert_dir, modality="text", backend="onnx", progress=False, threads=1)
    assert rep.model_key == now.key and rep.computed == 6 and rep.other_keys == [old.key]  # not re-keyed
    assert store.version(old_table) == version
    ids, kept = store.embeddings("toy", old.key, "text", as_="numpy")
    np.testing.assert_array_equal(kept, vectors)


def test_int8_is_explicit_and_reports_its_cosine(bert_dir):
    ext = load_extractor(bert_dir, backend="onnx", quantize="8bit")
    assert ext.encode_texts(TEXTS).shape == (3, 32)
    assert 0.0 < ext.parity["text"] <= 1.0  # lossy: reported, not gated


def _write_table(path, model_id, entries):
    path.write_text(json.dumps({"models": {model_id: entries}}))


def _onnx_entry(**kw):
    return {"backend": "onnxruntime", "dtype": "fp32", "modality": "text", "quiet_speedup": 1.6,
            "loaded_speedup": 2.4, "min_round_speedup": 1.2, "min_cos": 1.0, **kw}


def test_auto_is_deterministic_whatever_the_table_or_the_load(bert_dir, tmp_path):
    from embedstore.cpu import competitors
    from embedstore.extractors import canonical_id

    mid = canonical_id(bert_dir)
    fp32_key = load_extractor(bert_dir, backend="torch").identity.key
    unlisted = load_extractor(bert_dir, backend="auto")
    assert (unlisted.backend, unlisted.dtype) == ("torch", "fp32") and "no measured entry" in unlisted.backend_reason
    entries = [{"backend": "torch", "dtype": "bf16", "modality": "text", "quiet_speedup": 3.0,
                "loaded_speedup": 2.8, "min_round_speedup": 2.0, "min_cos": 0.99998},
               _onnx_entry(),
               {"backend": "onnxruntime", "dtype": "int8", "modality": "text", "quiet_speedup": 3.1,
                "loaded_speedup": 3.1, "min_cos": 0.95}]
    table = tmp_path / "table.json"
    _write_table(table, mid, entries)
    picks = set()
    for n in (0, 2):  # the machine as it is, then with two CPU-bound competitors: auto reads no load
        with competitors(n):
            picks |= {(e.backend, e.dtype, e.identity.key) for e in
                      (load_extractor(bert_dir, backend="auto") for _ in range(2))}
    _write_table(table, mid, entries[::-1])  # the order of the rows does not matter
    picks.add((lambda e: (e.backend, e.dtype, e.identity.key))(load_extractor(bert_dir, backend="auto")))
    assert picks == {("onnxruntime", "fp32", fp32_key)}  # bf16 and int8 are faster but have keys of their own
    for broken in ({"min_cos": 0.9999}, {"loaded_speedup": 1.2}, {"min_round_speedup": 0.9}):
        _write_table(table, mid, [entries[0], _onnx_entry(**broken)])
        ext = load_extractor(bert_dir, backend="auto")
        assert (ext.backend, ext.dtype, ext.identity.key) == ("torch", "fp32", fp32_key), broken
    asked = load_extractor(bert_dir, backend="auto", quantize="bf16")  # asked for: runs, under its own key
    assert (asked.backend, asked.dtype) == ("torch", "bf16") and asked.identity.key != fp32_key


def test_measure_on_a_dataset_prints_the_table_and_never_changes_the_key(store, bert_dir, tmp_path):
    from embedstore.cli.main import cli
    from embedstore.extractors import canonical_id

    write_dataset(store, "toy", tmp_path / "img", range(12),
                  texts=[("a lesion " * (1 + i % 5)).strip() for i in range(12)])
    key = load_extractor(bert_dir, backend="auto").identity.key
    res = CliRunner().invoke(cli, ["--store", store.uri, "backends", "--measure", "--model", bert_dir, "--dataset",
                                   "toy", "--rows", "8", "--batch-size", "4", "--repeats", "1", "--competitors",
                                   "1", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    rows = out["models"][canonical_id(bert_dir)]
    assert {(r["backend"], r["dtype"]) for r in rows} == {("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32")}
    assert all(r["rows"] == 8 and r["quiet_rows_per_s"] > 0 and r["loaded_rows_per_s"] > 0 for r in rows)
    ref = [r for r in rows if (r["backend"], r["dtype"]) == ("torch", "fp32")][0]
    assert ref["quiet_speedup"] == ref["loaded_speedup"] == 1.0
    ext = load_extractor(bert_dir, backend="auto")
    assert ext.backend_reason.startswith("auto: ") and ext.identity.key == key  # speed may change, the key never
    shown = out["auto"][canonical_id(bert_dir)]
    assert (shown["backend"], shown["dtype"]) == (ext.backend, ext.dtype)  # the table's pick, as auto runs it
    text = CliRunner().invoke(cli, ["backends"])
    assert text.exit_code == 0 and "fp32 (shared)" in text.output and "this CPU:" in text.output
    bad = CliRunner().invoke(cli, ["--store", store.uri, "backends", "--measure", "--model", bert_dir,
                                   "--dataset", "nope"])
    assert bad.exit_code == 1 and "nope" in bad.output and "Traceback" not in bad.output


def test_shipped_table_defaults_are_fast_quiet_and_loaded():
    from embedstore.extractors.backends import (AUTO_MIN_ROUND, AUTO_MIN_SPEEDUP, TABLE_FILE, auto_choice,
                                                entry_speedup)
    from embedstore.identity import FP32_SHARE_MIN_COS

    models = json.loads(TABLE_FILE.read_text())["models"]
    assert {"builtin:efficientnet-lite0", "builtin:minilm-l6"} <= set(models)
    for mid, entries in models.items():
        choice = auto_choice(mid, entries)
        assert choice.dtype == "fp32", mid  # the fp32 key, on every machine
        picked = [e for e in entries if (e["backend"], e["dtype"]) == (choice.backend, choice.dtype)]
        if choice.backend != "torch":
            assert all(entry_speedup(e) >= AUTO_MIN_SPEEDUP and e["min_round_speedup"] >= AUTO_MIN_ROUND
                       and e["min_cos"] >= FP32_SHARE_MIN_COS and e.get("loaded_speedup") for e in picked), mid
        assert auto_choice(mid, entries[::-1]) == choice  # deterministic


def test_onnx_session_is_built_once_with_the_extract_threads(store, tmp_path, bert_dir):
    ext = load_extractor(bert_dir, backend="onnx")
    write_dataset(store, "toy", tmp_path / "img", range(9))
    rep = extract(store, "toy", bert_dir, modality="text", batch_size=2, extractor=ext, progress=False, threads=1)
    assert rep.computed == 9 and rep.result("text").forward_calls == 5
    runner = ext._runners["text"]
    session = runner.session
    opts = session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    ext.encode_texts(TEXTS)
    assert ext._runners["text"] is runner and runner.session is session  # one session for every batch
