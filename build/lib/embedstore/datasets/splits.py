"""Deterministic train/val/test splits, stored as ``split_<name>`` columns.

* :func:`paper_split`: the paper's ``train_test_split(test_size=0.2,
  stratify=..., random_state=seed)`` over images (optionally a second split
  of train into train/val, as SatelliteBench does). On the full HAM10000
  metadata it gives the paper's 8,012 / 2,003.
* :func:`grouped_split`: 70/10/20 train/val/test with no group (patient,
  lesion, municipality) in two splits, stratified on the label as far as the
  groups allow. Groups are placed largest first (ties in a seeded random
  order); each goes to the split where it most reduces the squared distance
  between the per-class counts and their targets.

Both depend only on the labels, groups, row order (paper) and seed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SPLITS = ("train", "val", "test")
#: Split value of every row of an unlabelled (predict-only) dataset.
PREDICT_ONLY = "predict"


def paper_split(stratify: Sequence, *, seed: int = 42, test_size: float = 0.2,
                val_size: float | None = None, notes: list[str] | None = None) -> list[str]:
    """The paper's stratified random split over rows, as a list of split names.

    Parameters
    ----------
    stratify : sequence
        Per-row values to stratify on (the paper: ``dx``, ``DR_ICDR``, ``Labels``).
    seed : int
        ``random_state`` (the paper: 42).
    test_size : float
    val_size : float, optional
        Fraction of the *train* part split off as ``val`` (SatelliteBench: 0.25).
    notes : list, optional
        Receives a line when stratification is impossible (a class with one
        row) and an unstratified split is used instead.

    Examples
    --------
    >>> s = paper_split(["a"] * 8 + ["b"] * 2)
    >>> s.count("train"), s.count("test")
    (8, 2)
    >>> s = paper_split(["0"] * 780 + ["1"] * 780, val_size=0.25)
    >>> [s.count(x) for x in SPLITS]
    [936, 312, 312]
    """
    n = len(stratify)
    out = ["train"] * n
    if n < 2:
        return out
    idx = np.arange(n)
    train, test = _tts(idx, np.asarray([str(v) for v in stratify], dtype=object), test_size, seed, notes)
    for i in test:
        out[i] = "test"
    if val_size:
        sub = np.asarray([str(stratify[i]) for i in train], dtype=object)
        if len(train) >= 2:
            _, val = _tts(np.asarray(train), sub, val_size, seed, notes)
            for i in val:
                out[i] = "val"
    return out


def _tts(idx: np.ndarray, y: np.ndarray, size: float, seed: int, notes: list[str] | None):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(idx, test_size=size, stratify=y, random_state=seed)
    except ValueError as exc:
        if notes is not None:
            notes.append(f"paper split: stratification impossible ({exc}); used an unstratified split")
        return train_test_split(idx, test_size=size, random_state=seed)


def grouped_split(labels: Sequence, groups: Sequence, *, seed: int = 42,
                  fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> list[str]:
    """Train/val/test by group, stratified on ``labels`` where possible.

    Parameters
    ----------
    labels, groups : sequence
        Per-row label and group id (patient, lesion, municipality).
    seed : int
    fractions : (train, val, test)

    Returns
    -------
    list of str
        ``train``, ``val`` or ``test`` per row; all rows of a group share one.

    Examples
    --------
    >>> labels = ["a", "b"] * 50
    >>> groups = [i // 2 for i in range(100)]          # pairs of rows
    >>> s = grouped_split(labels, groups, seed=0)
    >>> [s.count(x) for x in SPLITS]
    [70, 10, 20]
    >>> all(s[i] == s[i + 1] for i in range(0, 100, 2))
    True
    """
    n = len(labels)
    if n == 0:
        return []
    if len(groups) != n:
        raise ValueError("grouped_split: labels and groups differ in length")
    classes, y = np.unique(np.asarray([str(v) for v in labels], dtype=object), return_inverse=True)
    keys, g = np.unique(np.asarray([str(v) for v in groups], dtype=object), return_inverse=True)
    counts = np.zeros((len(keys), len(classes)))
    np.add.at(counts, (g, y), 1.0)
    target = np.outer(np.asarray(fractions, dtype=float), counts.sum(axis=0))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    order = order[np.argsort(-counts.sum(axis=1)[order], kind="stable")]
    alloc = np.zeros_like(target)
    assign = np.zeros(len(keys), dtype=np.int64)
    for gi in order:
        c = counts[gi]
        # increase of sum((alloc - target)^2) if the group joins each split
        delta = (c * (2.0 * (alloc - target) + c)).sum(axis=1)
        s = int(np.argmin(delta))
        assign[gi] = s
        alloc[s] += c
    return [SPLITS[s] for s in assign[g]]
