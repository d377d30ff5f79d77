"""Shortcut columns: metadata (or prompt fields) that give the label away on their own.

HAM10000's ``dx_type`` is the known case: every ``follow_up`` lesion is a
nevus, so a prompt that says "diagnosed via follow_up" hands the answer to a
text model. For every metadata column (numbers in ten quantile bins,
missing values as their own value) two things are measured, without
vectors:

* the best **rule** "value → class": among values on at least
  ``min_support`` rows, the one whose most frequent class leaves the least
  of the error of always guessing that class, ``error ratio = (1 -
  precision) / (1 - class share)``; 0 means the value decides the label;
* a **column-only classifier** in grouped, stratified ``k``-fold
  cross-validation (each value predicts the class most over-represented
  among its training rows): balanced accuracy against chance ``1/K``, as
  the gain ``(bacc - 1/K) / (1 - 1/K)``.

A column is a shortcut when a rule's error ratio is at most ``rule_error``
(default 0.1) or the gain is at least ``gain`` (default 0.5): far above
chance, not merely informative (age and body site inform a skin diagnosis
and are not flagged on HAM10000: their best rules leave 26 % and 33 % of the
error). Columns used by the stored prompt templates are marked, since the
text vectors then carry the shortcut. Identifier-like columns (more than
half the rows distinct) and a copy of the label itself are skipped, with
the reason.

Examples
--------
>>> import pyarrow as pa
>>> rng = np.random.default_rng(0)
>>> y = rng.choice(["a", "b", "c"], 300)
>>> via = np.where(y == "a", "follow_up", rng.choice(["histo", "consensus"], 300))
>>> rows = pa.table({"sample_id": [f"s{i}" for i in range(300)], "label": y, "via": via,
...                  "noise": rng.choice(["x", "y"], 300), "prompt_template": ["Seen via {via}."] * 300})
>>> [(c["column"], c["shortcut"], c["in_prompt"]) for c in shortcut_columns(rows)]
[('via', True, True), ('noise', False, False)]
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import pyarrow as pa

from ..datasets.splits import PREDICT_ONLY
from ..schema import SAMPLE_CORE

#: Columns never tested: the samples table's own columns and the group.
NOT_METADATA = set(SAMPLE_CORE) | {"group_id"}
DEFAULT_RULE_ERROR = 0.1
DEFAULT_GAIN = 0.5
DEFAULT_MIN_SUPPORT = 20


def prompt_fields(templates: list[str | None]) -> dict[str, list[str]]:
    """``{field: [templates using it]}`` of format-string templates.

    Examples
    --------
    >>> prompt_fields(["Age {age}, via {dx_type}.", "Age {age}."])
    {'age': ['Age {age}, via {dx_type}.', 'Age {age}.'], 'dx_type': ['Age {age}, via {dx_type}.']}
    """
    out: dict[str, list[str]] = {}
    for t in sorted({t for t in templates if t}):
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(t) if f}
        except ValueError:
            continue
        for name in names:
            out.setdefault(name.split(".")[0].split("[")[0], []).append(t)
    return dict(sorted(out.items()))


def _as_values(column: pa.ChunkedArray) -> np.ndarray:
    """A column as strings: numbers in ten quantile bins, nulls as ``"(missing)"``."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        a = np.asarray(column.to_pylist(), dtype=float)
        ok = ~np.isnan(a)
        out = np.full(len(a), "(missing)", dtype=object)
        if ok.any():
            edges = np.unique(np.quantile(a[ok], np.linspace(0, 1, 11)[1:-1]))
            bins = np.digitize(a[ok], edges)
            lo = np.r_[a[ok].min(), edges]
            out[ok] = [f"bin {b} (≥{lo[b]:g})" for b in bins]
        return out
    return np.asarray(["(missing)" if v is None else str(v) for v in column.to_pylist()], dtype=object)


def _best_rule(x: np.ndarray, y: np.ndarray, min_support: int) -> dict[str, Any] | None:
    best = None
    for value in np.unique(x):
        m = x == value
        if m.sum() < min_support:
            continue
        cls, cnt = np.unique(y[m], return_counts=True)
        c = cls[cnt.argmax()]
        precision = float(cnt.max() / m.sum())
        share = float(np.mean(y == c))
        ratio = (1.0 - precision) / max(1.0 - share, 1e-12)
        if best is None or ratio < best["error_ratio"]:
            best = {"value": str(value), "label": str(c), "precision": precision, "class_share": share,
                    "support": int(m.sum()), "error_ratio": float(ratio)}
    return best


def _cv_balanced_accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> float | None:
    import warnings

    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(k, len(np.unique(groups)))
    if k < 2:
        return None
    classes = np.unique(y)
    pred = np.empty(len(y), dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        folds = list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(x, y, groups))
    for train, test in folds:
        prior = np.array([np.mean(y[train] == c) for c in classes]) + 1e-12
        fallback = classes[prior.argmax()]
        lift = {}
        for value in np.unique(x[train]):
            m = x[train] == value
            share = np.array([np.mean(y[train][m] == c) for c in classes])
            lift[value] = classes[(share / prior).argmax()]
        pred[test] = [lift.get(v, fallback) for v in x[test]]
    return float(balanced_accuracy_score(y, pred.astype(str)))


def shortcut_columns(rows: pa.Table, *, label_column: str = "label", k: int = 5, seed: int = 0,
                     min_support: int = DEFAULT_MIN_SUPPORT, rule_error: float = DEFAULT_RULE_ERROR,
                     gain: float = DEFAULT_GAIN) -> list[dict[str, Any]]:
    """Each metadata column's power to predict the label alone; see the module docstring.

    Returns
    -------
    list of dict
        Per column: ``column``, ``shortcut`` (bool), ``in_prompt``, ``rule``
        (the best value → class rule), ``balanced_accuracy``, ``chance``,
        ``gain``, ``distinct``; or ``skipped`` with the reason. Shortcuts
        first, then by gain.
    """
    if label_column not in rows.column_names:
        return []
    label = rows[label_column].to_pylist()
    split_cols = sorted(c for c in rows.column_names if c.startswith("split_"))
    first = rows[split_cols[0]].to_pylist() if split_cols else [None] * len(label)
    keep = np.array([lab is not None and s != PREDICT_ONLY for lab, s in zip(label, first)], dtype=bool)
    if keep.sum() < 2 * min_support:
        return []
    y = np.asarray([str(v) for v in label], dtype=object)[keep]
    n_classes = len(np.unique(y))
    if n_classes < 2:
        return []
    ids = np.asarray(rows["sample_id"].to_pylist(), dtype=object)[keep]
    groups = (np.asarray([g if g else s for g, s in zip(rows["group_id"].to_pylist(), rows["sample_id"].to_pylist())],
                         dtype=object)[keep] if "group_id" in rows.column_names else ids).astype(str)
    fields = prompt_fields(rows["prompt_template"].to_pylist()) if "prompt_template" in rows.column_names else {}
    support = max(min_support, int(0.01 * len(y)))
    out = []
    for col in rows.column_names:
        if col in NOT_METADATA or col == label_column or col.startswith(("split_", "label_")):
            continue
        x = _as_values(rows[col])[keep]
        entry: dict[str, Any] = {"column": col, "in_prompt": col in fields, "distinct": int(len(np.unique(x)))}
        if np.array_equal(x.astype(str), y.astype(str)):
            out.append(entry | {"shortcut": False, "skipped": "a copy of the label"})
            continue
        if entry["distinct"] > 0.5 * len(y) or entry["distinct"] < 2:
            out.append(entry | {"shortcut": False, "skipped": "identifier-like" if entry["distinct"] > 1
                                else "constant"})
            continue
        rule = _best_rule(x, y, support)
        bacc = _cv_balanced_accuracy(x, y, groups, k, seed)
        chance = 1.0 / n_classes
        g = None if bacc is None else (bacc - chance) / (1.0 - chance)
        flagged = bool((rule is not None and rule["error_ratio"] <= rule_error) or (g is not None and g >= gain))
        out.append(entry | {"shortcut": flagged, "rule": rule, "balanced_accuracy": bacc, "chance": chance,
                            "gain": g, "templates": fields.get(col, [])})
    return sorted(out, key=lambda e: (not e["shortcut"], "skipped" in e, -(e.get("gain") or 0.0)))
