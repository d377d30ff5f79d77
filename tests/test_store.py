"""The store's write path, versions, tags, registries and layering rules."""

from __future__ import annotations

import ast
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedstore import AmbiguousModelError, DimensionMismatchError, InputError, NotFoundError, Store
from embedstore.errors import KeyCollisionError
from embedstore.identity import ModelIdentity
from tests.helpers import sample_rows, toy_model


def test_same_rows_twice_keeps_one_row_per_key_and_makes_a_new_version(store):
    rows = pa.table({"k": ["a", "b", "c"], "x": [1, 2, 3]})
    first = store.upsert("t", rows, key="k")
    second = store.upsert("t", rows, key="k")
    assert store.read("t").num_rows == 3
    assert second.version == first.version + 1
    assert (second.inserted, second.updated) == (0, 3)


def test_skip_unchanged_writes_nothing_and_keeps_the_version(store):
    rows = sample_rows(["a", "b"])
    first = store.write_samples("ds", rows)
    again = store.write_samples("ds", rows)
    assert again.version == first.version and not again.changed and again.unchanged == 2
    changed = store.write_samples("ds", sample_rows(["a", "b"], labels=["0", "1"]))
    assert changed.version == first.version + 1 and changed.updated == 1


def test_duplicate_keys_in_one_write_keep_the_last_row_and_are_counted(store):
    first = store.upsert("t", pa.table({"k": ["a", "b", "a"], "x": [1, 2, 3]}), key="k")
    assert (first.inserted, first.deduplicated, first.attempts) == (2, 1, 1)
    again = store.upsert("t", pa.table({"k": ["b", "b"], "x": [4, 5]}), key="k")
    assert (again.updated, again.deduplicated) == (1, 1)
    assert sorted(store.read("t").to_pylist(), key=lambda r: r["k"]) == [{"k": "a", "x": 3}, {"k": "b", "x": 5}]


def test_empty_keys_are_refused_with_the_column_named(store):
    with pytest.raises(InputError, match="empty key 'k'"):
        store.upsert("t", pa.table({"k": ["a", None]}), key="k")


def test_every_keyed_table_declares_its_key(store):
    from embedstore.schema import declared_key
    from embedstore.runs import RunRecord, new_run_id, record_run

    store.write_samples("ds", sample_rows(["a"]))
    store.write_embeddings("ds", toy_model(dim=4), "image", ["a"], np.ones((1, 4)), ["h"])
    store.register_alignment("g", "mean_shift", {}, np.zeros(4))
    record_run(store, RunRecord(run_id=new_run_id(), dataset="ds", fusion="early", mode="honest", seed=0))
    declared = {t: declared_key(store.open_table(t).schema) for t in store.list_tables()}
    assert declared == {"samples__ds": "sample_id", "models": "model_key", "alignments": "alignment_key",
                        "runs": "run_id", store.embedding_tables()[0]: "row_key"}


def test_dimension_mismatch_names_model_and_widths(store):
    model = toy_model(dim=4)
    store.write_embeddings("ds", model, "image", ["a"], np.ones((1, 4)), ["h"])
    with pytest.raises(DimensionMismatchError) as err:
        store.write_embeddings("ds", model, "image", ["b"], np.ones((1, 3)), ["h2"])
    msg = str(err.value)
    assert "hf:toy" in msg and model.key in msg and "4" in msg and "got 3" in msg


def test_old_version_and_tag_read_back_old_rows(store):
    v1 = store.upsert("t", pa.table({"k": ["a"], "x": [1]}), key="k", tag="first").version
    store.upsert("t", pa.table({"k": ["a", "b"], "x": [10, 2]}), key="k")
    assert store.read("t").num_rows == 2
    for ref in (v1, "first", str(v1)):
        old = store.read("t", version=ref)
        assert old.to_pylist() == [{"k": "a", "x": 1}]
    assert store.tags("t") == {"first": v1}
    assert [v.version for v in store.versions("t")] == [1, 2]
    assert store.versions("t")[0].tags == ("first",)
    store.tag("t", "latest-one")
    assert store.tags("t")["latest-one"] == 2
    with pytest.raises(NotFoundError, match="no version or tag"):
        store.read("t", version="nope")


def test_samples_filter_by_split_and_version(store):
    store.write_samples("ds", sample_rows(["a", "b", "c"], splits=["train", "test", "train"]))
    assert store.samples("ds", split="train")["sample_id"].to_pylist() == ["a", "c"]
    assert store.samples("ds", as_="polars").height == 3
    with pytest.raises(NotFoundError, match="no split 'grouped'"):
        store.samples("ds", split="train", split_by="grouped")


def test_model_registry_resolves_by_key_or_id(store):
    fp32 = ModelIdentity("hf:m", "w", ("text",), {"text": 8})
    bf16 = ModelIdentity("hf:m", "w", ("text",), {"text": 8}, dtype="bf16")
    store.register_model(fp32)
    store.register_model(bf16)
    store.register_model(fp32)  # idempotent
    assert len(store.models()) == 2
    assert store.model(fp32.key) == fp32
    with pytest.raises(AmbiguousModelError) as err:  # a bare id naming two identities is an error
        store.model("hf:m")
    assert fp32.key in str(err.value) and bf16.key in str(err.value) and "dtype bf16" in str(err.value)
    assert store.model(f"hf:m@{bf16.key[:6]}") == bf16
    with pytest.raises(NotFoundError, match="registered: hf:m"):
        store.model("hf:other")


def test_key_collision_is_detected(store):
    ident = toy_model()
    store.register_model(ident)
    rows = store.read("models")
    forged = rows.set_column(rows.schema.get_field_index("identity"), "identity",
                             pa.array([ModelIdentity("hf:evil", "x", ("image",), {"image": 4}).to_json()]))
    store.upsert("models", forged, key="model_key")
    with pytest.raises(KeyCollisionError):
        store.register_model(ident)


def test_alignment_registry_round_trip(store):
    store.register_alignment("abc123", "gapshift", {"lam": 0.5}, np.array([0.1, -0.2]))
    rec = store.alignment("abc123")
    assert rec.settings == {"lam": 0.5} and np.allclose(rec.gap, [0.1, -0.2])


def test_store_path_errors_are_one_line_and_actionable(tmp_path):
    with pytest.raises(InputError, match="parent directory .* does not exist"):
        Store(tmp_path / "missing" / "store")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        Store(f)


def test_embedded_default_store_is_created_on_a_fresh_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "fresh" / "share"))  # no such folder yet
    store = Store()
    assert store.uri == str(tmp_path / "fresh" / "share" / "embedstore" / "store")
    assert Path(store.uri).is_dir() and store.list_tables() == []


def _upsert_worker(uri: str, start: int, barrier) -> None:
    store = Store(uri)
    barrier.wait()
    for chunk in range(4):
        ids = [f"k{i}" for i in range(start + chunk * 10, start + chunk * 10 + 10)]
        store.upsert("shared", pa.table({"k": ids, "who": [start] * len(ids)}), key="k")


def test_two_processes_upserting_overlapping_keys_leave_one_row_per_key(tmp_path):
    uri = str(tmp_path / "store")
    Store(uri)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_upsert_worker, args=(uri, s, barrier)) for s in (0, 20)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    keys = Store(uri).read("shared")["k"].to_pylist()
    assert len(keys) == len(set(keys)) == 60


def test_embedstore_never_imports_trainers_or_cli():
    root = Path(__file__).resolve().parents[1] / "embedstore"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("trainers", "cli")]
    assert offenders == []
