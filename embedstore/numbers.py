"""Numbers a user gives (λ, learning rate, patience, sizes, versions), checked before anything is written.

A ``nan`` or ``inf`` λ used to pass ``align``/``gap``/``sweep``, fail late
inside Lance and leave a registered alignment without vectors; an output
size of 0 was silently read as "the default". :func:`check_number` refuses
such values in one line naming the option, the value and what is allowed.

Examples
--------
>>> check_number("lr", 0.001, low=0, low_open=True)
0.001
>>> check_number("lam", float("nan"))
Traceback (most recent call last):
...
embedstore.errors.InputError: lam=nan: must be a finite number
>>> check_number("patience", -1, low=0, integer=True)
Traceback (most recent call last):
...
embedstore.errors.InputError: patience=-1: must be a whole number >= 0
"""

from __future__ import annotations

import math
from typing import Any

from .errors import InputError


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False, fix: str = "") -> Any:
    """``value`` when it is a finite number within the bounds, else :class:`InputError` naming ``name``.

    Parameters
    ----------
    name : str
        The option as the API spells it (the CLI turns ``name=`` into its flag).
    low, high : float, optional
        Bounds, inclusive unless ``low_open``/``high_open``.
    integer : bool
        Require a whole number (``True``/``False`` are not numbers here).
    fix : str
        Appended to the message.
    """
    from numbers import Integral, Real

    kind = "a whole number" if integer else "a finite number"
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok and integer:
        ok = isinstance(value, Integral) or float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return value
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    shown = f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)
    raise InputError(f"{name}={shown}: must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}"
                     + (f"; {fix}" if fix else ""))


def check_alignment_params(params: dict[str, Any]) -> None:
    """λ, noise and seed of an alignment (``transform.get_params()``), checked before it is fitted or registered.

    Examples
    --------
    >>> check_alignment_params({"lam": 1.0, "noise_std": 0.0, "seed": 0})
    >>> check_alignment_params({"lam": float("inf")})
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: lam=inf: must be a finite number; λ scales the shift along the gap, e.g. 1 closes it
    """
    if "lam" in params:
        check_number("lam", params["lam"], fix="λ scales the shift along the gap, e.g. 1 closes it")
    if "noise_std" in params:
        check_number("noise_std", params["noise_std"], low=0)
    if "seed" in params:
        check_number("seed", params["seed"], integer=True)
