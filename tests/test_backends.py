"""Backends as part of the identity: ONNX Runtime export + parity gate, keys per backend, auto from the table."""

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
    assert ext.identity.backend == "onnxruntime" and ext.identity.dtype == "fp32"
    assert ext.parity["text"] >= 0.999 and min_cosine(ref, out) >= 0.999
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


def test_keys_differ_by_backend_and_torch_keys_are_unchanged(bert_dir):
    idents = {(b, q): load_extractor(bert_dir, backend=b, quantize=q).identity
              for b, q in [("torch", None), ("torch", "bf16"), ("onnx", None), ("onnx", "8bit")]}
    assert len({i.key for i in idents.values()}) == 4
    assert idents[("onnx", "8bit")].dtype == "int8"
    assert idents[("onnx", None)].backend_version.startswith("onnxruntime ")
    torch_fp32 = idents[("torch", None)]
    assert "backend" not in torch_fp32.keyed_fields()  # the same key as before backends existed


def test_second_run_with_another_backend_recomputes_only_under_its_own_key(store, tmp_path, bert_dir):
    write_dataset(store, "toy", tmp_path / "img", range(10))
    first = extract(store, "toy", bert_dir, modality="text", backend="torch", progress=False, threads=1)
    t_table = first.result("text").table
    t_version = store.version(t_table)
    second = extract(store, "toy", bert_dir, modality="text", backend="onnx", progress=False, threads=1)
    assert second.model_key != first.model_key and second.computed == 10 and second.reused == 0
    assert second.backend == "onnxruntime fp32" and second.other_keys == [first.model_key]
    assert store.version(t_table) == t_version  # the torch vectors are kept untouched
    again = extract(store, "toy", bert_dir, modality="text", backend="onnx", progress=False, threads=1)
    assert (again.computed, again.forward_calls) == (0, 0)
    a = store.read(t_table, columns=["sample_id", "vector"]).sort_by("sample_id")
    b = store.read(second.result("text").table, columns=["sample_id", "vector"]).sort_by("sample_id")
    assert min_cosine(np.stack(a["vector"].to_numpy(zero_copy_only=False)),
                      np.stack(b["vector"].to_numpy(zero_copy_only=False))) >= 0.999


def test_int8_is_explicit_and_reports_its_cosine(bert_dir):
    ext = load_extractor(bert_dir, backend="onnx", quantize="8bit")
    assert ext.encode_texts(TEXTS).shape == (3, 32)
    assert 0.0 < ext.parity["text"] <= 1.0  # lossy: reported, not gated


def _write_table(path, model_id, entries):
    path.write_text(json.dumps({"models": {model_id: entries}}))


def test_auto_is_deterministic_for_a_table_entry(bert_dir, tmp_path):
    from embedstore.extractors import canonical_id

    mid = canonical_id(bert_dir)
    unlisted = load_extractor(bert_dir, backend="auto")
    assert (unlisted.backend, unlisted.dtype) == ("torch", "fp32") and "no measured entry" in unlisted.backend_reason
    entries = [{"backend": "torch", "dtype": "bf16", "modality": "text", "speedup": 1.7, "min_cos": 0.9999},
               {"backend": "onnxruntime", "dtype": "fp32", "modality": "text", "speedup": 2.4, "min_cos": 1.0},
               {"backend": "onnxruntime", "dtype": "int8", "modality": "text", "speedup": 3.1, "min_cos": 0.95}]
    table = tmp_path / "table.json"
    _write_table(table, mid, entries)
    picks = {load_extractor(bert_dir, backend="auto").identity.key for _ in range(3)}
    _write_table(table, mid, entries[::-1])  # the order of the rows does not matter
    picks.add(load_extractor(bert_dir, backend="auto").identity.key)
    assert picks == {load_extractor(bert_dir, backend="onnx").identity.key}  # int8 is faster but not gated
    entries[1]["min_cos"] = 0.99  # the ONNX graph no longer passes: bf16 is the fastest gated path
    _write_table(table, mid, entries)
    ext = load_extractor(bert_dir, backend="auto")
    assert (ext.backend, ext.dtype) == ("torch", "bf16") and "1.70x" in ext.backend_reason


def test_measure_writes_the_table_auto_reads(bert_dir, tmp_path):
    from embedstore.cli.main import cli

    res = CliRunner().invoke(cli, ["backends", "--measure", "--model", bert_dir, "--batch-size", "4",
                                   "--repeats", "1", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    from embedstore.extractors import canonical_id

    rows = json.loads(res.output)["models"][canonical_id(bert_dir)]
    assert {(r["backend"], r["dtype"]) for r in rows} == {("torch", "fp32"), ("torch", "bf16"),
                                                          ("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    assert all(r["rows_per_s"] > 0 and -1 <= r["min_cos"] <= 1 for r in rows)
    ext = load_extractor(bert_dir, backend="auto")
    assert ext.backend_reason.startswith("auto: ") and "backend table" in ext.backend_reason
    shown = json.loads(res.output)["auto"][canonical_id(bert_dir)]
    assert (shown["backend"], shown["dtype"]) == (ext.backend, ext.dtype)  # the table's pick, as auto runs it


def test_auto_never_picks_a_backend_the_table_measured_slower(bert_dir, tmp_path):
    from embedstore.extractors import canonical_id
    from embedstore.extractors.backends import AUTO_MIN_SPEEDUP

    mid = canonical_id(bert_dir)
    table = tmp_path / "table.json"
    slow = [{"backend": "torch", "dtype": "bf16", "modality": "text", "speedup": 0.24, "min_cos": 0.99998},
            {"backend": "onnxruntime", "dtype": "fp32", "modality": "text", "speedup": 1.05, "min_cos": 1.0}]
    _write_table(table, mid, slow)  # bf16 slower, ONNX within noise of torch fp32: neither is taken
    ext = load_extractor(bert_dir, backend="auto")
    assert (ext.backend, ext.dtype) == ("torch", "fp32") and f"{AUTO_MIN_SPEEDUP}x" in ext.backend_reason
    assert ext.identity.key == load_extractor(bert_dir).identity.key
    # fast bare forward but slow end to end: the lower figure decides
    _write_table(table, mid, [{**slow[1], "speedup": 3.0, "e2e_speedup": 1.02}])
    assert load_extractor(bert_dir, backend="auto").backend == "torch"
    _write_table(table, mid, [{**slow[1], "speedup": 3.0, "e2e_speedup": 2.5}])
    ext = load_extractor(bert_dir, backend="auto")
    assert ext.backend == "onnxruntime" and "2.50x" in ext.backend_reason


def test_shipped_table_defaults_are_gated_and_faster():
    from embedstore.extractors.backends import (AUTO_MIN_SPEEDUP, PARITY_MIN, TABLE_FILE, auto_choice,
                                                entry_speedup)

    models = json.loads(TABLE_FILE.read_text())["models"]
    assert {"builtin:efficientnet-lite0", "builtin:minilm-l6"} <= set(models)
    for mid, entries in models.items():
        choice = auto_choice(mid, entries, ("fp32", "bf16"))
        picked = [e for e in entries if (e["backend"], e["dtype"]) == (choice.backend, choice.dtype)]
        if (choice.backend, choice.dtype) != ("torch", "fp32"):
            assert all(entry_speedup(e) >= AUTO_MIN_SPEEDUP and e["min_cos"] >= PARITY_MIN for e in picked), mid
        assert auto_choice(mid, entries[::-1], ("fp32", "bf16")) == choice  # deterministic


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
