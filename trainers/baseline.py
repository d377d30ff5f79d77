"""The independent baseline beside every honest result: what a reviewer would write in ten lines of scikit-learn.

For the training rows and test rows of a split or fold, :func:`sklearn_baseline`
fits ``StandardScaler → LogisticRegression(class_weight="balanced")`` with
``C`` chosen by scikit-learn's own :class:`~sklearn.model_selection.GridSearchCV`
(``refit=True``) over :data:`BASELINE_C` on a grouped, stratified
:data:`BASELINE_INNER_K`-fold split of the training rows (macro-F1), on the
raw stored vectors of the modalities the head reads (text then image,
concatenated). It uses scikit-learn and NumPy only: none of embedstore's
scaling, selection, fitting or metric code, so a bug there cannot hide in
the comparison. Every honest run records the baseline's test predictions
next to its own (``metrics["baseline"]``); :mod:`embedstore.compare` pairs
them row by row.

The result depends only on the rows' vectors, labels and groups, so it is
computed once per split or fold and shared by every seed and every head
that reads the same vectors (an in-process cache keyed by a digest of them).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1], 40)
>>> x = rng.standard_normal((80, 5)) + y[:, None]
>>> out = sklearn_baseline(x[:60], y[:60], np.arange(60), x[60:], n_classes=2)
>>> sorted(out), len(out["test_pred"])
(['C', 'grid', 'inner_k', 'model', 'seconds', 'test_pred', 'train_rows', 'val_macro_f1'], 20)
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Callable, Mapping

import numpy as np

#: The baseline's C grid: 1e-5 to 1e2, one value per decade. On a dev1000 fold half-decade steps chose 3.2e-3
#: (inner macro-F1 0.519) where decades chose 1e-3 (0.516), at twice the CPU time (12.5 s against 5.8 s).
BASELINE_C = tuple(float(c) for c in np.logspace(-5, 2, 8))
#: Inner grouped folds of the baseline's GridSearchCV.
BASELINE_INNER_K = 3
#: What the baseline is, in words (tables and reports).
BASELINE_NAME = "scikit-learn StandardScaler + LogisticRegression(balanced), C by inner grouped 3-fold CV"

_CACHE: "OrderedDict[str, dict[str, Any]]" = OrderedDict()


def sklearn_baseline(x_train: np.ndarray, y_train: np.ndarray, groups_train: np.ndarray, x_test: np.ndarray, *,
                     n_classes: int, seed: int = 0) -> dict[str, Any]:
    """Fit the baseline on the training rows and predict the test rows (see the module docstring)."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    inner = StratifiedGroupKFold(BASELINE_INNER_K, shuffle=True, random_state=seed)
    search = GridSearchCV(pipe, {"logisticregression__C": list(BASELINE_C)}, scoring="f1_macro", cv=inner,
                          refit=True, error_score="raise")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a class rarer than the inner folds: still grouped
        search.fit(np.asarray(x_train, dtype=np.float64), np.asarray(y_train), groups=np.asarray(groups_train))
        pred = search.predict(np.asarray(x_test, dtype=np.float64))
    return {"model": BASELINE_NAME, "C": float(search.best_params_["logisticregression__C"]),
            "grid": list(BASELINE_C), "inner_k": BASELINE_INNER_K, "val_macro_f1": float(search.best_score_),
            "train_rows": int(len(y_train)), "test_pred": [int(v) for v in pred],
            "seconds": round(time.perf_counter() - t0, 3)}


def _fused(parts: tuple[np.ndarray | None, np.ndarray | None]) -> np.ndarray:
    """concat(text, image) of the modalities present."""
    return np.concatenate([x for x in (parts[1], parts[0]) if x is not None], axis=1)


def baseline_of(folds, parts: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The baseline of ``parts["train"]`` → ``parts["test"]`` of a :class:`~embedstore.trainers.cv.FoldSource` (cached).

    Returns its record: test predictions, the chosen ``C``, the grid, rows,
    and the macro-F1 of those predictions against the test labels.
    """
    return baseline_later(folds, parts)()


def baseline_later(folds, parts: Mapping[str, np.ndarray]) -> Callable[[], dict[str, Any]]:
    """:func:`baseline_of`, fitted in a background thread: reads the rows now, returns a call that waits for it.

    The vectors are read (and logged) in the calling thread; only the
    scikit-learn fit runs beside the head's own training, so on two cores
    the baseline costs little wall time. Cached results return at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    # everything the fit imports, imported here first: two threads importing scikit-learn at once can see a
    # partially initialised module (ImportError "cannot import name ... (most likely due to a circular import)")
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401
    import threadpoolctl  # noqa: F401

    train, test = np.asarray(parts["train"]), np.asarray(parts["test"])
    x_train, x_test = _fused(folds.arrays(train, "train")), _fused(folds.arrays(test, "test"))
    y_train, y_test = folds.y[train], folds.y[test]
    h = hashlib.sha256()
    for a in (x_train, x_test, y_train, folds.groups[train].astype(str), y_test):
        h.update(np.ascontiguousarray(a).tobytes())
    key = h.hexdigest()
    k = max(len(folds.classes), 2)
    pool = None
    if key not in _CACHE:
        pool = ThreadPoolExecutor(1, thread_name_prefix="embedstore-baseline")
        job = pool.submit(sklearn_baseline, x_train, y_train, folds.groups[train], x_test, n_classes=k)

    def result() -> dict[str, Any]:
        if pool is not None:
            try:
                _CACHE[key] = job.result()
            finally:
                pool.shutdown()
            while len(_CACHE) > 64:
                _CACHE.popitem(last=False)
        out = dict(_CACHE[key])
        out["macro_f1"] = _macro_f1(y_test, np.asarray(out["test_pred"]), k)
        out["accuracy"] = float(np.mean(np.asarray(out["test_pred"]) == y_test)) if len(y_test) else float("nan")
        return out

    return result


def _macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """scikit-learn's macro-F1 over every class (absent and unpredicted classes count 0, as the heads' metric)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=list(range(n_classes)), average="macro", zero_division=0))
