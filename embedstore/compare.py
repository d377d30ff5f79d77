"""Paired comparison of two recorded settings: mean difference with a 95 % interval.

Two settings (two ``group_id`` s of the ``runs`` table, e.g. early vs late
fusion, or λ=0.8 vs λ=0) are compared **on the same test rows**: runs are
paired by cross-validation split seed and fold (``config["cv"]``), or, for
runs on a fixed split, by that split. Within a pair, the model seeds of each
setting are averaged. The statistic is the mean over pairs of
``metric(A) − metric(B)``.

The interval is a **paired percentile bootstrap over test rows**: each
resample draws the rows of every fold with replacement, the *same* rows
for both settings, and recomputes the statistic from the recorded test
predictions (``metrics["test_pred"]``). When it covers 0 the verdict is
"no evidence of a difference". It measures how much the comparison could
move with another sample of patients of the same size, for the trained
models as they are.

Examples
--------
>>> y = np.array([0, 1, 1, 0, 1, 0, 1, 1])
>>> good, bad = y.copy(), np.zeros_like(y)
>>> d, lo, hi, _ = paired_bootstrap([(y, [good], [bad])], n_classes=2, n_resamples=500)
>>> round(d, 3), lo > 0
(0.727, True)
>>> verdict(-0.01, 0.02)
'no evidence of a difference'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import InputError
from .runs import RunRecord, list_runs

METRICS = ("macro_f1", "accuracy")


def batch_metric(y: np.ndarray, pred: np.ndarray, n_classes: int, metric: str = "macro_f1") -> np.ndarray:
    """``metric`` of each row of ``(B, n)`` label / prediction arrays → ``(B,)``.

    Macro-F1 averages the F1 of all ``n_classes`` classes (0 for a class
    neither present nor predicted), as the trainers' metrics do.

    Examples
    --------
    >>> batch_metric(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]), 2).round(4).tolist()
    [0.6667]
    """
    y, pred = np.atleast_2d(y), np.atleast_2d(pred)
    if metric == "accuracy":
        return (y == pred).mean(axis=1)
    if metric != "macro_f1":
        raise InputError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    k = max(int(n_classes), 2)
    b = np.arange(len(y))[:, None]
    conf = np.bincount((b * k * k + y * k + pred).ravel(), minlength=len(y) * k * k).reshape(len(y), k, k)
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(np.float64)
    denom = 2 * tp + (conf.sum(axis=1) - tp) + (conf.sum(axis=2) - tp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(axis=1)


def paired_bootstrap(pairs: Sequence[tuple[np.ndarray, Sequence[np.ndarray], Sequence[np.ndarray]]],
                     n_classes: int, *, metric: str = "macro_f1", n_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float, np.ndarray]:
    """Mean paired difference A − B over ``pairs`` and its percentile bootstrap interval.

    Parameters
    ----------
    pairs : list of (y, preds_a, preds_b)
        Per fold: test labels and the predictions of each seed of A and of
        B. An empty ``preds_b`` stands for 0: the result is then A's own
        mean and interval.
    n_classes : int
    metric : {"macro_f1", "accuracy"}
    n_resamples, seed, level : int, int, float

    Returns
    -------
    (difference, low, high, resampled differences)
    """
    rng = np.random.default_rng(seed)
    observed, boot = [], np.zeros(n_resamples)
    for y, preds_a, preds_b in pairs:
        y = np.asarray(y, dtype=np.int64)
        idx = rng.integers(0, len(y), size=(n_resamples, len(y)))

        def mean_over_seeds(preds: Sequence[np.ndarray], rows) -> np.ndarray:
            if not len(preds):
                return np.zeros(len(rows))
            return np.mean([batch_metric(y[rows], np.asarray(p, dtype=np.int64)[rows], n_classes, metric)
                            for p in preds], axis=0)

        full = np.arange(len(y))[None, :]
        observed.append(float(mean_over_seeds(preds_a, full)[0] - mean_over_seeds(preds_b, full)[0]))
        boot += mean_over_seeds(preds_a, idx) - mean_over_seeds(preds_b, idx)
    boot /= len(pairs)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(np.mean(observed)), float(low), float(high), boot


def verdict(low: float, high: float, a: str = "A", b: str = "B") -> str:
    """``"no evidence of a difference"`` when ``[low, high]`` covers 0, else which side is better."""
    if low <= 0.0 <= high:
        return "no evidence of a difference"
    return f"{a} is better" if low > 0 else f"{b} is better"


@dataclass
class Comparison:
    """The paired comparison of settings ``a`` and ``b`` (see the module docstring)."""

    a: str
    b: str
    metric: str
    difference: float
    low: float
    high: float
    level: float
    n_pairs: int
    n_rows: int
    mean_a: float
    mean_b: float
    label_a: str = ""
    label_b: str = ""
    method: str = "paired percentile bootstrap over test rows (same rows for A and B, per fold)"
    n_resamples: int = 2000
    pairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high, self.label_a or self.a, self.label_b or self.b)

    def line(self) -> str:
        """One sentence: the difference, its interval and the verdict."""
        return (f"{self.metric} {self.label_a or self.a} − {self.label_b or self.b} = {self.difference:+.4f} "
                f"(95% CI {self.low:+.4f} to {self.high:+.4f}; {self.n_pairs} paired folds, {self.n_rows} test "
                f"rows): {self.verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _pair_key(rec: RunRecord) -> tuple:
    config = getattr(rec, "config", None) or {}  # a RunRecord, or a trainer's RunResult (``cv`` of its own)
    cv = config.get("cv") or getattr(rec, "cv", None)
    if cv:
        return ("cv", int(cv["k"]), int(cv["split_seed"]), int(cv["fold"]))
    return ("split", getattr(rec, "split", "") or config.get("split_column", ""))


def describe_setting(recs: Sequence[RunRecord]) -> str:
    """Short label of a setting: fusion, alignment and scaling."""
    first = recs[0]
    align = ",".join(sorted(set(first.alignment_keys.values()))) or "none"
    scale = first.config.get("scale") or {}
    scale_txt = "/".join(sorted(set(scale.values()))) if scale else "none"
    return f"{first.fusion} (align {align}, scale {scale_txt})"


def compare_records(a: Sequence[RunRecord], b: Sequence[RunRecord], *, metric: str = "macro_f1",
                    n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
                    names: tuple[str, str] = ("A", "B")) -> Comparison:
    """Pair the runs of two settings on their common folds and bootstrap the difference."""
    by_key: dict[tuple, list[list[RunRecord]]] = {}
    for side, recs in enumerate((a, b)):
        for rec in recs:
            if "test_pred" not in rec.metrics:
                raise InputError(f"run '{rec.run_id}' has no recorded test predictions (recorded before "
                                 "paired comparisons, or in paper mode): re-train the setting in honest mode")
            by_key.setdefault(_pair_key(rec), [[], []])[side].append(rec)
    pairs, info, n_rows = [], [], 0
    n_classes = 2
    for key, (ra, rb) in sorted(by_key.items()):
        if not ra or not rb:
            continue
        y = np.asarray(ra[0].metrics["test_y"])
        for rec in ra + rb:
            if not np.array_equal(np.asarray(rec.metrics["test_y"]), y):
                raise InputError(f"runs '{ra[0].run_id}' and '{rec.run_id}' share fold {key} but not its test "
                                 "rows: compare settings trained on the same dataset version and folds")
        n_classes = max(n_classes, len(ra[0].metrics.get("classes") or []))
        pairs.append((y, [np.asarray(r.metrics["test_pred"]) for r in ra],
                      [np.asarray(r.metrics["test_pred"]) for r in rb]))
        info.append({"key": list(key), "seeds_a": len(ra), "seeds_b": len(rb), "rows": int(len(y))})
        n_rows += len(y)
    if not pairs:
        raise InputError(f"settings {names[0]} and {names[1]} share no fold: train both with the same cv=K and "
                         "cv_seed= (or on the same split) to compare them")
    diff, low, high, _ = paired_bootstrap(pairs, n_classes, metric=metric, n_resamples=n_resamples, seed=seed,
                                          level=level)
    mean_a = float(np.mean([np.mean([batch_metric(y, p, n_classes, metric)[0] for p in pa]) for y, pa, _ in pairs]))
    return Comparison(names[0], names[1], metric, diff, low, high, level, len(pairs), n_rows, mean_a,
                      mean_a - diff, describe_setting(a), describe_setting(b), n_resamples=n_resamples, pairs=info)


def fold_predictions(records: Sequence[RunRecord]) -> tuple[list[tuple[np.ndarray, list, list]], int]:
    """``(pairs, n_classes)`` of one setting for :func:`paired_bootstrap` (its runs grouped by fold)."""
    by_key: dict[tuple, list[RunRecord]] = {}
    for rec in records:
        if "test_pred" in rec.metrics:
            by_key.setdefault(_pair_key(rec), []).append(rec)
    n_classes = max([2] + [len(r.metrics.get("classes") or []) for r in records])
    return [(np.asarray(rs[0].metrics["test_y"]), [np.asarray(r.metrics["test_pred"]) for r in rs], [])
            for _, rs in sorted(by_key.items())], n_classes


def setting_interval(records: Sequence[RunRecord], metric: str = "macro_f1", n_resamples: int = 2000,
                     seed: int = 0) -> tuple[float, float, float] | None:
    """Mean ``metric`` of one setting over its folds with a 95% bootstrap interval over test rows (or ``None``)."""
    pairs, k = fold_predictions(records)
    if not pairs:
        return None
    mean, low, high, _ = paired_bootstrap(pairs, k, metric=metric, n_resamples=n_resamples, seed=seed)
    return mean, low, high


def compare_settings(store, a: str, b: str, **kw: Any) -> Comparison:
    """:func:`compare_records` of the recorded groups ``a`` and ``b`` (group ids, see ``embedstore runs``).

    A run id stands for its group (the setting it belongs to); an id that
    names neither is reported as unknown, with the closest group ids.
    """
    return compare_records(setting_records(store, a), setting_records(store, b), names=(a, b), **kw)


def setting_records(store, gid: str) -> list[RunRecord]:
    """The runs of the setting ``gid`` names: a group id, or a run id standing for its group; else unknown."""
    from .runs import unknown_run, what_id

    kind, found = what_id(store, gid)
    if kind == "run":
        return list_runs(store, group_id=found[0].group_id)
    if kind != "group":
        raise unknown_run(store, gid, expected="group")
    return found


def baseline_comparison(records: Sequence[Any], *, metric: str = "macro_f1", n_resamples: int = 2000, seed: int = 0,
                        level: float = 0.95, name: str = "A") -> Comparison | None:
    """A setting against the independent scikit-learn baseline recorded with its runs, on the same test rows.

    Every honest run records the baseline's test predictions of its split
    or fold (``metrics["baseline"]``, :mod:`embedstore.trainers.baseline`);
    the difference setting − baseline is bootstrapped over test rows exactly
    as :func:`compare_records` does for two settings. ``records`` are run
    records or a trainer's run results; ``None`` when they carry no baseline.

    Examples
    --------
    >>> from types import SimpleNamespace as Run
    >>> y = [0, 1, 1, 0, 1, 0]
    >>> run = Run(config={}, split="s", metrics={"test_y": y, "test_pred": y, "classes": ["a", "b"],
    ...                                          "baseline": {"test_pred": [0] * 6}})
    >>> cmp = baseline_comparison([run])
    >>> round(cmp.difference, 3), cmp.label_b
    (0.667, 'baseline')
    """
    by_key: dict[tuple, list[Any]] = {}
    for rec in records:
        if "test_pred" in rec.metrics and "test_pred" in (rec.metrics.get("baseline") or {}):
            by_key.setdefault(_pair_key(rec), []).append(rec)
    if not by_key:
        return None
    n_classes = max([2] + [len(r.metrics.get("classes") or []) for r in records])
    pairs, info = [], []
    for key, recs in sorted(by_key.items()):
        y = np.asarray(recs[0].metrics["test_y"])
        pairs.append((y, [np.asarray(r.metrics["test_pred"]) for r in recs],
                      [np.asarray(recs[0].metrics["baseline"]["test_pred"])]))
        info.append({"key": list(key), "seeds_a": len(recs), "seeds_b": 1, "rows": int(len(y))})
    diff, low, high, _ = paired_bootstrap(pairs, n_classes, metric=metric, n_resamples=n_resamples, seed=seed,
                                          level=level)
    mean_a = float(np.mean([np.mean([batch_metric(y, p, n_classes, metric)[0] for p in pa]) for y, pa, _ in pairs]))
    label = describe_setting(records) if hasattr(records[0], "alignment_keys") else name
    return Comparison(name, "baseline", metric, diff, low, high, level, len(pairs), sum(len(p[0]) for p in pairs),
                      mean_a, mean_a - diff, label, "baseline", n_resamples=n_resamples, pairs=info)


def baseline_cells(records: Sequence[Any]) -> dict[str, str]:
    """The baseline columns of a results row: the baseline's macro-F1 and the paired difference with its interval."""
    cmp = baseline_comparison(records)
    if cmp is None:
        return {"baseline macro-F1": "", "− baseline (95% CI)": "", "vs baseline": "no baseline recorded"}
    return {"baseline macro-F1": f"{cmp.mean_b:.3f}",
            "− baseline (95% CI)": f"{cmp.difference:+.3f} ({cmp.low:+.3f} to {cmp.high:+.3f})",
            "vs baseline": baseline_verdict(cmp)}


def baseline_verdict(cmp: Comparison) -> str:
    """``better than the baseline`` / ``worse than the baseline`` / ``no evidence of a difference``."""
    if cmp.low > 0:
        return "better than the baseline"
    if cmp.high < 0:
        return "worse than the baseline"
    return "no evidence of a difference"


def compare_with_baseline(store, group: str, **kw: Any) -> Comparison | None:
    """:func:`baseline_comparison` of the setting ``group`` names (:func:`setting_records`; ``None`` when its
    runs carry no baseline)."""
    return baseline_comparison(setting_records(store, group), name=group, **kw)
