"""Mean ± sd over seeds or folds: the one helper every table, sweep and report uses.

The sd is the sample standard deviation (``ddof=1``), 0 for a single value;
``None`` and NaN values (a metric a run did not record) are left out.

>>> [round(v, 4) for v in mean_sd([0.5, 0.7, None])]
[0.6, 0.1414]
>>> format_mean_sd([0.5, 0.7])
'0.6000 ± 0.1414'
"""

from __future__ import annotations

import math
from typing import Iterable


def _values(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def mean_sd(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """``(mean, sample sd)`` of the recorded values; ``(None, None)`` when there are none."""
    vals = _values(values)
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return mean, sd


def format_mean_sd(values: Iterable[float | None], digits: int = 4) -> str:
    """``"mean ± sd"`` with ``digits`` decimals; ``""`` when nothing was recorded."""
    mean, sd = mean_sd(values)
    return "" if mean is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"
