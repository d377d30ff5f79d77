"""The linear-probe head (``fusion="linear"``): logistic regression on the fused, scaled features.

The simplest baseline a reviewer asks for: scikit-learn
:class:`~sklearn.linear_model.LogisticRegression` with balanced class
weights on concat(text, image) (text first, as early fusion; either
modality alone when only one is given), after the run's input scaling.
The inverse regularisation ``C`` is chosen from :data:`C_GRID` on the
selection split (validation in honest mode, test in paper mode, like the
epoch of the MLP heads); in honest mode the source is then marked
``selected`` and the test split is read once. It returns the same
:class:`~embedstore.trainers.fit_loop.SeedOutcome` as the MLP heads, so it is recorded,
summarised and compared like them; its "epochs" are the C values tried.

Examples
--------
>>> from embedstore.trainers.loader import ArraySource
>>> from embedstore.trainers.protocol import resolve_protocol
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(["a", "b"], 60)
>>> x = rng.standard_normal((120, 3)) + (y == "b")[:, None] * 2
>>> src = ArraySource(x, None, y, ["train", "train", "val", "test"] * 30)
>>> out = fit_linear(src, resolve_protocol("honest"), seed=0)
>>> out.selection["selected_on"], out.metrics["accuracy"] > 0.8, out.cost["params"]
('val', True, 4)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .fit_loop import SeedOutcome, cost_summary
from .loader import Source
from .metrics import classification_metrics
from .protocol import Protocol

#: Inverse regularisation strengths tried (selected on the selection split).
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def fused_arrays(source: Source, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of ``split`` in row order: concat(text, image) of the modalities present."""
    xs, ys = [], []
    for xi, xt, y in source.batches(split, 4096, None):
        parts = [x.numpy() for x in (xt, xi) if x is not None]
        xs.append(np.concatenate(parts, axis=1))
        ys.append(y.numpy())
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys)


def logistic(c: float, seed: int):
    """The probe estimator for one ``C`` (balanced classes, lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=1000, random_state=int(seed))


def logits_of(clf, x: np.ndarray) -> np.ndarray:
    """Decision values shaped like a head's logits: (n, 1) for binary, (n, K) otherwise."""
    d = clf.decision_function(x)
    return d.reshape(-1, 1) if d.ndim == 1 else d


def fit_linear(source: Source, proto: Protocol, seed: int, *, c_grid: tuple[float, ...] = C_GRID,
               **_: Any) -> SeedOutcome:
    """Fit one probe per ``C`` on train, keep the best selection-split macro-F1 (first maximum), test it.

    BLAS runs on one thread (as the MLP heads' torch): on a shared CPU the
    problem is far too small for threads, which only spin-wait (30x slower
    measured on 2 busy cores).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit_linear(source, proto, seed, c_grid)


def _fit_linear(source: Source, proto: Protocol, seed: int, c_grid: tuple[float, ...]) -> SeedOutcome:
    n_classes = max(len(source.classes), 2)
    x_tr, y_tr = fused_arrays(source, "train")
    x_sel, y_sel = fused_arrays(source, proto.select_on)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    for i, c in enumerate(c_grid, start=1):
        t0 = time.perf_counter()
        clf = logistic(c, seed).fit(x_tr, y_tr)
        t1 = time.perf_counter()
        m = classification_metrics(y_sel, logits_of(clf, x_sel), n_classes)
        t2 = time.perf_counter()
        history.append({"epoch": i, "C": c, "train_s": t1 - t0, "infer_s": t2 - t1, "split": proto.select_on,
                        "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "roc_auc_ovr": m["roc_auc_ovr"]})
        if not best or m["macro_f1"] > best["metrics"]["macro_f1"]:
            best = {"epoch": i, "C": c, "metrics": m, "clf": clf}
    clf = best["clf"]
    selection: dict[str, Any] = {"selected_on": proto.select_on, "selected_epoch": best["epoch"],
                                 "epochs_run": len(history), "C": best["C"], "c_grid": list(c_grid)}
    test_s = None
    if proto.select_on == "test":
        metrics = best["metrics"]
    else:
        source.mark("selected")
        selection["val"] = {k: best["metrics"][k] for k in ("accuracy", "macro_f1", "roc_auc_ovr")}
        t0 = time.perf_counter()
        x_te, y_te = fused_arrays(source, "test")
        logits = logits_of(clf, x_te)
        metrics = classification_metrics(y_te, logits, n_classes)
        metrics["test_logits"] = np.asarray(logits, dtype=np.float64).tolist()  # predict reproduces these
        metrics["test_y"], metrics["test_pred"] = y_te.tolist(), [int(v) for v in clf.predict(x_te)]
        test_s = time.perf_counter() - t0
    params = int(clf.coef_.size + clf.intercept_.size)
    cost = cost_summary(params, source, "linear", 1 if n_classes == 2 else n_classes, proto, history, test_s)
    loss = {"loss": "logistic", "class_weight": "balanced", "solver": "lbfgs", "C": best["C"]}
    return SeedOutcome(int(seed), metrics, history, selection, cost, loss, clf)
