"""GapShift maths on constructed data, and stored alignments (key, reuse, paper order)."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.alignment import GapShift, NotFittedError, align, aligned, interp_rows, l2_normalize
from embedstore.errors import InputError
from embedstore.pairs import toy_pairs


def _pairs(n=40, di=6, dt=6, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((n, di)) + 3.0 * np.eye(1, di)  # image cone around +e0
    text = rng.standard_normal((n, dt)) - 3.0 * np.eye(1, dt)   # text cone around -e0
    split = np.array(["train"] * (n // 2) + ["test"] * (n - n // 2))
    return image, text, split


def test_lambda_one_closes_the_centroid_gap_before_renormalisation():
    image, text, _ = _pairs()
    g = GapShift(lam=1.0).fit(image, text)
    assert np.linalg.norm(g.gap_) > 1.0  # the constructed gap is real
    a, b = g.transform(image, text, renormalize=False)
    assert np.allclose(a.mean(0), b.mean(0), atol=1e-6)
    # lam = 0.5 leaves half of it: centroid difference = (1 - lam) * gap
    a, b = GapShift(lam=0.5).fit(image, text).transform(image, text, renormalize=False)
    assert np.allclose(a.mean(0) - b.mean(0), 0.5 * g.gap_, atol=1e-6)
    # negative lam widens it
    a, b = GapShift(lam=-1.0).fit(image, text).transform(image, text, renormalize=False)
    assert np.allclose(a.mean(0) - b.mean(0), 2.0 * g.gap_, atol=1e-6)


def test_lambda_zero_is_the_identity_after_normalisation():
    image, text, _ = _pairs()
    a, b = GapShift(lam=0.0).fit(image, text).transform(image, text)
    assert np.allclose(a, l2_normalize(image), atol=1e-6)
    assert np.allclose(b, l2_normalize(text), atol=1e-6)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_gap_fitted_on_train_ignores_test_rows():
    image, text, split = _pairs()
    g1 = GapShift(lam=1.0).fit(image, text, split=split)
    image2, text2 = image.copy(), text.copy()
    test = split == "test"
    image2[test] += 50.0 * np.random.default_rng(1).standard_normal(image2[test].shape)
    text2[test] *= -7.0
    g2 = GapShift(lam=1.0).fit(image2, text2, split=split)
    assert np.array_equal(g1.gap_, g2.gap_)
    assert g1.n_fit_rows_ == int((~test).sum())
    # the paper's all-rows fit does see them
    g3 = GapShift(lam=1.0, fit_on="all").fit(image2, text2, split=split)
    assert not np.allclose(g3.gap_, g1.gap_)
    assert g3.n_fit_rows_ == len(split)


def test_interp_reproduces_numpy_interp_on_the_index_grid():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 13))
    got = interp_rows(x, 41)
    grid_src, grid_dst = np.linspace(0, 1, 13), np.linspace(0, 1, 41)
    want = np.stack([np.interp(grid_dst, grid_src, row) for row in x])
    assert np.allclose(got, want, atol=1e-12)
    # inside GapShift: the narrower (normalised) modality is resampled, not the wider one
    image, text = rng.standard_normal((5, 41)), rng.standard_normal((5, 13))
    g = GapShift(lam=0.0, match="interp").fit(image, text)
    assert (g.dim_, g.image_dim_in_, g.text_dim_in_) == (41, 41, 13)
    _, b = g.transform(image, text)
    want = l2_normalize(np.stack([np.interp(grid_dst, grid_src, row) for row in l2_normalize(text)]))
    assert np.allclose(b, want, atol=1e-6)


def test_unequal_widths_need_an_explicit_match_and_unfitted_use_fails():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="match='interp'"):
        GapShift().fit(rng.standard_normal((4, 6)), rng.standard_normal((4, 3)))
    with pytest.raises(NotFittedError, match="not fitted yet. Call 'fit'"):
        GapShift().transform(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(InputError, match="fit_on"):
        GapShift(fit_on="test").fit(np.ones((2, 3)), np.ones((2, 3)))
    assert "lam=0.5" in repr(GapShift(lam=0.5))


def test_noise_is_seeded_and_off_by_default():
    image, text, _ = _pairs()
    base = GapShift(lam=0.3).fit(image, text).transform(image, text)
    n1 = GapShift(lam=0.3, noise_std=0.05, seed=1).fit(image, text).transform(image, text)
    n1b = GapShift(lam=0.3, noise_std=0.05, seed=1).fit(image, text).transform(image, text)
    n2 = GapShift(lam=0.3, noise_std=0.05, seed=2).fit(image, text).transform(image, text)
    assert np.array_equal(n1[0], n1b[0]) and np.array_equal(n1[1], n1b[1])
    assert not np.allclose(n1[0], n2[0])
    assert not np.allclose(n1[0], base[0])
    assert np.allclose(np.linalg.norm(n1[0], axis=1), 1.0, atol=1e-5)


# -- stored alignments --------------------------------------------------------

def _versions(store):
    return {t["table"]: t["version"] for t in store.info()["tables"]}


def test_align_stores_parameters_not_rows_and_reads_them_back_as_the_transform(store):
    img, txt = toy_pairs(store, "toy", n=30, image_dim=8, text_dim=5)
    tables = set(store.list_tables())
    res = align(store, "toy", image_model=img, text_model=txt, lam=0.7, match="interp")
    assert not res.reused and res.rows == 30 and res.dim == 8
    assert res.n_fit_rows == 18  # 60 % train
    rec = store.alignment(res.alignment_key)
    assert rec.method == "gapshift" and rec.gap.shape == (8,)
    assert rec.settings["lam"] == 0.7 and rec.settings["fit_on"] == "train"
    assert rec.settings["storage"] == "on_read" and set(rec.settings["source_versions"]) >= {"samples__toy"}
    # no copy of the vectors: no aligned row in any embeddings table, no new (wider) table
    assert {t for t in store.list_tables() if t.startswith("emb__")} == {t for t in tables if t.startswith("emb__")}
    for t in store.embedding_tables():
        assert store.open_table(t).count_rows(f"alignment_key = '{res.alignment_key}'") == 0
    ids, a = aligned(store, "toy", res.alignment_key, "image")
    ids_t, b = aligned(store, "toy", res.alignment_key, "text")
    assert ids == ids_t and a.shape == b.shape == (30, 8) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # the rows read are what the fitted transform gives on all the rows (what earlier versions stored), bit for bit
    from embedstore.pairs import paired_sources

    src = paired_sources(store, "toy", img, txt)
    fitted = GapShift(lam=0.7, match="interp").fit(src.image_vectors, src.text_vectors, split=src.splits)
    want_a, want_b = fitted.transform(src.image_vectors, src.text_vectors)
    assert ids == src.ids and np.array_equal(a, want_a) and np.array_equal(b, want_b)
    assert np.allclose(rec.gap, fitted.gap_, atol=1e-6)

    before = _versions(store)
    again = align(store, "toy", image_model=img, text_model=txt, lam=0.7, match="interp")
    assert again.reused and again.alignment_key == res.alignment_key
    assert _versions(store) == before  # no recompute, no new version anywhere


def test_alignment_key_changes_with_every_setting(store):
    img, txt = toy_pairs(store, "toy", n=20, image_dim=6, text_dim=6)
    base = dict(lam=1.0, noise_std=0.0, seed=0, match=None, fit_on="train")
    keys = {align(store, "toy", image_model=img, text_model=txt, **base).alignment_key}
    for change in ({"lam": 0.5}, {"noise_std": 0.01}, {"seed": 3}, {"match": "interp"}, {"fit_on": "all"}):
        keys.add(align(store, "toy", image_model=img, text_model=txt, **(base | change)).alignment_key)
    assert len(keys) == 6
    # another source model
    from embedstore import ModelIdentity

    other = ModelIdentity("hf:toy-image-2", "w2", ("image",), {"image": 6})
    ids, vec = store.embeddings("toy", img, "image", as_="numpy")
    hashes = store.samples("toy")["image_sha256"].to_pylist()
    store.write_embeddings("toy", other, "image", ids, vec * 2 + 1, hashes)
    k_model = align(store, "toy", image_model="hf:toy-image-2", text_model=txt, **base).alignment_key
    assert k_model not in keys
    keys.add(k_model)
    # the source rows change: a new table version, a new key
    vec2 = vec.copy()
    vec2[0] += 1.0
    store.write_embeddings("toy", img, "image", ids, vec2, hashes)
    res = align(store, "toy", image_model=img, text_model=txt, **base)
    assert res.alignment_key not in keys and not res.reused


def test_paper_mode_reproduces_the_paper_order(store):
    """normalise -> interp -> gap on all rows -> shift -> renormalise -> split."""
    img, txt = toy_pairs(store, "toy", n=30, image_dim=9, text_dim=4)
    lam = 0.8
    res = align(store, "toy", image_model=img, text_model=txt, lam=lam, match="interp", fit_on="all")
    ids, I = store.embeddings("toy", img, "image", as_="numpy")
    ids_t, T = store.embeddings("toy", txt, "text", as_="numpy")
    order_i, order_t = np.argsort(ids), np.argsort(ids_t)
    I, T, ids = I[order_i].astype(np.float64), T[order_t].astype(np.float64), sorted(ids)
    # the paper's notebook, step by step
    I = I / np.linalg.norm(I, axis=1, keepdims=True)
    T = T / np.linalg.norm(T, axis=1, keepdims=True)
    T = np.stack([np.interp(np.linspace(0, 1, 9), np.linspace(0, 1, 4), row) for row in T])
    gap = I.mean(0) - T.mean(0)
    I2, T2 = I - lam / 2 * gap, T + lam / 2 * gap
    I2 /= np.linalg.norm(I2, axis=1, keepdims=True)
    T2 /= np.linalg.norm(T2, axis=1, keepdims=True)
    assert np.allclose(store.alignment(res.alignment_key).gap, gap, atol=1e-6)
    for split in ("train", "test"):
        want_ids = sorted(store.samples("toy", split=split)["sample_id"].to_pylist())
        rows = [ids.index(s) for s in want_ids]
        got_ids, got = aligned(store, "toy", res.alignment_key, "image", split=split)
        got = got[np.argsort(got_ids)]
        assert np.allclose(got, I2[rows], atol=1e-6)
        got_ids, got = aligned(store, "toy", res.alignment_key, "text", split=split)
        assert np.allclose(got[np.argsort(got_ids)], T2[rows], atol=1e-6)
    # the honest (train-only) fit gives a different gap on the same data
    honest = align(store, "toy", image_model=img, text_model=txt, lam=lam, match="interp")
    assert not np.allclose(store.alignment(honest.alignment_key).gap, gap)


def test_an_interrupted_alignment_is_finished_under_its_key(store):
    """A kill after the fitted state and sample list were written, before the registration, is resumed under its key."""
    from embedstore.schema import ALIGNMENTS

    img, txt = toy_pairs(store, "toy", n=20, image_dim=8, text_dim=5)
    first = align(store, "toy", image_model=img, text_model=txt, lam=0.4, match="interp")
    want = aligned(store, "toy", first.alignment_key, "text")
    store.db.open_table(ALIGNMENTS).delete(f"alignment_key = '{first.alignment_key}'")  # the lost last write
    assert store.alignments() == []
    again = align(store, "toy", image_model=img, text_model=txt, lam=0.4, match="interp")
    assert again.alignment_key == first.alignment_key and not again.reused
    assert [r.alignment_key for r in store.alignments()] == [first.alignment_key]
    ids, vecs = aligned(store, "toy", first.alignment_key, "text")
    assert ids == want[0] and np.array_equal(vecs, want[1]) and vecs.shape == (20, 8)
