"""Gap measures against brute-force references (scipy cdist, sklearn) on the same arrays."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from embedstore.alignment import l2_normalize
from embedstore.gap_measures import (exact_text_recall, gap_dimensions, modality_separability,
                                     pair_vs_random_cosine, relative_modality_gap)


def _cones(n=30, d=5, shift=2.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    return z + shift * np.eye(1, d), z + 0.5 * rng.standard_normal((n, d)) - shift * np.eye(1, d)


def test_rmg_matches_a_pairwise_cdist_reference_and_falls_when_the_gap_closes():
    img, txt = _cones()
    d_ii, d_tt = cdist(img, img, "cosine") / 2, cdist(txt, txt, "cosine") / 2
    n = len(img)
    matched = np.diag(cdist(img, txt, "cosine")).mean() / 2
    within = (d_ii.sum() + d_tt.sum()) / (2 * n * (n - 1))
    assert np.isclose(relative_modality_gap(img, txt), matched / (within + matched))
    assert relative_modality_gap(*_cones(shift=0.0)) < relative_modality_gap(img, txt)


def test_gap_dimensions_rank_the_constructed_gap_dimension_first():
    img, txt = _cones()
    dims = gap_dimensions(img, txt, top=3)
    diff = l2_normalize(img).mean(0) - l2_normalize(txt).mean(0)
    assert dims[0]["dim"] == 0 and np.isclose(dims[0]["share"], diff[0] ** 2 / (diff @ diff))
    assert [d["share"] for d in dims] == sorted((d["share"] for d in dims), reverse=True)


def test_true_pairs_beat_random_pairs_only_when_pairs_share_signal():
    img, txt = _cones(shift=0.0)
    assert pair_vs_random_cosine(img, txt)["difference"] > 0.5
    other = np.random.default_rng(9).standard_normal(txt.shape)
    assert abs(pair_vs_random_cosine(img, other)["difference"]) < 0.2


def test_separability_equals_sklearn_cross_val_score():
    img, txt = _cones(shift=0.3)
    x = np.vstack([l2_normalize(img), l2_normalize(txt)])
    y = np.r_[np.zeros(len(img)), np.ones(len(txt))]
    ref = cross_val_score(LogisticRegression(max_iter=1000), x, y,
                          cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert np.isclose(modality_separability(img, txt), ref)
    assert modality_separability(*_cones(shift=3.0)) > 0.95


def test_exact_text_recall_counts_duplicates_once_and_reports_chance():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6))
    ids = ["a", "a", "a", "b", "c", "d", "d", "d"]  # repeated prompts share one vector
    text = base[[0, 0, 0, 1, 2, 3, 3, 3]]
    image = text + 0.01 * rng.standard_normal(text.shape)
    r = exact_text_recall(image, text, ids, ks=(1, 10))
    assert r["recall"] == {1: 1.0, 10: 1.0} and r["distinct_texts"] == 4
    assert r["chance"] == {1: 0.25, 10: 1.0}
    # repeated texts: always answering the most common text ('a' or 'd', 3 of 8 queries each) scores 3/8 at k=1,
    # far above a random ranking's 1/4; the two most common, 6/8
    assert r["most_common"][1] == 3 / 8 and exact_text_recall(image, text, ids, ks=(2,))["most_common"][2] == 6 / 8
    # brute force: the nearest distinct text must equal the paired text
    gallery = {i: text[ids.index(i)] for i in dict.fromkeys(ids)}
    names = list(gallery)
    noise_q = rng.standard_normal(text.shape)
    sims = l2_normalize(noise_q) @ l2_normalize(np.array(list(gallery.values()))).T
    ref = np.mean([names[int(np.argmax(s))] == ids[i] for i, s in enumerate(sims)])
    assert exact_text_recall(noise_q, text, ids, ks=(1,))["recall"][1] == ref


def test_gap_method_reports_every_measure_before_and_after(store):
    import json

    from click.testing import CliRunner

    from embedstore.cli.alignment import _METHODS
    from embedstore.cli.main import cli
    from embedstore.transforms import METHODS
    from tests.test_diagnostics import _paired_store

    assert _METHODS == METHODS  # the CLI's choice list stays in step without importing numpy at --help
    _paired_store(store, n=40)
    args = ["--store", store.uri, "gap", "pairs", "--image-model", "hf:pi", "--text-model", "hf:pt",
            "--method", "procrustes", "--lam", "0"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    for label in ("relative modality gap (RMG)", "modality separability", "cos true pairs / random pairs",
                  "top gap dims", "recall@10 image→distinct text (exact text)", "method procrustes"):
        assert label in res.output
    data = json.loads(CliRunner().invoke(cli, args + ["--json"]).output)
    before, after = data["before"]["measures"], data["after"]["measures"]
    assert data["settings"]["method"] == "procrustes"
    assert after["rmg"] < 0.5 * before["rmg"]  # the rotation (with centring) closes the constructed offset
    assert before["separability"] > 0.95 and after["separability"] < before["separability"]
    assert before["top_gap_dims"][0]["dim"] == 0  # the constructed offset lives on dimension 0
