"""Honest heads choose on the training rows, then refit on all of them (trainers/select.py), with real torch and sklearn."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.errors import InputError
from embedstore.trainers.linear import C_PATIENCE, C_SEARCH
from embedstore.trainers.select import inner_splits
from embedstore.trainers.train import auto_cv, train_arrays


def _data(n=150, seed=0, k=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    xi = rng.standard_normal((n, 8)) * 3 + y[:, None] * 0.8 + 5
    xt = rng.standard_normal((n, 5)) + (y == 2)[:, None]
    split = np.array(["train", "train", "train", "val", "test"] * (n // 5))
    return xi, xt, y, split


def test_linear_probe_chooses_c_by_inner_grouped_cv_and_refits_like_sklearn():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, log_loss
    from sklearn.preprocessing import StandardScaler

    xi, xt, y, split = _data()
    res = train_arrays(xi, xt, y.astype(str), split, fusion="linear", baseline=False)
    run = res.runs[0]
    fit = np.flatnonzero(split != "test")  # the split's train and val rows: every training row
    test = np.flatnonzero(split == "test")

    def fused(rows, on):  # the reference: scalers fitted on the training rows ``on``, text first
        return np.concatenate([StandardScaler().fit(x[on]).transform(x[rows]) for x in (xt, xi)], axis=1)

    parts = inner_splits(y, np.arange(len(y)).astype(str), fit, k=3, seed=0)
    assert sorted(np.concatenate([v for _, v in parts]).tolist()) == fit.tolist()
    tried = run.selection["searched"]["C"]
    assert tried == list(C_SEARCH[:len(tried)]) and run.selection["searched"]["grid"] == list(C_SEARCH)

    def inner_scores(c):  # scikit-learn's own log loss and macro-F1, cold fits, scalers fitted on each inner part
        out = []
        for a, v in parts:
            clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(fused(a, a), y[a])
            out.append((log_loss(y[v], clf.predict_proba(fused(v, a)), labels=[0, 1, 2]),
                        f1_score(y[v], clf.predict(fused(v, a)), average="macro", labels=[0, 1, 2])))
        return np.mean(out, axis=0)

    ref = np.array([inner_scores(c) for c in tried])
    np.testing.assert_allclose([r["val_log_loss"] for r in run.selection["scores"]], ref[:, 0], rtol=0.01)
    np.testing.assert_allclose([r["val_macro_f1"] for r in run.selection["scores"]], ref[:, 1], atol=0.02)
    best = tried[int(np.argmin(ref[:, 0]))]  # the lowest mean inner log loss wins
    assert run.selection["C"] == best == run.selection["chosen"]["C"]
    assert run.selection["selected_on"] == "inner-cv" and run.selection["searched"]["by"] == "log_loss"
    # the path went C_PATIENCE steps past the first part's minimum (or to the grid's end), no further
    first = [log_loss(y[parts[0][1]], LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
                      .fit(fused(parts[0][0], parts[0][0]), y[parts[0][0]])
                      .predict_proba(fused(parts[0][1], parts[0][0])), labels=[0, 1, 2]) for c in tried]
    assert len(tried) == len(C_SEARCH) or len(tried) - 1 - int(np.argmin(first)) == C_PATIENCE
    ref = LogisticRegression(C=best, class_weight="balanced", max_iter=1000).fit(fused(fit, fit), y[fit])
    assert run.metrics["test_pred"] == ref.predict(fused(test, fit)).tolist()
    assert run.metrics["macro_f1"] == pytest.approx(f1_score(y[test], ref.predict(fused(test, fit)), average="macro"))
    assert res.config["scaling"]["image"]["n_fit"] == len(fit) == run.selection["refit"]["rows"]


def test_mlp_searches_on_inner_folds_then_refits_the_chosen_epoch_on_every_training_row():
    xi, xt, y, split = _data(seed=1)
    res = train_arrays(xi, xt, y.astype(str), split, fusion="early", epochs=6, baseline=False,
                       search={"dropout": (0.0, 0.5)})
    run = res.runs[0]
    sel = run.selection
    assert [r["dropout"] for r in sel["scores"]] == [0.0, 0.5]
    assert all(len(r["curve"]) == 6 for r in sel["scores"])
    best = max(sel["scores"], key=lambda r: r["val_macro_f1"])
    assert sel["chosen"]["dropout"] == best["dropout"] and sel["selected_epoch"] == best["epoch"]
    assert best["epoch"] == int(np.argmax(best["curve"])) + 1
    assert len(run.history) == sel["selected_epoch"] == sel["epochs_run"]  # the refit trains the chosen epochs
    n_fit = int(np.sum(split != "test"))
    assert [a + b for a, b in sel["inner"]["rows"]] == [n_fit] * 3 and sel["refit"]["rows"] == n_fit
    assert res.config["scaling"]["image"]["n_fit"] == n_fit
    events = run.events
    selected = events.index(("mark", "selected"))
    assert all(part != "test" for _, part in events[:selected])
    assert [e for e in events[selected:] if e[1] == "test"] == [("vectors", "test"), ("iter", "test")]
    again = train_arrays(xi, xt, y.astype(str), split, fusion="early", epochs=6, baseline=False,
                         search={"dropout": (0.0, 0.5)})
    assert again.runs[0].metrics["test_logits"] == run.metrics["test_logits"]  # deterministic for a seed


def test_settings_given_explicitly_are_fixed_and_select_on_val_uses_the_validation_part():
    xi, xt, y, split = _data(seed=2)
    res = train_arrays(xi, None, y.astype(str), split, fusion="image", epochs=4, dropout=0.2, baseline=False,
                       search={"dropout": (0.0, 0.5)})
    sel = res.runs[0].selection
    assert len(sel["scores"]) == 1 and sel["chosen"]["dropout"] == 0.2 and "dropout" not in sel["searched"]
    val = train_arrays(xi, None, y.astype(str), split, fusion="image", epochs=4, select_on="val", baseline=False)
    sel = val.runs[0].selection
    assert sel["selected_on"] == "val"
    assert sel["inner"]["rows"] == [[int(np.sum(split == "train")), int(np.sum(split == "val"))]]
    assert sel["refit"]["rows"] == int(np.sum(split != "test"))
    with pytest.raises(InputError, match="select_on='best'"):
        train_arrays(xi, None, y.astype(str), split, fusion="image", select_on="best")
    with pytest.raises(InputError, match="unknown settings"):
        train_arrays(xi, None, y.astype(str), split, fusion="image", search={"momentum": (0.9,)})


def test_inner_folds_keep_groups_apart_and_the_cv_default_has_a_threshold():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 40, 200).astype(str)
    y = np.array(["a", "b"])[rng.integers(0, 2, 200)]
    rows = np.arange(200)[::2]
    for fit, val in inner_splits(y, groups, rows, k=3, seed=5):
        assert not set(groups[fit]) & set(groups[val]) and set(fit) | set(val) == set(rows)
    assert (auto_cv(5000, "honest", None), auto_cv(5001, "honest", None)) == (5, None)
    assert (auto_cv(300, "honest", "grouped"), auto_cv(300, "paper", None)) == (None, None)
