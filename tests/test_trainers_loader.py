"""The store loader: pinned versions, key join, memory vs stream, skipped rows, read log."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from embedstore import Store
from embedstore.errors import InputError, NotFoundError
from embedstore.trainers.loader import ArraySource
from embedstore.trainers.store_source import StoreSource
from embedstore.trainers.synthetic_vectors import synthetic_model, write_synthetic


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("loader") / "store")
    info = write_synthetic(store, "toy", n=300, image_dim=6, text_dim=5, n_classes=3, seed=1)
    return store, info


def _source(store, info, **kw):
    return StoreSource(store, "toy", image_model=info["image_model"], text_model=info["text_model"], **kw)


def _all(src, split, gen=None, bs=32):
    parts = list(src.batches(split, bs, gen))
    return [torch.cat([p[i] for p in parts]) for i in range(3)]


def test_join_matches_vectors_to_their_sample_by_key(synth):
    store, info = synth
    src = _source(store, info, split_by="paper", path="memory")
    ix = src.index("train")
    xi, xt, y = _all(src, "train")
    ids, want = store.embeddings("toy", info["image_model"], "image", as_="numpy")
    row = {s: i for i, s in enumerate(ids)}
    assert np.array_equal(xi.numpy(), want[[row[s] for s in ix.sample_ids]])
    labels = dict(zip(*[store.samples("toy")[c].to_pylist() for c in ("sample_id", "label")]))
    assert [src.classes[c] for c in y.tolist()] == [labels[s] for s in ix.sample_ids]
    assert src.versions == {"samples__toy": 1, **{t: 1 for t in src.tables.values()}}


def test_stream_and_memory_paths_yield_identical_shuffled_batches(synth):
    store, info = synth
    mem = _source(store, info, path="memory")
    stream = _source(store, info, path="stream", chunk_rows=64, readahead=2)
    a = list(mem.batches("train", 32, torch.Generator().manual_seed(3)))
    b = list(stream.batches("train", 32, torch.Generator().manual_seed(3)))
    assert len(a) == len(b) > 2
    for (ai, at, ay), (bi, bt, by) in zip(a, b):
        assert torch.equal(ai, bi) and torch.equal(at, bt) and torch.equal(ay, by)
    order = torch.cat([x[2] for x in a])
    assert not torch.equal(order, _all(mem, "train")[2])  # really shuffled
    assert (mem.path, stream.path, _source(store, info).path) == ("memory", "stream", "memory")


def test_reads_are_pinned_to_table_versions(tmp_path):
    store = Store(tmp_path / "s")
    info = write_synthetic(store, "toy", n=60, image_dim=4, text_dim=3, seed=2)
    pinned = _source(store, info, path="memory").versions
    write_synthetic(store, "toy", n=90, image_dim=4, text_dim=3, seed=3, prefix="extra")  # new versions
    old = _source(store, info, versions=pinned, path="memory")
    new = _source(store, info, path="memory")
    assert old.versions == pinned and new.versions != pinned
    n_old = sum(len(old.labels(s)) for s in ("train",))
    n_new = sum(len(new.labels(s)) for s in ("train",))
    assert n_new > n_old


def test_missing_and_stale_embeddings_are_skipped_and_reported(tmp_path):
    store = Store(tmp_path / "s")
    info = write_synthetic(store, "toy", n=50, image_dim=4, text_dim=3, seed=4, test_frac=0.0)
    samples = store.samples("toy")
    extra = samples.slice(0, 2).to_pylist()
    for r, sid in zip(extra, ["new1", "new2"]):
        r["sample_id"] = sid
    changed = samples.slice(2, 1).to_pylist()
    changed[0]["image_sha256"] = "different-bytes"
    store.write_samples("toy", pa.Table.from_pylist(extra + changed, schema=samples.schema))
    src = _source(store, info, split_by="paper", path="memory")
    rep = src.skipped["train"]
    assert rep["missing_image"] == 2 and rep["missing_text"] == 2 and rep["stale_image"] == 1
    assert rep["skipped"] == 3 and "new1" in rep["examples"]
    assert len(src.labels("train")) == 50 - 1


def test_test_split_is_not_read_until_asked(synth):
    store, info = synth
    src = _source(store, info, setup_splits=("train", "val"))
    list(src.batches("train", 64, torch.Generator().manual_seed(0)))
    list(src.batches("val", 64))
    assert all(split != "test" for _, split in src.events)
    list(src.batches("test", 64))
    assert src.reads("test", "labels") == 1 and src.reads("test", "vectors") == 1 and src.reads("test") == 1


def test_unknown_model_dataset_and_path_give_actionable_errors(synth):
    store, info = synth
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        StoreSource(store, "toy", image_model="nope", text_model=None)
    with pytest.raises(NotFoundError, match="no dataset 'other'"):
        StoreSource(store, "other", image_model=None, text_model=info["text_model"])
    with pytest.raises(InputError, match="loader path"):
        _source(store, info, path="disk")
    with pytest.raises(NotFoundError, match="unknown alignment: no alignment 'gap-1'"):
        _source(store, info, image_alignment_key="gap-1")


def test_aligned_vectors_in_a_wider_table_are_found_by_alignment_key(tmp_path):
    store = Store(tmp_path / "s")
    info = write_synthetic(store, "toy", n=40, image_dim=4, text_dim=6, seed=5)
    ids = store.samples("toy")["sample_id"].to_pylist()
    hashes = store.samples("toy")["image_sha256"].to_pylist()
    ident = synthetic_model("image", 4)
    store.write_embeddings("toy", ident, "image", ids, np.ones((40, 6), np.float32), hashes,
                           alignment_key="gap-x", dim=6)
    src = _source(store, info, image_alignment_key="gap-x", path="memory")
    assert src.image_dim == 6 and src.tables["image"].endswith("__6")
    assert torch.all(_all(src, "train")[0] == 1)


def test_array_source_validates_lengths():
    with pytest.raises(InputError, match="rows"):
        ArraySource(np.ones((3, 2)), None, ["a", "b"], ["train", "test"])
    with pytest.raises(InputError, match="absent from the training classes"):
        ArraySource(np.ones((2, 2)), None, ["a", "z"], ["train", "test"], classes=["a"])
