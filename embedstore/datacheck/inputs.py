"""What a data check reads: a dataset's sample rows and its stored vectors, at pinned versions.

:func:`pick_models` chooses one model per modality: the one named, or the
only model with unaligned vectors of the dataset (several are refused with
their names, so a check never silently picks one). :func:`read_check_data`
reads every sample row and, per modality, the *current* vectors
(:class:`~embedstore.snapshot.Snapshot`'s staleness rule), all at the
versions pinned when the check starts; rows without a current vector are
counted, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa

from ..errors import InputError
from ..identity import MODALITIES, ModelIdentity
from ..keys import NO_ALIGNMENT
from ..schema import parse_embeddings_table
from ..sql import eq


def dataset_models(store, dataset: str, modality: str) -> list[ModelIdentity]:
    """Registered models with unaligned ``modality`` vectors of ``dataset``, in table order."""
    out = []
    where = f"{eq('dataset', dataset)} AND {eq('alignment_key', NO_ALIGNMENT)}"
    for table in store.embedding_tables(modality=modality):
        _, model_key, _ = parse_embeddings_table(table)
        if store.open_table(table).count_rows(where):
            ident = store.models.identity(model_key, modality)
            if ident.key not in {m.key for m in out}:
                out.append(ident)
    return out


def pick_models(store, dataset: str, image_model: str | ModelIdentity | None = None,
                text_model: str | ModelIdentity | None = None,
                modalities: Sequence[str] | None = None) -> dict[str, ModelIdentity]:
    """``{modality: identity}`` of the models a check reads.

    A named model is used as named; otherwise the only model with vectors of
    ``dataset`` in that modality (none: the modality is left out; several:
    refused, naming them). ``modalities`` limits the modalities considered.
    """
    named = {"image": image_model, "text": text_model}
    out: dict[str, ModelIdentity] = {}
    for modality in MODALITIES:
        if modalities is not None and modality not in modalities:
            continue
        if named[modality] is not None:
            out[modality] = store.models.identity(named[modality], modality)
            continue
        found = dataset_models(store, dataset, modality)
        if len(found) > 1:
            names = ", ".join(f"{m.model_id} ({m.key})" for m in found)
            raise InputError(f"dataset '{dataset}' has {modality} vectors of {len(found)} models ({names}): "
                             f"pass {modality}_model= to choose one")
        if found:
            out[modality] = found[0]
    return out


@dataclass
class CheckData:
    """Rows and vectors of one dataset at pinned versions.

    Attributes
    ----------
    dataset : str
    rows : pyarrow.Table
        Every sample row (all columns), sorted by ``sample_id``.
    versions : dict
        ``{table: version}`` of the samples table and each embeddings table.
    models : dict
        ``{modality: ModelIdentity}``.
    vectors : dict
        ``{modality: (m, d) float32}``, the current vectors of the rows at
        ``positions[modality]``.
    positions : dict
        ``{modality: row indices into rows}`` of the rows with a current vector.
    missing, stale : dict
        ``{modality: n}`` rows without a vector / with a stale one.
    """

    dataset: str
    rows: pa.Table
    versions: dict[str, int]
    models: dict[str, ModelIdentity]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    positions: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        return np.asarray(self.rows["sample_id"].to_pylist(), dtype=object)

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of :attr:`rows` as an object array (nulls as ``None``)."""
        return np.asarray(self.rows[name].to_pylist(), dtype=object)

    def paired(self) -> np.ndarray:
        """Row indices with a current vector in every modality read, ascending."""
        keep = np.ones(self.rows.num_rows, dtype=bool)
        for pos in self.positions.values():
            mask = np.zeros(self.rows.num_rows, dtype=bool)
            mask[pos] = True
            keep &= mask
        return np.flatnonzero(keep)

    def vectors_of(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """The ``modality`` vectors of row indices ``rows`` (each must have one)."""
        where = np.full(self.rows.num_rows, -1, dtype=np.int64)
        where[self.positions[modality]] = np.arange(len(self.positions[modality]))
        return self.vectors[modality][where[np.asarray(rows, dtype=np.int64)]]


def snapshots(store, dataset: str, models: dict[str, ModelIdentity], versions: dict[str, int] | None = None):
    """One :class:`~embedstore.snapshot.Snapshot` per modality, all on one pinned samples version."""
    from ..schema import samples_table
    from ..snapshot import Snapshot

    pinned = dict(versions or {})
    table = samples_table(dataset)
    if table not in pinned and store.has_table(table):  # one samples version for every modality's snapshot
        pinned[table] = pinned.get("samples") or store.version(table)
    snaps = {}
    for modality, ident in models.items():
        snaps[modality] = Snapshot(store, dataset, **{f"{modality}_model": ident}, versions=pinned)
    if not snaps:
        snaps[None] = Snapshot(store, dataset, versions=pinned)
    return snaps


def pinned_versions(snaps: dict) -> dict[str, int]:
    """``{table: version}`` over the snapshots of :func:`snapshots`."""
    out: dict[str, int] = {}
    for snap in snaps.values():
        out.update(snap.versions)
    return dict(sorted(out.items()))


def read_check_data(snaps: dict, dataset: str) -> CheckData:
    """Every row of the pinned samples table and the current vectors of each modality."""
    import pyarrow.compute as pc

    first = next(iter(snaps.values()))
    rows = first.samples()
    rows = rows.take(pc.sort_indices(rows["sample_id"]))
    data = CheckData(dataset, rows, pinned_versions(snaps),
                     {m: s.identities[m] for m, s in snaps.items() if m is not None})
    for modality, snap in snaps.items():
        if modality is None:
            continue
        sel = snap.select(rows)
        keep = np.flatnonzero(sel.keep)
        data.positions[modality] = keep
        data.vectors[modality] = snap.take(modality, sel.positions[modality][keep])
        data.missing[modality] = sel.missing[modality]
        data.stale[modality] = sel.stale[modality]
    return data
