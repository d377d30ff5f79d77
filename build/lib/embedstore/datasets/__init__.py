"""Dataset adapters: turn a dataset as its publisher distributes it into sample rows.

Each kind has a pure function ``rows(root, *, prompt, seed, progress, **options)``
that reads ``root`` and returns :class:`~embedstore.datasets.base.DatasetRows`
(an Arrow table plus the samples it skipped) without touching a store, so
trainers and demos can reuse it. :func:`embedstore.ingest.ingest` writes them.

=================  ==========================================  ====================
kind               module                                      options
=================  ==========================================  ====================
``ham10000``       :mod:`embedstore.datasets.ham10000`         —
``brset``          :mod:`embedstore.datasets.brset`            —
``satellitebench`` :mod:`embedstore.datasets.satellite`        layout, rgb, window, median_over
``manifest``       :mod:`embedstore.datasets.manifest`         manifest, *_column, text_template, ...
=================  ==========================================  ====================
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError

#: kind -> module holding its ``rows`` function.
KINDS: dict[str, str] = {
    "ham10000": "embedstore.datasets.ham10000",
    "brset": "embedstore.datasets.brset",
    "satellitebench": "embedstore.datasets.satellite",
    "manifest": "embedstore.datasets.manifest",
}
_COMMON = ("prompt", "seed", "progress")


def adapter(kind: str) -> Callable[..., Any]:
    """The ``rows`` function of a dataset kind.

    Examples
    --------
    >>> adapter("ham10000").__module__
    'embedstore.datasets.ham10000'
    >>> adapter("mnist")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: unknown dataset kind 'mnist': use one of ham10000, brset, satellitebench, manifest
    """
    if kind not in KINDS:
        raise InputError(f"unknown dataset kind '{kind}': use one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind]).rows


def options(kind: str) -> tuple[str, ...]:
    """Keyword options a kind accepts beyond prompt/seed/progress.

    Examples
    --------
    >>> options("satellitebench")
    ('layout', 'rgb', 'window', 'median_over')
    """
    params = inspect.signature(adapter(kind)).parameters
    return tuple(p for p in params if p not in ("root",) + _COMMON)


def build_rows(kind: str, root: str | Path, *, prompt: str = "default", seed: int = 42,
               progress: bool = True, **kwargs: Any):
    """Sample rows of ``root`` read as ``kind`` (no store); unknown options raise.

    Returns
    -------
    DatasetRows
    """
    fn = adapter(kind)
    allowed = options(kind)
    bad = [k for k, v in kwargs.items() if k not in allowed and v is not None]
    if bad:
        raise InputError(f"option(s) {bad} do not apply to kind '{kind}'"
                         + (f"; it accepts {list(allowed)}" if allowed else "; it takes no options"))
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return fn(root, prompt=prompt, seed=seed, progress=progress, **kwargs)
