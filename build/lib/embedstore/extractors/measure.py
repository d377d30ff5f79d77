"""Measure each backend of a model against torch fp32 eager: the table ``auto`` reads.

:func:`measure_backends` times the bare forward of every candidate (torch
fp32, torch bf16 autocast, ONNX Runtime fp32, ONNX Runtime int8) on the same
batch, in alternating rounds (one forward of each candidate per round, so a
change of machine load hits all of them), and reports medians, the speed-up
against torch fp32 of the same run and the minimum per-row cosine against
torch fp32. With ``write=True`` the entries replace the model's rows in the
user's table (:func:`~embedstore.extractors.backends.user_table_file`), which
``auto`` prefers over the table shipped with the catalog.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

#: (``--backend``, ``--quantize``) candidates, the reference first.
CANDIDATES = (("torch", "none"), ("torch", "bf16"), ("onnx", "none"), ("onnx", "8bit"))


@dataclass(frozen=True)
class BackendMeasure:
    """One measured (model, modality, backend, dtype) row of the table."""

    model_id: str
    modality: str
    backend: str
    dtype: str
    rows_per_s: float
    speedup: float
    min_cos: float
    rows: int

    def entry(self) -> dict[str, Any]:
        """The row as stored in the table."""
        d = asdict(self)
        d.pop("model_id")
        return d


def timed_rounds(fns: Sequence[Any], repeats: int) -> list[list[float]]:
    """Call each of ``fns`` once per round for ``repeats`` rounds; seconds per call, per fn.

    Examples
    --------
    >>> out = timed_rounds([lambda: None, lambda: None], 3)
    >>> [len(x) for x in out]
    [3, 3]
    """
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return times


def candidate_extractors(model_id: str, candidates: Sequence[tuple[str, str]] = CANDIDATES, **opts: Any) -> list[Any]:
    """Extractors of ``model_id`` for each candidate that the model supports, parity gate off (to measure it).

    The gate still runs and records ``ext.parity``; the caller decides.
    """
    from ..errors import InputError
    from . import load_extractor

    out = []
    for backend, quantize in candidates:
        try:
            out.append(load_extractor(model_id, backend=backend, quantize=quantize, parity_gate=False, **opts))
        except InputError:  # e.g. bf16 where the model has no bf16 path
            continue
    return out


def measure_backends(model_ids: Sequence[str], *, batch_size: int = 32, repeats: int = 3,
                     threads: int | None = None, items: dict[str, list[Any]] | None = None,
                     write: bool = False) -> list[BackendMeasure]:
    """Measure every candidate backend of each model on one batch; optionally write the user table.

    Parameters
    ----------
    model_ids : list of str
    batch_size : int
        Rows per forward (synthetic probe images/texts unless ``items`` is given).
    repeats : int
        Alternating rounds; medians are reported.
    threads : int, optional
        torch and ONNX Runtime threads (default: all cores).
    items : dict, optional
        ``{"image": [PIL images], "text": [str]}`` to measure on real inputs.
    write : bool
        Replace these models' rows in the user's backend table.

    Examples
    --------
    >>> rows = measure_backends(["builtin:minilm-l6"], batch_size=4, repeats=1)  # doctest: +SKIP
    >>> rows[0].backend, rows[0].speedup  # doctest: +SKIP
    ('torch', 1.0)
    """
    from ..extract import _torch_threads
    from .backends import min_cosine, probe_items

    out: list[BackendMeasure] = []
    with _torch_threads(threads):
        for given in model_ids:
            exts = candidate_extractors(given)
            mid = exts[0].resolved.model_id  # canonical
            for modality in exts[0].identity.modalities:
                data = (items or {}).get(modality) or probe_items(modality, batch_size, (320, 240))
                batches = [(e, e.prepare(modality, data)) for e in exts]
                ref = exts[0].forward(modality, batches[0][1])
                cos = [min_cosine(ref, e.forward(modality, b)) for e, b in batches]  # also the warm-up
                times = timed_rounds([lambda e=e, b=b: e.forward(modality, b) for e, b in batches], repeats)
                base = len(data) / statistics.median(times[0])
                for e, t, c in zip(exts, times, cos):
                    rate = len(data) / statistics.median(t)
                    out.append(BackendMeasure(mid, modality, e.backend, e.dtype, round(rate, 3),
                                              round(rate / base, 3), round(c, 6), len(data)))
    if write:
        write_table(out)
    return out


def write_table(rows: Sequence[BackendMeasure]) -> str:
    """Replace the measured models' entries in the user's backend table; returns its path."""
    from .backends import user_table_file

    path = user_table_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"note": "written by embedstore backends --measure", "models": {}}
    models = data.setdefault("models", {})
    for mid in {r.model_id for r in rows}:
        models[mid] = [r.entry() for r in rows if r.model_id == mid]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return str(path)
