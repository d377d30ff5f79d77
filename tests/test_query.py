"""Query API: embeddings, missing() with content-hash reuse, neighbors() vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import InputError
from tests.helpers import random_image_vectors, sample_rows, toy_model


def test_embeddings_as_numpy_follow_split(store):
    model = toy_model(dim=3)
    rows = sample_rows(["a", "b", "c"], splits=["train", "test", "train"])
    store.write_samples("ds", rows)
    vecs = np.arange(9, dtype=np.float32).reshape(3, 3)
    store.write_embeddings("ds", model, "image", ["a", "b", "c"], vecs, rows["image_sha256"].to_pylist())
    ids, mat = store.embeddings("ds", model.key, "image", split="train", as_="numpy")
    assert ids == ["a", "c"] and np.array_equal(mat, vecs[[0, 2]])
    assert store.embeddings("ds", "hf:toy", "image", as_="polars").height == 3


def test_missing_honours_content_hash_reuse_across_datasets(store):
    model = toy_model(dim=2)
    shared = ["same-bytes-1", "same-bytes-2"]
    store.write_samples("first", sample_rows(["a", "b"], image_hashes=shared))
    store.write_samples("second", sample_rows(["x", "y", "z"], image_hashes=shared + ["new-bytes"]))
    store.write_embeddings("first", model, "image", ["a", "b"], np.eye(2), shared)

    assert store.missing("first", model, "image").num_rows == 0
    assert store.missing("second", model, "image")["sample_id"].to_pylist() == ["z"]
    assert store.missing("second", model, "image", reuse=False)["sample_id"].to_pylist() == ["x", "y", "z"]

    res = store.reuse_by_hash("second", model, "image")
    assert res.inserted == 2
    ids, mat = store.embeddings("second", model, "image", as_="numpy")
    assert dict(zip(ids, mat.tolist())) == {"x": [1.0, 0.0], "y": [0.0, 1.0]}
    assert store.missing("second", model, "image", reuse=False)["sample_id"].to_pylist() == ["z"]


def test_changed_content_makes_an_embedding_stale(store):
    model = toy_model(dim=2)
    store.write_samples("ds", sample_rows(["a"], image_hashes=["old"]))
    store.write_embeddings("ds", model, "image", ["a"], np.ones((1, 2)), ["old"])
    assert store.missing("ds", model, "image").num_rows == 0
    store.write_samples("ds", sample_rows(["a"], image_hashes=["new"]))
    assert store.missing("ds", model, "image")["sample_id"].to_pylist() == ["a"]


@pytest.fixture
def populated(store):
    model, ids, vecs, rng = random_image_vectors(store, "ds", 300, 16, seed=0)
    return store, model, ids, vecs, rng


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_neighbors_equal_numpy_brute_force(populated, metric):
    store, model, ids, vecs, rng = populated
    for _ in range(5):
        q = rng.normal(size=16).astype(np.float32)
        if metric == "cosine":
            d = 1 - (vecs @ q) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(q))
        else:
            d = ((vecs - q) ** 2).sum(axis=1)  # LanceDB's l2 is squared Euclidean
        order = np.argsort(d, kind="stable")[:10]
        res = store.neighbors("ds", model, "image", vector=q, k=10, metric=metric)
        assert res["sample_id"].to_pylist() == [ids[i] for i in order]
        assert np.allclose(res["distance"].to_numpy(), d[order], atol=1e-5)


def test_neighbors_of_a_stored_sample_exclude_itself_and_honour_where(populated):
    store, model, ids, vecs, _ = populated
    res = store.neighbors("ds", model, "image", sample_id="s000", k=5, where="sample_id < 's100'")
    got = res["sample_id"].to_pylist()
    assert "s000" not in got and len(got) == 5 and all(s < "s100" for s in got)
    with pytest.raises(InputError, match="exactly one"):
        store.neighbors("ds", model, "image", k=5)


def test_ivf_index_recall_is_reported(populated):
    store, model, ids, vecs, rng = populated
    store.create_index(model, "image", kind="ivf_flat", num_partitions=4)
    recall = store.index_recall("ds", model, "image", queries=rng.normal(size=(5, 16)), k=10, nprobes=4)
    assert 0.9 <= recall <= 1.0
