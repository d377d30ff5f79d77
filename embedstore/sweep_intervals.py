"""Paired intervals of a sweep's λ points against its two references.

Every λ of a sweep (``embedstore.trainers.sweep.sweep``) is trained with the same
seeds on the same split as

* **no alignment**: the unaligned vectors, recorded under
  ``<sweep_id>.none`` (trained once per seed and reused like every λ);
* **λ=0 normalisation**: the same method's λ=0 point (the map and the
  renormalisation alone), when the grid holds λ=0.

The difference of a λ point from a reference is paired by seed: the
per-seed test macro-F1 (or accuracy) of the point minus that of the
reference, and its interval is the Student t interval of the mean of those
``n`` differences (``scipy.stats.t``, ``n - 1`` degrees of freedom). One
seed gives the difference without an interval. The interval says how much
the mean difference could move with other training seeds on this split;
:mod:`embedstore.compare` gives the complementary bootstrap over test rows.

Examples
--------
>>> iv = paired_t_interval([0.60, 0.62, 0.65], [0.50, 0.55, 0.52])
>>> round(iv.difference, 4), round(iv.low, 3), round(iv.high, 3), iv.n
(0.1, 0.025, 0.175, 3)
>>> paired_t_interval([0.6], [0.5]).low is None
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

#: What an interval here is, for tables and reports.
METHOD = "paired Student t over seeds (same split)"


@dataclass(frozen=True)
class PairedInterval:
    """Mean paired difference A − B over ``n`` seeds with its t interval (``None`` bounds for one seed)."""

    difference: float
    low: float | None
    high: float | None
    n: int
    level: float = 0.95

    def text(self, digits: int = 3) -> str:
        """``+0.012 [-0.004, +0.028]`` (or ``+0.012 (1 seed)``); bounds clipped to [-1, 1], the range of a
        difference of two metrics in [0, 1]."""
        d = f"{self.difference:+.{digits}f}"
        if self.low is None:
            return f"{d} ({self.n} seed)"
        low, high = max(-1.0, self.low), min(1.0, self.high)
        return f"{d} [{low:+.{digits}f}, {high:+.{digits}f}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {**asdict(self), "method": METHOD}


def paired_t_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedInterval:
    """The paired t interval of ``mean(a - b)`` (``a[i]`` and ``b[i]`` from the same seed).

    Parameters
    ----------
    a, b : sequence of float
        Same length, at least 1.
    level : float
        Coverage of the interval.

    Returns
    -------
    PairedInterval
    """
    from scipy import stats

    from .stats import mean_sd

    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired_t_interval needs two equally long, non-empty sequences, got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    mean, sd = mean_sd(diffs)
    n = len(diffs)
    if n < 2:
        return PairedInterval(mean, None, None, n, level)
    half = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1)) * sd / math.sqrt(n)
    return PairedInterval(mean, mean - half, mean + half, n, level)


def point_interval(point: Any, reference: Any, metric: str = "macro_f1") -> PairedInterval | None:
    """``point − reference`` paired over their common seeds (two :class:`~embedstore.sweep_records.SweepPoint`).

    ``None`` when either is missing or they share no seed.
    """
    if point is None or reference is None:
        return None
    field = "test_f1_by_seed" if metric == "macro_f1" else "test_acc_by_seed"
    a = dict(zip(point.seed_list, getattr(point, field)))
    b = dict(zip(reference.seed_list, getattr(reference, field)))
    common = [s for s in a if s in b and a[s] is not None and b[s] is not None]
    if not common:
        return None
    return paired_t_interval([a[s] for s in common], [b[s] for s in common])


def sweep_intervals(points: Sequence[Any], reference: Any, metric: str = "macro_f1") -> list[dict[str, Any]]:
    """Per λ point: ``{"lam", "vs_none", "vs_lam0"}`` (:class:`PairedInterval` or ``None``)."""
    lam0 = next((p for p in points if abs(p.lam) < 1e-12), None)
    return [{"lam": p.lam, "vs_none": point_interval(p, reference, metric),
             "vs_lam0": None if p is lam0 else point_interval(p, lam0, metric)} for p in points]


def mean_interval(values: Sequence[float], level: float = 0.95) -> PairedInterval:
    """Mean of ``values`` (one per seed) with its t interval (the paired interval against 0).

    Examples
    --------
    >>> mean_interval([0.5, 0.5]).text()
    '+0.500 [+0.500, +0.500]'
    """
    return paired_t_interval(values, [0.0] * len(values), level)


def comparison_panel(points: Sequence[Any], reference: Any, selected: float | None = None) -> dict[str, Any]:
    """One panel of :func:`embedstore.figures.method_comparison_plot`: test macro-F1 per λ and the reference."""
    ivs = [mean_interval([v for v in p.test_f1_by_seed if v is not None]) if p.test_f1_by_seed else None
           for p in points]
    panel = {"lam": [p.lam for p in points], "mean": [p.test_f1 for p in points],
             "low": [iv.low if iv else None for iv in ivs], "high": [iv.high if iv else None for iv in ivs],
             "reference": None, "selected": selected}
    if reference is not None and reference.test_f1_by_seed:
        r = mean_interval([v for v in reference.test_f1_by_seed if v is not None])
        panel["reference"] = (r.difference, r.low, r.high)
    return panel
