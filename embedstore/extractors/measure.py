"""Measure each backend of a model against torch fp32 eager, quiet and loaded: the table ``auto`` reads.

:func:`measure_backends` times every candidate (torch fp32 = the baseline,
torch bf16 autocast, ONNX Runtime fp32) on the same rows (a dataset's, or
the probe batch) in alternating rounds: each round measures every candidate
once with the machine as it is (*quiet*) and once with two CPU-bound
competitor processes (*loaded*, :func:`embedstore.cpu.competitors`), the
order of the conditions and of the candidates rotating between rounds, so a
change of load hits all of them. A timed pass is what extract's loop does
per batch: preprocessing or tokenising (texts batched by length, as
:func:`~embedstore.extract_inputs.batch_plan` does) and the forward; images
are decoded once beforehand. Reported: medians per condition, their ratio to
torch fp32 of the same condition, the slowest round's ratio, and the minimum
per-row cosine against torch fp32.

With ``write=True`` the entries replace the model's rows in the user's table
(:func:`~embedstore.extractors.backends.user_table_file`), which ``auto``
prefers over the table shipped with the catalog. That changes which runtime
``auto`` runs for the fp32 key (torch or ONNX Runtime), never a key: see
:func:`~embedstore.extractors.backends.auto_choice`.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

#: (``--backend``, ``--quantize``) candidates, the reference first.
CANDIDATES = (("torch", "none"), ("torch", "bf16"), ("onnx", "none"))
CONDITIONS = ("quiet", "loaded")


@dataclass(frozen=True)
class BackendMeasure:
    """One measured (model, modality, backend, dtype) row of the table."""

    model_id: str
    modality: str
    backend: str
    dtype: str
    quiet_rows_per_s: float
    quiet_speedup: float
    loaded_rows_per_s: float | None
    loaded_speedup: float | None
    min_round_speedup: float
    min_cos: float
    rows: int
    batch: int

    def entry(self) -> dict[str, Any]:
        """The row as stored in the table (without figures that were not measured)."""
        d = asdict(self)
        d.pop("model_id")
        return {k: v for k, v in d.items() if v is not None}


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


def rotated(n: int, k: int) -> list[int]:
    """``range(n)`` rotated by ``k`` (round ``k``'s order of the candidates).

    Examples
    --------
    >>> rotated(3, 1)
    [1, 2, 0]
    """
    return [(i + k) % n for i in range(n)] if n else []


def alternating_rounds(fns: Sequence[Any], repeats: int, competitors: int = 2,
                       conditions: Sequence[str] = CONDITIONS) -> dict[str, list[list[float]]]:
    """Seconds per call of each of ``fns``, per condition and round: ``{condition: [[s per round] per fn]}``.

    Round ``k`` runs the conditions in turn (their order reversed on odd
    rounds), each with the fns in the order :func:`rotated` by ``k``;
    ``loaded`` runs under ``competitors`` busy processes.

    Examples
    --------
    >>> out = alternating_rounds([lambda: None, lambda: None], 2, competitors=0)
    >>> sorted(out), [len(x) for x in out["loaded"]]
    (['loaded', 'quiet'], [2, 2])
    """
    from ..cpu import competitors as busy

    times = {c: [[0.0] * repeats for _ in fns] for c in conditions}
    for k in range(repeats):
        for cond in (conditions if k % 2 == 0 else list(conditions)[::-1]):
            with busy(competitors if cond == "loaded" else 0):
                for i in rotated(len(fns), k):
                    t0 = time.perf_counter()
                    fns[i]()
                    times[cond][i][k] = time.perf_counter() - t0
    return times


def summarise(times: dict[str, list[list[float]]], rows: int) -> list[dict[str, float]]:
    """Per fn: median rows/s and speed-up vs fn 0 per condition, and the slowest round's speed-up.

    Examples
    --------
    >>> t = {"quiet": [[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]], "loaded": [[4.0, 4.0, 4.0], [2.0, 2.0, 4.0]]}
    >>> [s["loaded_speedup"] for s in summarise(t, 8)], summarise(t, 8)[1]["min_round_speedup"]
    ([1.0, 2.0], 1.0)
    """
    out = []
    for i in range(len(next(iter(times.values())))):
        row: dict[str, float] = {}
        rounds = []
        for cond, per_fn in times.items():
            rate = rows / statistics.median(per_fn[i])
            row[f"{cond}_rows_per_s"] = rate
            row[f"{cond}_speedup"] = rate / (rows / statistics.median(per_fn[0]))
            rounds += [base / mine for base, mine in zip(per_fn[0], per_fn[i])]
        row["min_round_speedup"] = min(rounds)
        out.append(row)
    return out


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


def pass_fn(ext: Any, modality: str, items: Sequence[Any], batch_size: int):
    """A call that embeds ``items`` as extract's loop does (prepare + forward per batch); returns the vectors.

    Vectors come back in input order.
    """
    import numpy as np

    from ..extract_inputs import batch_plan

    def run() -> Any:
        plan = batch_plan(ext, modality, items, batch_size)
        parts = [ext.forward(modality, ext.prepare(modality, [items[j] for j in p])) for p in plan]
        out = np.empty((len(items), parts[0].shape[1]), dtype=np.float32)
        for p, v in zip(plan, parts):
            out[p] = v
        return out

    return run


def dataset_items(store: Any, dataset: str, rows: int = 256, modalities: Sequence[str] = ("image", "text"),
                  seed: int = 0) -> dict[str, list[Any]]:
    """``rows`` samples of ``dataset`` per modality (a seeded random choice), decoded: what to measure on.

    Samples whose image does not decode or whose text is empty are left out
    (the same rules as extract: :func:`~embedstore.extract_inputs.decode_rows`).
    Modalities the dataset lacks are absent from the result.
    """
    import numpy as np

    from ..extract_inputs import decode_rows
    from ..modalities import dataset_modalities

    have = dataset_modalities(store, dataset)
    table = store.samples(dataset)
    pick = sorted(np.random.default_rng(seed).permutation(table.num_rows)[:rows].tolist())
    ids = [str(table["sample_id"][i]) for i in pick]
    out: dict[str, list[Any]] = {}
    for m in modalities:
        if m in have:
            column = table["image_ref" if m == "image" else "text"]
            _, items = decode_rows(m, ids, [column[i].as_py() for i in pick], range(len(pick)), [])
            if items:
                out[m] = items
    return out


def measure_backends(model_ids: Sequence[str], *, batch_size: int = 32, repeats: int = 3,
                     threads: int | None = None, items: dict[str, list[Any]] | None = None,
                     competitors: int = 2, write: bool = False,
                     candidates: Sequence[tuple[str, str]] = CANDIDATES) -> list[BackendMeasure]:
    """Measure every candidate backend of each model, quiet and loaded; optionally write the user table.

    Parameters
    ----------
    model_ids : list of str
    batch_size : int
        Rows per forward (extract's default: 32).
    repeats : int
        Alternating rounds; medians are reported.
    threads : int, optional
        torch and ONNX Runtime threads (default: all cores).
    items : dict, optional
        ``{"image": [PIL images], "text": [str]}``: the rows to measure on
        (a dataset's: ``embedstore backends --measure --dataset NAME``);
        a modality without items uses the synthetic probe batch.
    competitors : int
        CPU-bound processes of the loaded condition (0: measure quiet only).
    write : bool
        Replace these models' rows in the user's backend table.

    Examples
    --------
    >>> rows = measure_backends(["builtin:minilm-l6"], batch_size=4, repeats=1)  # doctest: +SKIP
    >>> rows[0].backend, rows[0].quiet_speedup  # doctest: +SKIP
    ('torch', 1.0)
    """
    from ..extract import _torch_threads
    from .backends import min_cosine, probe_items

    conditions = CONDITIONS if competitors > 0 else ("quiet",)
    out: list[BackendMeasure] = []
    with _torch_threads(threads):
        for given in model_ids:
            exts = candidate_extractors(given, candidates)
            mid = exts[0].resolved.model_id  # canonical
            for modality in exts[0].identity.modalities:
                data = (items or {}).get(modality) or probe_items(modality, batch_size, (320, 240))
                fns = [pass_fn(e, modality, data, batch_size) for e in exts]
                ref = fns[0]()
                cos = [min(min_cosine(ref, fn()), e.parity.get(modality, 1.0)) for e, fn in zip(exts, fns)]
                stats = summarise(alternating_rounds(fns, repeats, competitors, conditions), len(data))
                for e, st, c in zip(exts, stats, cos):
                    fig = {k: round(v, 3) for k, v in st.items()}
                    out.append(BackendMeasure(mid, modality, e.backend, e.dtype, fig["quiet_rows_per_s"],
                                              fig["quiet_speedup"], fig.get("loaded_rows_per_s"),
                                              fig.get("loaded_speedup"), fig["min_round_speedup"], round(c, 7),
                                              len(data), batch_size))
    if write:
        write_table(out)
    return out


def write_table(rows: Sequence[BackendMeasure]) -> str:
    """Replace the measured models' entries in the user's backend table; returns its path."""
    from ..cpu import describe
    from .backends import user_table_file

    path = user_table_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"models": {}}
    data["note"] = f"written by embedstore backends --measure; last on {describe()}"
    models = data.setdefault("models", {})
    for mid in {r.model_id for r in rows}:
        models[mid] = [r.entry() for r in rows if r.model_id == mid]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return str(path)
