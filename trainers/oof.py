"""Out-of-fold class probabilities: every row scored by a model trained on the other groups' rows.

The label-issue check (:mod:`embedstore.datacheck.labels`) needs, for each
labelled row, class probabilities from a model that never saw that row nor
any row of its group. :func:`out_of_fold` draws ``k`` grouped, stratified
folds (:func:`embedstore.trainers.cv.grouped_folds`) and

* ``head="linear"`` (the default): the linear probe's model (scikit-learn's
  lbfgs :class:`~sklearn.linear_model.LogisticRegression`, as in
  :mod:`embedstore.trainers.linear`) on concat(text, image), standardised on
  each training part, but **without class weights** (balanced weights
  inflate the rare classes' probabilities, and the ranking then suspects
  every rare-class row), in float32; ``C`` walks up :data:`OOF_C_GRID`
  (each fold's fit warm-started from its fit at the previous ``C``, lbfgs
  stopped at :data:`OOF_TOL`) and stops once the out-of-fold log-loss rises;
  the ``C`` kept is the one with the lowest log-loss (the probabilities,
  not the decisions, are what is used), the same as trying the whole grid
  whenever the log-loss has one minimum along it;
* any other head (``early``, ``late``, ``image``, ``text``): honest-mode
  grouped cross-validation of that head
  (:func:`embedstore.trainers.train.train_arrays` with ``cv=k``), its test
  logits turned into probabilities.

Measured on dev1000 with 10 % of labels flipped (EfficientNet-Lite0 image +
MiniLM text vectors, the planted copy of ``tests/test_datacheck_accept.py``):
56 of the 100 flipped rows among the 100 most suspect (C=0.001 kept), against
48 with the probe's balanced weights at that C, and 35-45 with C chosen on
macro-F1. Over 10 other random draws of the flipped rows: 44-62 (mean 52.8),
in every draw the same count as the first version of this probe (float64,
lbfgs tol 1e-4, all four values of C; top-100 sets equal or one row apart,
probabilities within 0.01), which took about four times the CPU: on the
5,000 rows of ``benchmarks/datacheck.py``, 9.4 CPU-s (8.6, 10.2) against
36.4 (35.9, 37.0), two interleaved runs each on AMD EPYC Zen 3 (2 cores),
probabilities within 0.02 of the first version's; the whole ``check`` there
19.4 CPU-s (19.4, 19.4) against 45.5 (44.9, 46.2).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1], 60)
>>> x = {"image": rng.standard_normal((120, 4)) + y[:, None] * 2.0}
>>> p = out_of_fold(x, y, np.arange(120).astype(str), ["a", "b"], k=4)
>>> p.shape, bool(((p.argmax(1) == y).mean()) > 0.8)
((120, 2), True)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Sequence

import numpy as np

from embedstore.errors import InputError

from .cv import grouped_folds

#: Inverse regularisation strengths tried by the out-of-fold probe (strong: few rows, wide vectors).
OOF_C_GRID = (0.0003, 0.001, 0.003, 0.01)
#: Stopping tolerance of the probe's lbfgs fits (scikit-learn's default 1e-4 takes about twice the iterations
#: for the same choice of C and log-loss within 0.001 on dev1000 and on 5,000 rows).
OOF_TOL = 1e-3
#: Bumped when the out-of-fold procedure changes (part of a check record's key).
OOF_VERSION = 2


def probe_settings(head: str = "linear", k: int = 5, seed: int = 0,
                   c_grid: Sequence[float] = OOF_C_GRID) -> dict[str, Any]:
    """The settings of :func:`out_of_fold` that key a check record."""
    out: dict[str, Any] = {"head": head, "k": int(k), "seed": int(seed), "version": OOF_VERSION}
    if head == "linear":
        out.update(c_grid=[float(c) for c in c_grid], c_search="ascending, stops when out-of-fold log-loss rises",
                   tol=OOF_TOL, dtype="float32")
    return out


def out_of_fold(x: dict[str, np.ndarray], y: np.ndarray, groups: Sequence[str], classes: Sequence[str], *,
                k: int = 5, seed: int = 0, head: str = "linear",
                c_grid: Sequence[float] = OOF_C_GRID) -> np.ndarray:
    """Out-of-fold ``(n, K)`` class probabilities of rows ``x`` (``{modality: (n, d)}``) with label codes ``y``.

    Parameters
    ----------
    x : dict
        ``{"image": ..., "text": ...}`` row-aligned matrices (one or both).
    y : ndarray of int
        Label codes into ``classes``.
    groups : sequence of str
        Group of each row; no group is split between folds.
    classes : sequence of str
    k, seed : int
        Folds and the seed of their draw.
    head : str
        ``linear`` or an MLP head of :mod:`embedstore.trainers.models`.
    c_grid : sequence of float
        ``C`` values of the linear probe.
    """
    y = np.asarray(y, dtype=np.int64)
    if head == "linear":
        return _linear(x, y, np.asarray(groups).astype(str), len(classes), k, seed, c_grid)
    return _head(x, y, np.asarray(groups).astype(str), list(classes), k, seed, head)


def _linear(x: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, n_classes: int, k: int, seed: int,
            c_grid: Sequence[float]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    parts = [np.asarray(x[m], dtype=np.float32) for m in ("text", "image") if m in x]
    if not parts:
        raise InputError("out_of_fold: no vectors given (pass x={'image': ..., 'text': ...})")
    feats = np.concatenate(parts, axis=1)
    folds = grouped_folds(y, groups, k, seed)
    grid = sorted(float(c) for c in c_grid)
    if not grid:
        raise InputError("out_of_fold: c_grid is empty: give at least one C")
    models = [LogisticRegression(C=grid[0], tol=OOF_TOL, max_iter=1000, random_state=int(seed), warm_start=True)
              for _ in range(k)]
    scaled: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = [None] * k  # per fold, standardised once

    def fit_fold(fold: int, c: float, probs: np.ndarray) -> None:
        if scaled[fold] is None:
            train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            scaler = StandardScaler().fit(feats[train])  # on the training part only
            scaled[fold] = (scaler.transform(feats[train]), scaler.transform(feats[test]), test)
        a, b, test = scaled[fold]
        clf = models[fold]
        clf.set_params(C=c).fit(a, y[folds != fold])  # from this fold's solution at the previous (smaller) C
        probs[np.ix_(test, clf.classes_)] = clf.predict_proba(b)  # disjoint rows per fold

    # one single-threaded BLAS per fold, folds side by side on the usable cores (the fits release the GIL):
    # the same fits as one after another, so the same probabilities
    best: tuple[float, np.ndarray] | None = None
    with threadpool_limits(1), ThreadPoolExecutor(max_workers=max(1, min(k, _cores()))) as pool:
        for c in grid:  # ascending; stop once the out-of-fold log-loss rises (past its minimum)
            probs = np.zeros((len(y), n_classes))
            list(pool.map(partial(fit_fold, c=c, probs=probs), range(k)))
            loss = log_loss(y, _normalised(probs), labels=np.arange(n_classes))  # float32 rows: sum to 1 again
            if best is not None and loss >= best[0]:
                break
            best = (loss, probs)
    return _normalised(best[1])  # type: ignore[index]  (the grid is not empty)


def _cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _head(x: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, classes: list[str], k: int, seed: int,
          head: str) -> np.ndarray:
    from .train import train_arrays

    labels = np.asarray(classes, dtype=object)[y]
    res = train_arrays(x.get("image"), x.get("text"), labels, None, fusion=head, cv=k, groups=groups,
                       cv_seed=seed, seed=seed, classes=classes, record=False)
    probs = np.zeros((len(y), len(classes)))
    for run in res.runs:
        rows = np.asarray(run.cv["test"], dtype=np.int64)
        logits = np.asarray(run.metrics["test_logits"], dtype=np.float64)
        if logits.shape[1] == 1:  # one logit: the positive class's
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            probs[rows] = np.stack([1.0 - p1, p1], axis=1)
        else:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs[rows] = e / e.sum(axis=1, keepdims=True)
    return _normalised(probs)


def _normalised(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, None)
    return p / p.sum(axis=1, keepdims=True)
