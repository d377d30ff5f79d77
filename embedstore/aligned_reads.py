"""Aligned vectors computed when read: an alignment costs its parameters, not a copy of the table.

Every alignment method of embedstore (the mean shift and the maps of
:mod:`embedstore.transforms`) is a train-fitted transform applied to each
row on its own: normalise, match the widths, map, shift by ``∓(λ/2)·gap``,
renormalise. So an alignment is stored as

* its registry row (:mod:`embedstore.model_registry`: settings, gap) with
  ``settings["storage"] = "on_read"`` and the width ``dim`` it produces;
* its fitted transform (``transform_states``, arrays + JSON, the same for
  every method, :mod:`embedstore.transform_align`);
* the samples it covers, ``settings["members"]``: one row per sample in the
  ``alignment_members`` table (sample id, the image and text content hashes
  the alignment was computed from, and the row's position among the fitted
  rows, which seeds the optional noise). Alignments fitted on the same
  source rows share one member list.

:class:`~embedstore.snapshot.Snapshot` then reads an aligned row as the
unaligned row of the same sample from the extracted table (pinned like any
read), checks that its content hash is the one the alignment was computed
from, and applies the transform (:meth:`GapShift.transform_modality
<embedstore.alignment.GapShift.transform_modality>`). The values are those
:meth:`~embedstore.alignment.GapShift.transform` gave when the alignment
was fitted, which earlier versions stored as rows (a store written by them
is read as it is; ``embedstore upgrade`` converts it). Measured cost and the
decision: ``benchmarks/results/store.md`` (section "Aligned reads").

Examples
--------
>>> import tempfile
>>> from embedstore import Store, align
>>> from embedstore.pairs import toy_pairs
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> img, txt = toy_pairs(s, "toy", n=12)
>>> res = align(s, "toy", image_model=img, text_model=txt, match="interp")
>>> rec = s.alignment(res.alignment_key)
>>> rec.settings["storage"], read_members(s, rec.settings["members"]).num_rows
('on_read', 12)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import NotFoundError
from .keys import stable_hash
from .sql import eq

#: Table of the samples each on-read alignment covers, keyed by ``member_key``.
MEMBERS = "alignment_members"
MEMBERS_SCHEMA = pa.schema([
    pa.field("member_key", pa.string(), nullable=False),
    pa.field("members_id", pa.string(), nullable=False),
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("image_sha256", pa.string()),
    pa.field("text_sha256", pa.string()),
    pa.field("position", pa.int32(), nullable=False),
])
#: ``settings["storage"]`` of an alignment whose rows are computed when read.
ON_READ = "on_read"
_HASH = {"image": "image_sha256", "text": "text_sha256"}


def is_on_read(record) -> bool:
    """Whether an :class:`~embedstore.model_registry.AlignmentRecord`'s rows are computed when read."""
    return record.settings.get("storage") == ON_READ


def members_of(src) -> tuple[str, pa.Table]:
    """``(members_id, rows)`` of the paired source an alignment is fitted on (its rows, in its order)."""
    members_id = "m-" + stable_hash({"dataset": src.dataset, "ids": list(src.ids),
                                     "image": list(src.image_hashes), "text": list(src.text_hashes)})
    n = len(src.ids)
    rows = pa.table({
        "member_key": [f"{members_id}/{s}" for s in src.ids], "members_id": [members_id] * n,
        "dataset": [src.dataset] * n, "sample_id": list(map(str, src.ids)),
        "image_sha256": list(src.image_hashes), "text_sha256": list(src.text_hashes),
        "position": np.arange(n, dtype=np.int32)}, schema=MEMBERS_SCHEMA)
    return members_id, rows


def save_members(store, members_id: str, rows: pa.Table, *, local=None, tag: str | None = None) -> None:
    """Store a member list once (in ``local``, a :class:`~embedstore.alignment_home.LocalAlignments`, if given)."""
    if local is not None:
        if local.members(members_id) is None:
            local.save_members(members_id, rows)
        return
    if store.has_table(MEMBERS) and store.open_table(MEMBERS).count_rows(eq("members_id", members_id)) == rows.num_rows:
        return
    store.upsert(MEMBERS, rows, key="member_key", schema=MEMBERS_SCHEMA, tag=tag)


def read_members(store, members_id: str) -> pa.Table:
    """The member list ``members_id`` sorted by position (from the store, else the user's cache)."""
    rows = None
    if store.has_table(MEMBERS):
        rows = store.read(MEMBERS, where=eq("members_id", members_id))
    if rows is None or rows.num_rows == 0:
        from .alignment_home import LocalAlignments

        rows = LocalAlignments(store).members(members_id)
    if rows is None or rows.num_rows == 0:
        raise NotFoundError(f"the sample list {members_id} of an alignment is missing from store {store.uri}: "
                            "re-run 'embedstore align' with the same settings to store it again")
    import pyarrow.compute as pc

    return rows.take(pc.sort_indices(rows["position"]))


def has_members(store, members_id: str) -> bool:
    """Whether the member list ``members_id`` is stored (store or user cache)."""
    if not members_id:
        return False
    try:
        read_members(store, members_id)
    except NotFoundError:
        return False
    return True


#: Fitted transforms and sample lists already read in this process, by store and key (both never change
#: once written: a key names one fitted transform, a member list id the hash of its content).
_CACHE: "OrderedDict[tuple[str, str, str], Any]" = OrderedDict()
_CACHE_SIZE = 32


def _cached(store, kind: str, key: str, load):
    k = (store.uri, kind, key)
    if k in _CACHE:
        _CACHE.move_to_end(k)
        return _CACHE[k]
    value = _CACHE[k] = load()
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


class OnRead:
    """One modality of an on-read alignment: which samples it covers and the transform to apply.

    Parameters
    ----------
    store : Store
    record : AlignmentRecord
        A registered alignment with ``settings["storage"] == "on_read"``.
    modality : {"image", "text"}
    """

    def __init__(self, store, record, modality: str) -> None:
        from .transform_store import load_transform

        self.record, self.modality = record, modality
        self.dim = int(record.settings["dim"])
        self.transformer = _cached(store, "state", record.alignment_key,
                                   lambda: load_transform(store, record.alignment_key))
        members = _cached(store, "members", record.settings["members"],
                          lambda: read_members(store, record.settings["members"]))
        self.dataset = record.settings.get("dataset")
        self.ids = members["sample_id"]
        self.hashes = members[_HASH[modality]]
        self.rows = members["position"].to_numpy().astype(np.int64)
        self.n_rows = int(record.settings.get("n_rows") or len(self.rows))
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None

    def keys(self, source: pa.Table, source_positions: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """``(sample_id/content_sha256 of the members, position of each one's source row or -1)``.

        ``source`` holds ``sample_id``/``content_sha256`` of the unaligned rows
        of this dataset (at their ``source_positions`` in the pinned table).
        A member whose source row is absent, or holds other content than the
        alignment was computed from, gets -1: its aligned vector cannot be
        computed at this version.
        """
        import pyarrow.compute as pc

        where = pc.index_in(self.ids, value_set=source["sample_id"])
        found = pc.is_valid(where).to_numpy(zero_copy_only=False)
        idx = pc.fill_null(where, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if len(source):
            same = pc.equal(source["content_sha256"].take(pa.array(idx)), self.hashes)
            same = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
            pos = np.where(found & same, source_positions[idx], -1)
        else:
            pos = np.full(len(idx), -1, dtype=np.int64)
        self._lookup = None
        self._positions = pos
        keys = pa.table({"sample_id": self.ids, "content_sha256": self.hashes})
        return keys, pos

    def apply(self, vectors: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The aligned vectors of the unaligned ``vectors`` read at source ``positions`` (float32)."""
        rows = None
        if getattr(self.transformer, "noise_std", 0) > 0:
            if self._lookup is None:
                ok = self._positions >= 0
                src, member = self._positions[ok], self.rows[ok]
                order = np.argsort(src, kind="stable")
                self._lookup = (src[order], member[order])
            src, member = self._lookup
            rows = member[np.searchsorted(src, np.asarray(positions, dtype=np.int64))]
        return self.transformer.transform_modality(vectors, self.modality, rows=rows, n_rows=self.n_rows)

    def describe(self) -> dict[str, Any]:
        """What a run records of how it read these rows."""
        return {"alignment_key": self.record.alignment_key, "storage": ON_READ, "dim": self.dim}


def check_alignment_storage(store, report) -> None:
    """``doctor`` check: every on-read alignment has its fitted transform and its sample list.

    Alignments stored as rows by earlier versions are read as they are and are not a
    problem (``embedstore upgrade`` converts them).
    """
    from .transform_store import has_state

    broken = [rec.alignment_key for rec in store.alignments() if is_on_read(rec) and not (
        has_state(store, rec.alignment_key) and has_members(store, rec.settings.get("members", "")))]
    report.add("alignment_complete", "alignments", broken, "alignment(s) missing their fitted transform or sample "
               "list", "re-run 'embedstore align' with their settings (the same key is finished)")
