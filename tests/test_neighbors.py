"""Exact neighbours: the cached NumPy engine equals float64 brute force and LanceDB's flat scan."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import InputError
from embedstore.neighbors import exact_search
from tests.helpers import random_image_vectors


def brute(vecs: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    v, q = vecs.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        return 1 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    if metric == "l2":
        return ((v - q) ** 2).sum(axis=1)
    return 1 - v @ q  # LanceDB's dot distance is 1 - dot product


@pytest.fixture
def filled(store):
    model, ids, vecs, rng = random_image_vectors(store, "ds", 400, 24, seed=1)
    store.write_embeddings("other", model, "image", ids[:50], -vecs[:50], ids[:50])
    return store, model, ids, vecs, rng


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_numpy_engine_equals_brute_force_and_lance_flat_scan(filled, metric):
    store, model, ids, vecs, rng = filled
    for _ in range(4):
        q = rng.normal(size=24).astype(np.float32)
        d = brute(vecs, q, metric)
        order = np.argsort(d, kind="stable")[:10]
        fast = store.neighbors("ds", model, "image", vector=q, k=10, metric=metric)
        lance = store.neighbors("ds", model, "image", vector=q, k=10, metric=metric, engine="lance")
        assert fast["sample_id"].to_pylist() == [ids[i] for i in order] == lance["sample_id"].to_pylist()
        assert np.allclose(fast["distance"].to_numpy(), d[order], atol=1e-5)
        assert np.allclose(lance["distance"].to_numpy(), d[order], atol=1e-4)


def test_where_prefilter_and_self_exclusion_match_lance(filled):
    store, model, ids, vecs, _ = filled
    kw = dict(sample_id="s123", k=7, where="sample_id >= 's200' OR sample_id < 's010'")
    fast = store.neighbors("ds", model, "image", **kw)
    lance = store.neighbors("ds", model, "image", engine="lance", **kw)
    got = fast["sample_id"].to_pylist()
    assert got == lance["sample_id"].to_pylist()
    assert len(got) == 7 and all(s >= "s200" or s < "s010" for s in got)
    allowed = [i for i, s in enumerate(ids) if s >= "s200" or s < "s010"]
    d = brute(vecs[allowed], vecs[123], "cosine")
    assert got == [ids[allowed[i]] for i in np.argsort(d, kind="stable")[:7]]
    # the other dataset in the same table never leaks in
    other = store.neighbors("other", model, "image", vector=-vecs[0], k=3)["sample_id"].to_pylist()
    assert other[0] == "s000" and all(s < "s050" for s in other)


def test_cache_follows_versions(filled):
    store, model, ids, vecs, _ = filled
    q = vecs[5]
    before = store.neighbors("ds", model, "image", vector=q, k=1, exclude_self=False)
    v_old = store.version(store._emb_table(model, "image"))
    store.write_embeddings("ds", model, "image", ["new"], (q * 2)[None], ["h"])
    assert store.neighbors("ds", model, "image", vector=q, k=1, metric="l2")["sample_id"].to_pylist() == ["s005"]
    assert store.neighbors("ds", model, "image", vector=q * 2, k=1, metric="l2")["sample_id"].to_pylist() == ["new"]
    pinned = store.neighbors("ds", model, "image", vector=q * 2, k=1, metric="l2", version=v_old)
    assert pinned["sample_id"].to_pylist() == ["s005"] == before["sample_id"].to_pylist()


def test_zero_vectors_and_bad_queries(filled):
    store, model, ids, vecs, _ = filled
    store.write_embeddings("ds", model, "image", ["zero"], np.zeros((1, 24)), ["z"])
    near = store.neighbors("ds", model, "image", vector=np.ones(24), k=401)["sample_id"].to_pylist()
    assert "zero" not in near and len(near) == 400  # cosine is undefined for a zero row, as in LanceDB
    assert store.neighbors("ds", model, "image", vector=np.zeros(24), k=1, metric="l2")["sample_id"].to_pylist() == ["zero"]
    with pytest.raises(InputError, match="zero query"):
        store.neighbors("ds", model, "image", vector=np.zeros(24), k=3)
    with pytest.raises(InputError, match="width 3"):
        store.neighbors("ds", model, "image", vector=[1, 2, 3], k=3)
    with pytest.raises(InputError, match="engine"):
        store.neighbors("ds", model, "image", vector=np.ones(24), engine="faiss")


def test_exact_search_stays_exact_with_ties_beyond_the_candidates():
    # 300 identical rows tie with the best: the float32 pre-ranking cannot
    # separate them, so the bound check must fall back to a full rescoring.
    rng = np.random.default_rng(2)
    m = rng.normal(size=(1000, 8)).astype(np.float32)
    m[200:500] = m[0]
    norms = np.linalg.norm(m.astype(np.float64), axis=1)
    idx, dist = exact_search(m, norms, m[0] + 1e-3, 10, "l2")
    assert idx.tolist() == [0] + list(range(200, 209))
    assert np.allclose(dist, brute(m[idx], m[0] + 1e-3, "l2"))
