"""Alignment transforms against scikit-learn/scipy on the same arrays; stored, honest, resumable."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from sklearn.cross_decomposition import CCA
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from embedstore.alignment import NotFittedError, aligned, l2_normalize
from embedstore.errors import InputError
from embedstore.pairs import toy_pairs
from embedstore.transform_align import align_method, load_transform
from embedstore.transforms import METHODS, make_transform
from tests.test_honest import _train, two_splits  # noqa: F401 - fixture

N = 60


def _pairs(n=N, d=6, seed=0):
    """Image and text cones with a shared latent signal, half train, half test."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    image = z + 3.0 * np.eye(1, d) + 0.3 * rng.standard_normal((n, d))
    text = z[:, ::-1] * np.arange(1, d + 1) - 3.0 * np.eye(1, d) + 0.3 * rng.standard_normal((n, d))
    split = np.array(["train", "test"] * (n // 2))
    return image, text, split


def _train_rows(image, text, split):
    keep = split == "train"
    return l2_normalize(image)[keep], l2_normalize(text)[keep], l2_normalize(image), l2_normalize(text)


def test_centering_subtracts_the_training_means():
    image, text, split = _pairs()
    ti, tt, ai, at = _train_rows(image, text, split)
    a, b = make_transform("center").fit(image, text, split).transform(image, text)
    assert np.allclose(a, l2_normalize(ai - ti.mean(0)), atol=1e-6)
    assert np.allclose(b, l2_normalize(at - tt.mean(0)), atol=1e-6)


def test_standardize_matches_standard_scaler_per_modality():
    image, text, split = _pairs()
    ti, tt, ai, at = _train_rows(image, text, split)
    a, b = make_transform("standardize").fit(image, text, split).transform(image, text)
    assert np.allclose(a, l2_normalize(StandardScaler().fit(ti).transform(ai)), atol=1e-6)
    assert np.allclose(b, l2_normalize(StandardScaler().fit(tt).transform(at)), atol=1e-6)


def test_whiten_matches_pca_whiten_and_whitens_the_training_rows():
    image, text, split = _pairs()
    ti, tt, ai, at = _train_rows(image, text, split)
    t = make_transform("whiten", n_components=4).fit(image, text, split)
    a, b = t.transform(image, text)
    ref = PCA(n_components=4, whiten=True, svd_solver="full").fit(ti)
    assert a.shape == (N, 4) and np.allclose(np.abs(a), np.abs(l2_normalize(ref.transform(ai))), atol=1e-5)
    cov = np.cov(t.pca_text_.transform(tt), rowvar=False)
    assert np.allclose(cov, np.eye(4), atol=1e-6)
    assert np.allclose(np.abs(b), np.abs(l2_normalize(PCA(4, whiten=True).fit(tt).transform(at))), atol=1e-5)


def test_procrustes_matches_scipy_and_recovers_a_rotation():
    rng = np.random.default_rng(3)
    image = rng.standard_normal((N, 6))
    rot = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    text = image @ rot
    split = np.array(["train", "test"] * (N // 2))
    ti, tt, ai, at = _train_rows(image, text, split)
    t = make_transform("procrustes").fit(image, text, split)
    ref = orthogonal_procrustes(ti - ti.mean(0), tt - tt.mean(0))[0]
    assert np.allclose(t.rotation_, ref, atol=1e-8)
    a, b = t.transform(image, text)
    paired = np.einsum("ij,ij->i", a, b)
    test = split == "test"
    assert paired[test].min() > 0.99  # held-out pairs land on each other
    before = np.einsum("ij,ij->i", ai, at)
    assert before[test].mean() < 0.5


def test_cca_matches_sklearn_cca_scores():
    image, text, split = _pairs()
    ti, tt, ai, at = _train_rows(image, text, split)
    a, b = make_transform("cca", n_components=3).fit(image, text, split).transform(image, text)
    x, y = CCA(n_components=3, max_iter=500).fit(ti, tt).transform(ai, at)
    assert np.allclose(a, l2_normalize(x), atol=1e-5) and np.allclose(b, l2_normalize(y), atol=1e-5)
    assert np.einsum("ij,ij->i", a, b)[split == "test"].mean() > 0.5  # the shared signal is found


@pytest.mark.parametrize("method", METHODS)
def test_every_method_refuses_transform_before_fit_and_ignores_test_rows(method):
    image, text, split = _pairs()
    with pytest.raises(NotFittedError):
        make_transform(method).transform(image, text)
    first = make_transform(method, lam=0.5).fit(image, text, split).transform(image, text)
    image2, text2 = image.copy(), text.copy()
    image2[split == "test"] *= -5.0
    again = make_transform(method, lam=0.5).fit(image2, text2, split).transform(image, text)
    assert np.allclose(first[0], again[0], atol=1e-5) and np.allclose(first[1], again[1], atol=1e-5)


def test_centre_then_shift_closes_the_mapped_gap():
    image, text, split = _pairs()
    t = make_transform("procrustes", lam=1.0, n_components=4).fit(image, text, split)
    a, b = t.transform(image, text, renormalize=False)
    train = split == "train"
    assert np.allclose(a[train].mean(0), b[train].mean(0), atol=1e-6)


def test_unknown_method_and_too_few_rows_are_one_line_errors():
    with pytest.raises(InputError, match="unknown alignment method 'pca'"):
        make_transform("pca")
    image, text, _ = _pairs(n=4)
    with pytest.raises(InputError, match="give more training rows"):
        make_transform("cca").fit(image[:1], text[:1])


def test_stored_transform_is_keyed_reused_and_loadable(store):
    img, txt = toy_pairs(store, "toy", n=30, image_dim=8, text_dim=5)
    keys = {m: align_method(store, "toy", method=m, image_model=img, text_model=txt, match="interp",
                            n_components=3 if m in ("whiten", "cca") else None) for m in METHODS}
    assert len({r.alignment_key for r in keys.values()}) == len(METHODS)
    res = keys["cca"]
    again = align_method(store, "toy", method="cca", image_model=img, text_model=txt, match="interp",
                         n_components=3)
    assert again.reused and again.alignment_key == res.alignment_key
    ids, vecs = aligned(store, "toy", res.alignment_key, "image")
    src_ids, src = store.embeddings("toy", img, "image", as_="numpy")
    order = [src_ids.index(i) for i in ids]
    _, src_txt = store.embeddings("toy", txt, "text", as_="numpy")
    loaded = load_transform(store, res.alignment_key)
    redo, _ = loaded.transform(src[order], src_txt[order])
    assert np.allclose(redo, vecs, atol=1e-5)
    assert store.alignment(res.alignment_key).settings["n_components"] == 3


def test_an_interrupted_transform_fit_resumes_under_its_key(store):
    from embedstore.schema import ALIGNMENTS

    img, txt = toy_pairs(store, "toy", n=20, image_dim=8, text_dim=5)
    first = align_method(store, "toy", method="whiten", image_model=img, text_model=txt, match="interp",
                         n_components=3)
    store.db.open_table(ALIGNMENTS).delete(f"alignment_key = '{first.alignment_key}'")  # killed before registering
    again = align_method(store, "toy", method="whiten", image_model=img, text_model=txt, match="interp",
                         n_components=3)
    assert again.alignment_key == first.alignment_key and not again.reused
    assert [r.alignment_key for r in store.alignments()] == [first.alignment_key]
    assert aligned(store, "toy", first.alignment_key, "text")[1].shape == (20, 3)


@pytest.mark.parametrize("method", ["procrustes", "cca"])
def test_honest_training_refuses_a_transform_fitted_with_test_rows(two_splits, method):  # noqa: F811
    store, img, txt = two_splits
    res = align_method(store, "two", method=method, image_model=img, text_model=txt, match="interp",
                       fit_on="all", n_components=3)
    with pytest.raises(InputError, match=rf"honest mode refuses alignment '{res.alignment_key}': it was fitted "
                                         r"with fit_on='all'"):
        _train(store, res.alignment_key, res.dim, mode="honest", split_by="grouped")
    ok = align_method(store, "two", method=method, image_model=img, text_model=txt, match="interp",
                      split_by="grouped", n_components=3)
    run = _train(store, ok.alignment_key, ok.dim, mode="honest", split_by="grouped")
    assert run.config["alignments"]["image"]["method"] == method


@pytest.mark.slow
def test_sweep_over_a_method_aligns_with_it_and_records_its_runs(store, tmp_path):
    from embedstore.runs import get_run
    from embedstore.trainers.sweep import sweep

    img, txt = toy_pairs(store, "toy", n=60)
    kw = dict(image_model=img, text_model=txt, fusion="early", lambdas="0,1", seeds=1, epochs=1, progress=False)
    res = sweep(store, "toy", method="cca", n_components=3, out=tmp_path / "cca.png", **kw)
    plain = sweep(store, "toy", **kw)
    assert res.sweep_id != plain.sweep_id and (tmp_path / "cca.png").stat().st_size > 0
    for p in res.points:
        s = store.alignment(p.alignment_key).settings
        assert (s["method"], s["lam"], s["fit_on"], s["dim"]) == ("cca", p.lam, "train", 3)
        assert get_run(store, p.run_ids[0]).config["alignments"]["image"]["method"] == "cca"
    assert res.selection["lam"] in (0.0, 1.0)
    # the report compares both methods in one figure (one panel each), before the two sweep sections
    from embedstore.report import write_report

    write_report(store, "toy", tmp_path / "r.html", gap=False)
    text = (tmp_path / "r.html").read_text()
    assert text.count('alt="methods early honest"') == 1
    assert "method cca)</summary>" in text and "method gapshift)</summary>" in text


_STATE_CASES = [("gapshift", None), ("center", None), ("standardize", None), ("whiten", 4), ("procrustes", None),
                ("procrustes", 3), ("cca", 3)]


@pytest.mark.parametrize("method,k", _STATE_CASES)
def test_state_round_trip_gives_identical_output_without_pickle(method, k):
    import json

    from safetensors.numpy import load

    from embedstore.transform_state import FORMAT, dump_state, load_state

    image, text, split = _pairs()
    t = make_transform(method, lam=0.5, n_components=k).fit(image, text, split)
    meta, arrays = dump_state(t)
    info = json.loads(meta)  # plain JSON + safetensors: nothing to unpickle
    assert info["format"] == FORMAT and info["method"] == method
    assert "gap_" in load(arrays)
    back = load_state(meta, arrays)
    assert type(back) is type(t) and back.get_params() == t.get_params()
    new_i, new_t = _pairs(seed=1)[:2]
    for a, b in zip(back.transform(new_i, new_t), t.transform(new_i, new_t)):
        assert np.array_equal(a, b)


def test_state_of_another_format_or_sklearn_version_is_refused():
    import json

    from embedstore.transform_state import dump_state, load_state

    image, text, split = _pairs()
    meta, arrays = dump_state(make_transform("whiten", n_components=3).fit(image, text, split))
    with pytest.raises(InputError, match="not in format embedstore-transform/1: re-run 'embedstore align'"):
        load_state('{"format": "pickle"}', arrays, where="alignment 'gs-x'")
    old = json.loads(meta)
    old["sklearn"] = "0.1"
    with pytest.raises(InputError, match="fitted with scikit-learn 0.1, this is .*re-run 'embedstore align'"):
        load_state(json.dumps(old), arrays)
    old = json.loads(meta)
    old["attrs"]["dim_"] = {"__numpy_scalar__": "|O", "value": "x"}
    with pytest.raises(InputError, match="a stored scalar is not a number"):
        load_state(json.dumps(old), arrays)
    old = json.loads(meta)
    old["estimators"]["pca_image_"]["class"] = "os.system"
    with pytest.raises(InputError, match="unknown estimator 'os.system'"):
        load_state(json.dumps(old), arrays)


def test_an_old_pickled_transform_row_is_refused_and_align_stores_it_again(store):
    import pickle

    import pyarrow as pa

    from embedstore.transform_align import LEGACY_TRANSFORMS, TRANSFORM_STATES
    from tests.main_store import writing_as_main

    img, txt = toy_pairs(store, "toy", n=20, image_dim=8, text_dim=5)
    with writing_as_main():  # aligned rows stored, as embedstore 0.3 did
        res = align_method(store, "toy", method="center", image_model=img, text_model=txt, match="interp")
    expected = load_transform(store, res.alignment_key)
    # the store as an older version left it: the state pickled in the legacy table, none in the new one
    store.db.open_table(TRANSFORM_STATES).delete(f"alignment_key = '{res.alignment_key}'")
    legacy = pa.schema([pa.field("alignment_key", pa.string(), nullable=False), pa.field("method", pa.string()),
                        pa.field("state", pa.binary())])
    row = pa.table({"alignment_key": [res.alignment_key], "method": ["center"],
                    "state": [pickle.dumps(expected)]}, schema=legacy)
    store.upsert(LEGACY_TRANSFORMS, row, key="alignment_key", schema=legacy)
    with pytest.raises(InputError, match=rf"alignment '{res.alignment_key}': its fitted transform is stored pickled "
                                         r"in table transforms .*re-run 'embedstore align'"):
        load_transform(store, res.alignment_key)
    from click.testing import CliRunner

    from embedstore.cli.main import cli

    out = CliRunner().invoke(cli, ["--store", store.uri, "align", "toy", "--image-model", img, "--text-model", txt,
                                   "--method", "center", "--lam", "0"])
    assert out.exit_code == 0, out.output
    assert f"alignment {res.alignment_key}: 20 rows, width 8, method center" in out.output and "(reused)" in out.output
    src_i = store.embeddings("toy", img, "image", as_="numpy")[1]
    src_t = store.embeddings("toy", txt, "text", as_="numpy")[1]
    for a, b in zip(load_transform(store, res.alignment_key).transform(src_i, src_t),
                    expected.transform(src_i, src_t)):
        assert np.array_equal(a, b)


def test_a_fit_killed_after_its_state_was_stored_resumes_under_the_same_key(store):
    from embedstore.aligned_reads import MEMBERS
    from embedstore.schema import ALIGNMENTS
    from embedstore.transform_align import TRANSFORM_STATES

    img, txt = toy_pairs(store, "toy", n=20, image_dim=8, text_dim=5)
    kw = dict(method="procrustes", image_model=img, text_model=txt, match="interp", n_components=3)
    first = align_method(store, "toy", **kw)
    members = store.alignment(first.alignment_key).settings["members"]
    # the kill came after the sample list was written and before the state was stored or the alignment registered
    store.db.open_table(ALIGNMENTS).delete(f"alignment_key = '{first.alignment_key}'")
    store.db.open_table(TRANSFORM_STATES).delete(f"alignment_key = '{first.alignment_key}'")
    again = align_method(store, "toy", **kw)
    assert again.alignment_key == first.alignment_key and not again.reused
    assert store.db.open_table(TRANSFORM_STATES).count_rows(f"alignment_key = '{first.alignment_key}'") == 1
    assert store.db.open_table(MEMBERS).count_rows(f"members_id = '{members}'") == 20  # written once
    assert aligned(store, "toy", first.alignment_key, "image")[1].shape == (20, 3)
    assert align_method(store, "toy", **kw).reused

def test_procrustes_state_is_its_rank_at_native_width_and_reproduces_its_rows():
    """A 12-wide text stretched to 40: the fit has rank 12; what is stored is that, in float32, not 40 x 40."""
    from embedstore.transform_state import dump_state, load_state

    rng = np.random.default_rng(5)
    z = rng.standard_normal((N, 4))
    image = z @ rng.standard_normal((4, 40)) + 0.3 * rng.standard_normal((N, 40)) + 2.0
    text = z @ rng.standard_normal((4, 12)) + 0.3 * rng.standard_normal((N, 12)) - 1.0
    split = np.array(["train", "test"] * (N // 2))
    t = make_transform("procrustes", lam=0.5, match="interp").fit(image, text, split)
    assert t.factor_image_.shape == (40, 12) and t.factor_text_.shape == (12, 12)
    assert t.factor_image_.dtype == np.float32 and "rotation_" not in vars(t)
    r = t.rotation_
    assert np.allclose(r.T @ r, np.eye(40), atol=1e-6)  # a rotation
    ti, tt = t._fit_rows(image, text, split)
    m = (ti - ti.mean(0)).T @ (tt - tt.mean(0))
    best = orthogonal_procrustes(ti - ti.mean(0), tt - tt.mean(0))[0]
    assert np.trace(r.T @ m) == pytest.approx(np.trace(best.T @ m), rel=1e-6)  # as optimal as scipy's
    # the part the fit leaves free is the isometry closest to the identity: vectors outside both
    # fitted subspaces stay where they are
    ur, vr = t._factor("image"), t._factor("text")
    free = np.linalg.svd(np.hstack([ur, vr]).T)[2][24:]  # orthogonal to both (40 - 12 - 12 = 16 directions)
    assert np.allclose(free @ r, free, atol=1e-6)
    meta, arrays = dump_state(t)
    assert len(arrays) < 40 * 40 * 4  # less than even a float32 copy of the full rotation
    back = load_state(meta, arrays)
    for a, b in zip(t.transform(image, text), back.transform(image, text)):
        assert np.array_equal(a, b)
    refit = make_transform("procrustes", lam=0.5, match="interp").fit(image, text, split)
    assert np.array_equal(refit.transform(image, text)[0], t.transform(image, text)[0])


def test_procrustes_state_with_a_full_rotation_is_read_as_it_is():
    """States stored by main at 3795f98 and earlier hold the full ``rotation_``: it is used as stored."""
    from embedstore.transform_state import dump_state, load_state

    image, text, split = _pairs()
    t = make_transform("procrustes").fit(image, text, split)
    old = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 6)))[0]
    for name in ("factor_image_", "factor_text_"):
        del t.__dict__[name]
    t.__dict__.pop("_rotation", None)
    t.__dict__["rotation_"] = old
    back = load_state(*dump_state(t))
    assert np.array_equal(back.rotation_, old)
    want = l2_normalize((l2_normalize(image) - back.mean_image_) @ old)
    assert np.allclose(back.transform_modality(image, "image"), back._shift(want, want)[0])
