"""Classification metrics and the paper's memory formulas (protocol §3.3–3.4).

* Predictions: ``sigmoid > 0.5`` for a single logit, else the argmax.
* Macro-F1 is the mean of every class's F1, for binary tasks too (the
  paper's "F1" is the mean of the F1 of class 0 and class 1).
* ROC-AUC is one-vs-rest (``None`` when a class has no positive or no
  negative in ``y``).
* Data memory per epoch: bytes of the float32 feature and one-hot label
  tensors the paper's loader produced, / 2^20. The paper's *test* formula
  divided the per-batch average by the number of *train* batches
  (:func:`data_mib` returns it next to the corrected value).

Examples
--------
>>> m = classification_metrics(np.array([0, 1, 1, 0]), np.array([[-2.], [3.], [-1.], [-3.]]), n_classes=2)
>>> (m["accuracy"], round(m["macro_f1"], 4), m["confusion"])
(0.75, 0.7333, [[2, 0], [1, 1]])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def probabilities(logits: np.ndarray) -> np.ndarray:
    """(n, K) class probabilities from (n, 1) single-logit or (n, K) logits.

    Sigmoid ``[1-p, p]`` for one output, softmax otherwise (float64, rows sum to 1).

    Examples
    --------
    >>> probabilities(np.array([[0.0]])).tolist(), probabilities(np.zeros((1, 2))).tolist()
    ([[0.5, 0.5]], [[0.5, 0.5]])
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1 or logits.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-logits.reshape(-1)))
        return np.stack([1.0 - p1, p1], axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predictions(logits: np.ndarray) -> np.ndarray:
    """Predicted class per row: ``sigmoid > 0.5`` or argmax."""
    logits = np.asarray(logits)
    if logits.ndim == 1 or logits.shape[1] == 1:
        return (logits.reshape(-1) > 0).astype(np.int64)
    return logits.argmax(axis=1).astype(np.int64)


def quick_scores(y: np.ndarray, logits: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy and macro-F1 of one evaluation pass (the selection's per-epoch scores; no ROC-AUC, which costs
    more than the epoch itself on small parts).

    Examples
    --------
    >>> quick_scores(np.array([0, 1, 1]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), 2)
    {'accuracy': 0.6666666666666666, 'macro_f1': 0.6666666666666666}
    """
    from embedstore.compare import batch_metric

    pred = predictions(logits)
    y = np.asarray(y, dtype=np.int64)
    return {"accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
            "macro_f1": float(batch_metric(y, pred, n_classes)[0])}


def classification_metrics(y: np.ndarray, logits: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1, ROC-AUC (OvR) and the confusion matrix.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
    logits : ndarray, shape (n, 1) or (n, K)
    n_classes : int
        Number of classes K (2 for a single logit).
    """
    y = np.asarray(y, dtype=np.int64)
    pred = predictions(logits)
    k = max(int(n_classes), 2)
    conf = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(conf).astype(np.float64)
    fp = conf.sum(axis=0) - tp
    fn = conf.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "macro_f1": float(f1.mean()),
        "per_class_f1": [float(v) for v in f1],
        "roc_auc_ovr": roc_auc_ovr(y, probabilities(logits), k),
        "confusion": conf.tolist(),
        "n": int(len(y)),
    }


def roc_auc_ovr(y: np.ndarray, proba: np.ndarray, n_classes: int) -> float | None:
    """One-vs-rest ROC-AUC (binary: AUC of class 1); ``None`` when undefined."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return None
    try:
        if n_classes == 2:
            return float(roc_auc_score(y, proba[:, 1]))
        if len(present) < n_classes:  # OvR over the classes that occur
            cols = proba[:, present]
            cols = cols / np.clip(cols.sum(axis=1, keepdims=True), 1e-12, None)
            return float(roc_auc_score(y, cols, multi_class="ovr", labels=present))
        return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(n_classes)))
    except ValueError:
        return None


def data_mib(n_train: int, n_test: int, feature_dim: int, label_width: int, batch_size: int) -> dict[str, float]:
    """Data memory per epoch (MiB) with the paper's formulas and the corrected test one.

    Each row is ``feature_dim`` float32 features plus ``label_width`` float32
    labels (1 for single-logit BCE, K one-hot columns otherwise).

    Examples
    --------
    BRSET DINOv2 + LLaMA-2 (protocol §6.2: 241.48 / 15.10; true test ≈ 60.4):

    >>> d = data_mib(13012, 3254, 768 + 4096, 1, 64)
    >>> round(d["train"], 2), round(d["test_paper"], 2), round(d["test"], 2)
    (241.48, 15.1, 60.39)
    """
    row = (int(feature_dim) + int(label_width)) * 4
    n_train_batches = max(1, math.ceil(n_train / batch_size))
    n_test_batches = max(1, math.ceil(n_test / batch_size))
    test = n_test * row / 2**20
    return {"train": n_train * row / 2**20,
            "test_paper": test / n_train_batches * n_test_batches,
            "test": test}


def summarize(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value); NaN-free inputs.

    Examples
    --------
    >>> [round(v, 4) for v in summarize([0.5, 0.7])]
    [0.6, 0.1414]
    """
    from embedstore.stats import mean_sd

    mean, sd = mean_sd(values)
    return (float("nan"), float("nan")) if mean is None else (mean, sd)
