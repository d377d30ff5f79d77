"""The ``heads`` table: trained heads kept as versioned artifacts.

One row per trained head (one per seed, or per fold × seed in
cross-validation), keyed by ``head_id`` and pointing to its ``run_id``.
A row holds everything needed to apply the head to new samples:

* ``weights``: the head's tensors as **safetensors** bytes (never pickle),
  including the train-fitted scaling (``scale.<modality>.mean`` /
  ``scale.<modality>.scale``) and, for heads on aligned vectors, the
  train-fitted gap (``align.<modality>.gap``, see :mod:`embedstore.trainers.head_inputs`);
* ``spec`` (JSON): the head architecture, input dims, the model keys,
  alignment keys and embeddings tables of its inputs, the table versions
  trained on, the label vocabulary and the decision rule (new heads also:
  ``alignment`` settings, raw ``input_dims`` and the training ``prompt``).

This module only stores and reads artifacts; applying a head (torch) lives
in :mod:`embedstore.trainers.predict`, so ``embedstore`` never imports ``trainers``.
The table is append-only: ``cleanup`` deletes old *versions*, never the
rows of the latest one, so every head a run references stays loadable.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> art = HeadArtifact("head-1", "run-1", "grp-1", "toy", 0, None, {"fusion": "linear", "classes": ["a", "b"]},
...                    {"coef": np.ones((1, 2), np.float32)})
>>> _ = save_head(s, art)
>>> [h.head_id for h in heads_of_run(s, "run-1")], load_head(s, "head-1").tensors["coef"].tolist()
(['head-1'], [[1.0, 1.0]])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import NotFoundError
from .sql import eq

HEADS = "heads"

HEADS_SCHEMA = pa.schema([
    pa.field("head_id", pa.string(), nullable=False),
    pa.field("run_id", pa.string()),
    pa.field("group_id", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("fold", pa.string()),
    pa.field("created_at", pa.string()),
    pa.field("spec", pa.string()),
    pa.field("weights", pa.binary()),
])


@dataclass
class HeadArtifact:
    """A trained head: identity, spec (JSON-able) and tensors (``{name: ndarray}``)."""

    head_id: str
    run_id: str
    group_id: str
    dataset: str
    seed: int
    fold: str | None
    spec: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The artifact as plain values, its tensors as ``{name: shape}``."""
        return {"head_id": self.head_id, "run_id": self.run_id, "group_id": self.group_id,
                "dataset": self.dataset, "seed": int(self.seed), "fold": self.fold, "spec": self.spec,
                "tensors": {k: list(np.shape(v)) for k, v in self.tensors.items()}, "created_at": self.created_at}

    def to_row(self) -> dict[str, Any]:
        """The row stored in the ``heads`` table (weights as safetensors bytes)."""
        from safetensors.numpy import save

        weights = save({k: np.ascontiguousarray(v) for k, v in self.tensors.items()})
        return {"head_id": self.head_id, "run_id": self.run_id, "group_id": self.group_id,
                "dataset": self.dataset, "seed": int(self.seed), "fold": self.fold,
                "created_at": self.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "spec": json.dumps(self.spec, sort_keys=True), "weights": weights}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "HeadArtifact":
        from safetensors.numpy import load

        return cls(row["head_id"], row["run_id"], row["group_id"], row["dataset"], int(row["seed"]),
                   row["fold"], json.loads(row["spec"]), dict(load(row["weights"])), row["created_at"])


def head_id_of(run_id: str) -> str:
    """The head id of a run's head (one head per run)."""
    return run_id.replace("run-", "head-", 1)


def save_head(store, artifact: HeadArtifact):
    """Append ``artifact`` to the ``heads`` table (keyed by ``head_id``); returns the WriteResult."""
    data = pa.Table.from_pylist([artifact.to_row()], schema=HEADS_SCHEMA)
    return store.upsert(HEADS, data, key="head_id", schema=HEADS_SCHEMA)


def _rows(store, where: str) -> list[HeadArtifact]:
    if not store.has_table(HEADS):
        return []
    tbl = store.open_table(HEADS).to_lance().to_table(filter=where)
    return sorted((HeadArtifact.from_row(r) for r in tbl.to_pylist()), key=lambda h: (h.seed, h.fold or ""))


def load_head(store, head_id: str) -> HeadArtifact:
    """The head ``head_id``; :class:`NotFoundError` naming the fix when absent."""
    found = _rows(store, eq("head_id", head_id))
    if not found:
        raise NotFoundError(f"no head '{head_id}' in store {store.uri}: list them with 'embedstore runs'")
    return found[0]


def heads_of_run(store, run_id: str, *, group: bool = False) -> list[HeadArtifact]:
    """Heads of run ``run_id`` (``group=True``: of every run of its group, e.g. all seeds).

    With ``group=True`` a group id works too (the heads of its runs). An id
    that names no run (or names a group where one run is needed) is
    reported as such, never as a run without heads.
    """
    from .runs import unknown_run, what_id

    found = _rows(store, eq("run_id", run_id))
    if group and found:
        found = _rows(store, eq("group_id", found[0].group_id))
    if found:
        return found
    kind, _ = what_id(store, run_id)
    if kind == "group" and group:
        found = _rows(store, eq("group_id", run_id))
    elif kind != "run":
        raise unknown_run(store, run_id)
    if not found:
        raise NotFoundError(f"{kind} '{run_id}' has no stored head: re-train it with save_heads=True ('embedstore "
                            "train --save-heads'; by default a single split keeps its heads, cross-validation "
                            "folds and sweeps do not)")
    return found
