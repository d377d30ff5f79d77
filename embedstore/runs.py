"""The ``runs`` table: one row per trained seed, pinned to the table versions it read.

A record holds the run id and its group (the seeds of one ``train`` call),
the dataset, the model keys and alignment keys, the **exact versions** of the
samples and embeddings tables that were read, the config and seed, the
per-epoch history, the final metrics and the environment (versions, threads,
CPU). ``embedstore.trainers.train.rerun`` re-executes a run from its record.

:func:`referenced_versions` tells maintenance which table versions runs
depend on, so a ``cleanup`` never deletes them. This module only stores and
reads records; it never imports ``trainers``.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> rec = RunRecord(run_id=new_run_id(), group_id="g1", dataset="toy", fusion="early", mode="honest",
...                 seed=0, table_versions={"samples__toy": 3, "emb__text__abc__4": 2},
...                 metrics={"accuracy": 0.9, "macro_f1": 0.8})
>>> _ = record_run(s, rec)
>>> get_run(s, rec.run_id).table_versions
{'emb__text__abc__4': 2, 'samples__toy': 3}
>>> referenced_versions(s)
{'emb__text__abc__4': {2}, 'samples__toy': {3}}
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from .errors import NotFoundError
from .formats import ToDict
from .schema import RUNS
from .sql import eq
from .stats import format_mean_sd

_JSON_FIELDS = ("model_keys", "alignment_keys", "table_versions", "config", "history", "metrics",
                "environment")

RUNS_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("group_id", pa.string()),
    pa.field("created_at", pa.string()),
    pa.field("kind", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("fusion", pa.string()),
    pa.field("mode", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("split", pa.string()),
    pa.field("loader", pa.string()),
    pa.field("rerun_of", pa.string()),
    *[pa.field(name, pa.string()) for name in _JSON_FIELDS],
])


@dataclass
class RunRecord(ToDict):
    """One recorded training run (one seed).

    Attributes
    ----------
    run_id, group_id : str
    dataset, fusion, mode : str
    seed : int
    model_keys, alignment_keys : dict
        ``{"image": key, "text": key}`` for the modalities used.
    table_versions : dict
        ``{table: version}`` of every table read.
    split, loader : str
        Split column, and the data path that ran (``memory``/``stream``/``arrays``).
    config, history, metrics, environment : dict / list
    kind : str
        ``fusion`` for embedding heads (other trainers may add kinds).
    rerun_of : str or None
        The run this one re-executed.
    """

    run_id: str
    dataset: str
    fusion: str
    mode: str
    seed: int
    group_id: str = ""
    kind: str = "fusion"
    split: str = ""
    loader: str = ""
    model_keys: dict[str, str] = field(default_factory=dict)
    alignment_keys: dict[str, str] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    rerun_of: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The flat row stored in the ``runs`` table (nested fields as JSON)."""
        row = {name: getattr(self, name) for name in RUNS_SCHEMA.names if name not in _JSON_FIELDS}
        row["created_at"] = self.created_at or datetime.now().isoformat(timespec="microseconds")
        for name in _JSON_FIELDS:
            row[name] = json.dumps(getattr(self, name), sort_keys=True, default=_json_default)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "RunRecord":
        """Inverse of :meth:`to_row`."""
        kw = {k: v for k, v in row.items() if k in cls.__dataclass_fields__}
        for name in _JSON_FIELDS:
            kw[name] = json.loads(row[name]) if row.get(name) else ({} if name != "history" else [])
        return cls(**kw)

    def summary(self) -> dict[str, Any]:
        """One flat line for listings: ids, setting, headline metrics."""
        m = self.metrics
        return {"run_id": self.run_id, "group_id": self.group_id, "created_at": self.created_at,
                "dataset": self.dataset, "fusion": self.fusion, "mode": self.mode, "seed": self.seed,
                "accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"),
                "roc_auc_ovr": m.get("roc_auc_ovr"), "epoch": m.get("selected_epoch"),
                "loader": self.loader, "alignment": ",".join(sorted(set(self.alignment_keys.values())))}


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, set):
        return sorted(obj)
    return str(obj)


def new_run_id() -> str:
    """A unique, time-ordered run id.

    Examples
    --------
    >>> new_run_id().startswith("run-")
    True
    """
    return f"run-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid() % 100000:05d}-{uuid.uuid4().hex[:8]}"


def record_run(store, record: RunRecord):
    """Write ``record`` to the ``runs`` table (keyed by ``run_id``); returns the WriteResult."""
    row = record.to_row()
    data = pa.Table.from_pylist([row], schema=RUNS_SCHEMA)
    if not record.created_at:
        record.created_at = row["created_at"]
    return store.upsert(RUNS, data, key="run_id", schema=RUNS_SCHEMA)


def list_runs(store, dataset: str | None = None, *, group_id: str | None = None,
              kind: str | None = None) -> list[RunRecord]:
    """Recorded runs, oldest first, optionally of one dataset / group / kind."""
    if not store.has_table(RUNS):
        return []
    clauses = [eq(col, v) for col, v in (("dataset", dataset), ("group_id", group_id), ("kind", kind))
               if v is not None]
    rows = store.read(RUNS, where=" AND ".join(clauses) or None).to_pylist()
    return [RunRecord.from_row(r) for r in sorted(rows, key=lambda r: (r["created_at"], r["run_id"]))]


def get_run(store, run_id: str) -> RunRecord:
    """The run ``run_id``.

    Raises
    ------
    NotFoundError
        When no such run is recorded: the message says when ``run_id`` is a
        group (and lists its runs) or a sweep, else names the closest run ids.
    """
    if store.has_table(RUNS):
        rows = store.read(RUNS, where=eq("run_id", run_id)).to_pylist()
        if rows:
            return RunRecord.from_row(rows[0])
    raise unknown_run(store, run_id)


def what_id(store, ref: str) -> tuple[str, list[RunRecord]]:
    """What ``ref`` names in the runs table: ``("run", [record])``, ``("group", its runs)``,
    ``("sweep", its runs)`` or ``("unknown", [])``.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> _ = record_run(s, RunRecord("run-1", "toy", "early", "honest", 0, group_id="g1"))
    >>> [what_id(s, x)[0] for x in ("run-1", "g1", "g2")]
    ['run', 'group', 'unknown']
    """
    if not store.has_table(RUNS):
        return "unknown", []
    for kind, col in (("run", "run_id"), ("group", "group_id")):
        rows = store.read(RUNS, where=eq(col, ref)).to_pylist()
        if rows:
            return kind, [RunRecord.from_row(r) for r in sorted(rows, key=lambda r: (r["created_at"], r["run_id"]))]
    if ref.startswith("sweep-") and "." not in ref:
        recs = [r for r in list_runs(store) if r.group_id.startswith(ref + ".")]
        if recs:
            return "sweep", recs
    return "unknown", []


def unknown_run(store, ref: str, *, expected: str = "run") -> NotFoundError:
    """The error for ``ref`` given where a run id (``expected="run"``) or a group id is expected.

    It says what ``ref`` is when it names something else (a group and its
    runs, a run and its group, a sweep and its groups), else that it is
    unknown, with the closest ids.
    """
    kind, recs = what_id(store, ref)
    if kind == "group" and expected == "run":
        ids = ", ".join(r.run_id for r in recs[:6]) + (", ..." if len(recs) > 6 else "")
        return NotFoundError(f"'{ref}' is a group of {len(recs)} run(s), not a run id: use one of its runs ({ids}), "
                             f"or pass the group where a group is accepted (embedstore predict --run GROUP "
                             f"predicts with the ensemble of its heads)")
    if kind == "run" and expected == "group":
        return NotFoundError(f"'{ref}' is a run, not a group id: its group is '{recs[0].group_id}'")
    if kind == "sweep":
        groups = sorted({r.group_id for r in recs})
        return NotFoundError(f"'{ref}' is a sweep of {len(groups)} group(s), not a {expected} id: use one of its "
                             f"groups ({', '.join(groups[:4])}{', ...' if len(groups) > 4 else ''})")
    from .errors import did_you_mean

    known = list_runs(store)
    names = [r.run_id for r in known] if expected == "run" else [r.group_id for r in known]
    return NotFoundError(f"unknown {expected} '{ref}': no {expected} '{ref}' in store {store.uri}"
                         f"{did_you_mean(ref, names)}; list them with 'embedstore runs"
                         f"{' --each' if expected == 'run' else ''}'")


class RunRegistry:
    """The store's recorded runs, ``store.runs``: list, get, record (the functions of this module).

    Calling it, ``store.runs(dataset)``, lists it.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> _ = s.runs.record(RunRecord("run-1", "toy", "concat", "paper", 0))
    >>> [r.run_id for r in s.runs.list("toy")], s.runs.get("run-1").fusion
    (['run-1'], 'concat')
    """

    def __init__(self, store) -> None:
        self._store = store

    def __call__(self, dataset: str | None = None, **filters: str | None) -> list[RunRecord]:
        return self.list(dataset, **filters)

    def list(self, dataset: str | None = None, *, group_id: str | None = None,
             kind: str | None = None) -> list[RunRecord]:
        """Recorded runs, oldest first; see :func:`list_runs`."""
        return list_runs(self._store, dataset, group_id=group_id, kind=kind)

    def get(self, run_id: str) -> RunRecord:
        """The run ``run_id``; see :func:`get_run`."""
        return get_run(self._store, run_id)

    def record(self, record: RunRecord):
        """Write ``record``; see :func:`record_run`."""
        return record_run(self._store, record)


def referenced_versions(store) -> dict[str, set[int]]:
    """``{table: {versions}}`` read by recorded runs (what a cleanup must keep)."""
    out: dict[str, set[int]] = {}
    if not store.has_table(RUNS):
        return out
    for text in store.read(RUNS, columns=["table_versions"])["table_versions"].to_pylist():
        for table, version in json.loads(text or "{}").items():
            out.setdefault(table, set()).add(int(version))
    return dict(sorted(out.items()))


def group_runs(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """Records grouped by ``group_id`` (the seeds of one setting), in first-seen order.

    Examples
    --------
    >>> recs = [RunRecord("a", "toy", "early", "honest", 0, group_id="g"),
    ...         RunRecord("b", "toy", "early", "honest", 1, group_id="g")]
    >>> {g: len(r) for g, r in group_runs(recs).items()}
    {'g': 2}
    """
    groups: dict[str, list[RunRecord]] = {}
    for rec in records:
        groups.setdefault(rec.group_id or rec.run_id, []).append(rec)
    return groups


def compare_groups(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per group of seeds: setting, n seeds, mean ± sd of accuracy and macro-F1.

    Examples
    --------
    >>> recs = [RunRecord("a", "toy", "early", "honest", s, group_id="g", metrics={"accuracy": v, "macro_f1": v})
    ...         for s, v in enumerate([0.5, 0.7])]
    >>> row = compare_groups(recs)[0]
    >>> (row["seeds"], row["macro_f1"])
    (2, '0.6000 ± 0.1414')
    """
    rows = []
    for gid, recs in group_runs(records).items():
        first = recs[0]
        row = {"group_id": gid, "dataset": first.dataset, "fusion": first.fusion, "mode": first.mode,
               "alignment": ",".join(sorted(set(first.alignment_keys.values()))), "seeds": len(recs)}
        for metric in ("accuracy", "macro_f1"):
            vals = [r.metrics.get(metric) for r in recs if r.metrics.get(metric) is not None]
            row[metric] = format_mean_sd(vals)
        row["created_at"] = first.created_at
        rows.append(row)
    return rows
