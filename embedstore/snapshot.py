"""One reader for *current* vectors at pinned versions: :class:`Snapshot`.

A snapshot is a dataset's samples table plus, per modality, one model and
one alignment (``"none"`` = the extracted vectors), each table pinned to one
version. It is the single owner of

* **table lookup**: which ``emb__<modality>__<model_key>__<dim>`` table
  holds a model's vectors under an alignment key;
* **the staleness rule**: an embedding is *current* when its
  ``content_sha256`` equals its sample's current ``image_sha256`` /
  ``text_sha256``. Aligned rows carry the hash of the input they were
  computed from, so the same rule applies to them: after a prompt change
  the old text vectors, and every alignment built on them, are stale;
* **pairing of modalities**: a sample is used only when every modality
  read has a current vector; the others are counted as missing or stale,
  never silently dropped (:class:`Selection`);
* **positional reads**: vectors are taken by their row position in the
  pinned table (``take``), in any order asked.

Training (``embedstore.trainers.store_source``), alignment, gap diagnostics, figures,
sweeps, :meth:`Store.embeddings` and export all read through it.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> from embedstore.pairs import toy_pairs
>>> store = Store(tempfile.mkdtemp() + "/s")
>>> img, txt = toy_pairs(store, "toy", n=10)
>>> snap = Snapshot(store, "toy", image_model=img, text_model=txt)
>>> rows = snap.samples(["sample_id", "image_sha256", "text_sha256"], split="test")
>>> sel = snap.select(rows)
>>> int(sel.keep.sum()), snap.take("text", sel.positions["text"][sel.keep]).shape
(2, (2, 5))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .errors import InputError, NotFoundError, check_columns, missing_dataset
from .identity import ModelIdentity
from .keys import NO_ALIGNMENT
from .vectors import HASH_COLUMN, vectors_of
from .schema import embeddings_table, samples_table
from .sql import eq, isin

_EXAMPLES = 5


@dataclass
class Selection:
    """Which rows of a samples read have a current vector in every modality.

    Attributes
    ----------
    keep : ndarray of bool
        One flag per input row.
    positions : dict
        ``{modality: row positions in the pinned embeddings table}``, one per
        input row (meaningless where ``keep`` is False).
    missing, stale : dict
        ``{modality: n}`` rows without a vector, and with one whose content
        hash differs from the sample's current hash.
    examples : list of str
        A few skipped sample ids.
    """

    keep: np.ndarray
    positions: dict[str, np.ndarray]
    missing: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Rows left out."""
        return int((~self.keep).sum())

    def report(self) -> dict[str, Any]:
        """``{"missing_<m>": n, "stale_<m>": n, "skipped": n, "examples": [...]}``."""
        out: dict[str, Any] = {}
        for m in self.positions:
            out[f"missing_{m}"] = self.missing.get(m, 0)
            out[f"stale_{m}"] = self.stale.get(m, 0)
        if self.skipped:
            out["skipped"] = self.skipped
            out["examples"] = list(self.examples)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The same as :meth:`report` (the package's one serialisation protocol)."""
        return self.report()


class Snapshot:
    """A dataset's samples and one model/alignment per modality, at pinned table versions.

    Parameters
    ----------
    store : Store
    dataset : str
    image_model, text_model : str or ModelIdentity or None
        Model id, ``model_key`` or identity; ``None`` when the modality is not read.
    image_alignment_key, text_alignment_key : str
        Which vectors (``"none"`` = unaligned).
    image_dim, text_dim : int, optional
        Width of the embeddings table (aligned vectors may be wider than the
        model's output); found automatically when only one table has the key.
    split_by : str, optional
        Split name or ``split_<name>`` column (default: the store's default).
    versions : dict, optional
        ``{table: version or tag}`` to pin (``"samples"``, ``"image"`` and
        ``"text"`` may stand for the table names); the latest otherwise.

    Raises
    ------
    NotFoundError
        When the dataset, a model or an embeddings table is missing.
    """

    def __init__(self, store, dataset: str, *, image_model: str | ModelIdentity | None = None,
                 text_model: str | ModelIdentity | None = None, image_alignment_key: str = NO_ALIGNMENT,
                 text_alignment_key: str = NO_ALIGNMENT, image_dim: int | None = None,
                 text_dim: int | None = None, split_by: str | None = None,
                 versions: dict[str, int] | None = None) -> None:
        self.store, self.dataset = store, dataset
        self.samples_table = samples_table(dataset)
        if not store.has_table(self.samples_table):
            raise missing_dataset(store, dataset)
        self.split_column = store.split_column(dataset, split_by)
        self.alignment_keys = {"image": image_alignment_key, "text": text_alignment_key}
        self.identities: dict[str, ModelIdentity] = {}
        self.tables: dict[str, str] = {}
        #: ``{modality: OnRead}`` of the modalities whose aligned rows are computed when read.
        self.on_read: dict[str, Any] = {}
        pinned = dict(versions or {})
        for modality, ref, dim in (("image", image_model, image_dim), ("text", text_model, text_dim)):
            if ref is None:
                continue
            ident = store.models.identity(ref, modality)
            self.identities[modality] = ident
            computed = _on_read(store, ident, modality, self.alignment_keys[modality], pinned)
            if computed is not None:
                self.on_read[modality] = computed
                self.tables[modality] = embeddings_table(ident.key, modality, ident.dim(modality))
                if not store.has_table(self.tables[modality]):
                    find_table(store, ident, modality, NO_ALIGNMENT, None, dataset)  # raises with its fix
            else:
                self.tables[modality] = find_table(store, ident, modality, self.alignment_keys[modality], dim,
                                                   dataset)
        pinned.setdefault(self.samples_table, pinned.get("samples"))
        for modality, name in self.tables.items():
            pinned.setdefault(name, pinned.get(modality))
        self.versions = {name: _resolve(store, name, pinned.get(name))
                         for name in [self.samples_table, *self.tables.values()]}
        from .leases import hold

        self.lease = hold(store, self.versions)
        self._ds = {name: store.open_table(name, v).to_lance() for name, v in self.versions.items()}
        self.dims = {m: self.on_read[m].dim if m in self.on_read else
                     int(self._ds[t].schema.field("vector").type.list_size) for m, t in self.tables.items()}
        self._keys: dict[str, tuple[pa.Table, np.ndarray]] = {}
        self._splits: pa.Table | None = None

    @property
    def model_keys(self) -> dict[str, str]:
        """``{modality: model_key}`` of the modalities read."""
        return {m: i.key for m, i in self.identities.items()}

    # -- samples -----------------------------------------------------------
    def samples(self, columns: Sequence[str] | None = None, split: str | Sequence[str] | None = None) -> pa.Table:
        """Sample rows at the pinned version, optionally of one or more splits of :attr:`split_column`."""
        where = None
        if split is not None:
            values = [split] if isinstance(split, str) else list(split)
            where = isin(self.split_column, values)
        ds = self._ds[self.samples_table]
        check_columns(self.samples_table, columns, ds.schema.names)  # a mistyped column is named, with the closest
        return ds.to_table(columns=list(columns) if columns else None, filter=where)

    def has_split(self, split: str) -> bool:
        """Whether any sample is in ``split``."""
        import pyarrow.compute as pc

        if self._splits is None:
            self._splits = self.samples([self.split_column])
        return bool(pc.any(pc.equal(self._splits[self.split_column], split)).as_py())

    @property
    def sample_columns(self) -> list[str]:
        """Column names of the pinned samples table."""
        return list(self._ds[self.samples_table].schema.names)

    @property
    def num_samples(self) -> int:
        """Rows of the pinned samples table."""
        return int(self._ds[self.samples_table].count_rows())

    # -- vectors -----------------------------------------------------------
    def _table_keys(self, modality: str) -> tuple[pa.Table, np.ndarray]:
        """``(sample_id/content_sha256 of this dataset and alignment, their row positions)``."""
        if modality not in self._keys:
            import pyarrow.compute as pc

            keys = self._ds[self.tables[modality]].to_table(
                columns=["sample_id", "dataset", "alignment_key", "content_sha256"])
            stored = NO_ALIGNMENT if modality in self.on_read else self.alignment_keys[modality]
            mask = pc.and_(pc.equal(keys["dataset"], self.dataset), pc.equal(keys["alignment_key"], stored))
            pos = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            keys = keys.take(pos).select(["sample_id", "content_sha256"])
            if modality in self.on_read:  # the alignment's samples, each at its unaligned row (or -1)
                keys, pos = self.on_read[modality].keys(keys, pos)
            self._keys[modality] = (keys, pos)
        return self._keys[modality]

    def select(self, rows: pa.Table) -> Selection:
        """Apply the staleness rule and pairing to sample ``rows``.

        ``rows`` needs ``sample_id`` and the hash column of every modality
        read (``image_sha256`` / ``text_sha256``).
        """
        import pyarrow.compute as pc

        ids = rows["sample_id"]
        keep = np.ones(rows.num_rows, dtype=bool)
        sel = Selection(keep, {})
        for modality in self.tables:
            keys, pos = self._table_keys(modality)
            where = pc.index_in(ids, value_set=keys["sample_id"])
            found = pc.is_valid(where).to_numpy(zero_copy_only=False)
            idx = pc.fill_null(where, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            stored = keys["content_sha256"].take(idx).to_numpy(zero_copy_only=False) if len(keys) \
                else np.full(len(idx), None, dtype=object)
            now = rows[HASH_COLUMN[modality]].to_numpy(zero_copy_only=False)
            at = pos[idx] if len(pos) else idx
            found &= at >= 0  # an on-read row whose unaligned vector is not in the pinned table
            current = found & (stored == now)
            sel.missing[modality] = int((~found).sum())
            sel.stale[modality] = int((found & ~current).sum())
            keep &= current
            sel.positions[modality] = at
        if (~keep).any():
            sel.examples = [str(s) for s in np.asarray(ids.to_pylist(), dtype=object)[~keep][:_EXAMPLES]]
        return sel

    def take(self, modality: str, positions: np.ndarray) -> np.ndarray:
        """Vectors at ``positions`` of the pinned table, in the order given, as float32 ``(n, d)``."""
        positions = np.asarray(positions, dtype=np.int64)
        ds = self._ds[self.tables[modality]]
        if len(positions) * 4 > ds.count_rows():  # most rows: one scan of the column beats a random take
            out = vectors_of(ds.to_table(columns=["vector"]))[positions]
        else:
            order = np.argsort(positions, kind="stable")
            mat = vectors_of(ds.take(positions[order], columns=["vector"]))
            out = np.empty_like(mat)
            out[order] = mat
        if modality in self.on_read:
            return self.on_read[modality].apply(out, positions)
        return out

    def current(self, columns: Sequence[str] = (), split: str | Sequence[str] | None = None) -> tuple[pa.Table, dict[str, np.ndarray],
                                                                                        Selection]:
        """Samples with a current vector in every modality, sorted by ``sample_id``, and their vectors.

        Returns
        -------
        (rows, vectors, selection)
            ``rows`` holds ``sample_id``, the hash columns and ``columns``;
            ``vectors`` is ``{modality: (n, d) float32}`` row-aligned with it.
        """
        import pyarrow.compute as pc

        cols = list(dict.fromkeys(["sample_id", *(HASH_COLUMN[m] for m in self.tables), *columns]))
        rows = self.samples(cols, split)
        sel = self.select(rows)
        kept = np.flatnonzero(sel.keep)
        rows = rows.take(kept)
        order = pc.sort_indices(rows["sample_id"]).to_numpy()
        rows = rows.take(order)
        vectors = {m: self.take(m, sel.positions[m][kept][order]) for m in self.tables}
        return rows, vectors, sel


def _on_read(store, identity: ModelIdentity, modality: str, alignment_key: str, pinned: dict[str, Any]):
    """The :class:`~embedstore.aligned_reads.OnRead` of an alignment computed when read, else ``None``.

    ``None`` for unaligned reads and for alignments whose rows an earlier
    version stored; also when the caller pinned a version of a table that
    still holds this alignment's stored rows (a run recorded before its
    store was upgraded re-reads exactly what it read).
    """
    if alignment_key == NO_ALIGNMENT:
        return None
    from .aligned_reads import OnRead, is_on_read

    try:
        rec = store.alignments.get(alignment_key)
    except NotFoundError:
        return None  # unregistered: rows written under it, if any, are read as stored
    if not is_on_read(rec):
        return None
    if rec.settings.get("converted_from_rows"):
        name = embeddings_table(identity.key, modality, int(rec.settings["dim"]))
        version = pinned.get(name, pinned.get(modality))
        if version not in (None, "") and store.has_table(name) and store.open_table(name, version).count_rows(
                f"{eq('alignment_key', alignment_key)} AND {eq('dataset', rec.settings.get('dataset', ''))}"):
            return None
    return OnRead(store, rec, modality)


def _resolve(store, table: str, version: int | str | None) -> int:
    if version is None or version == "":
        return store.version(table)
    if isinstance(version, int) or str(version).isdigit():
        return int(version)
    return int(store.open_table(table, version).version)  # a tag


def find_table(store, identity: ModelIdentity, modality: str, alignment_key: str, dim: int | None,
               dataset: str | None = None) -> str:
    """The embeddings table holding ``identity``'s ``modality`` vectors under ``alignment_key``."""
    if dim is not None or alignment_key == NO_ALIGNMENT:
        name = embeddings_table(identity.key, modality, dim or identity.dim(modality))
        if not store.has_table(name):
            where = f" of dataset '{dataset}'" if dataset else ""
            raise NotFoundError(f"no {modality} embeddings{where} for model {identity.model_id} ({identity.key}) "
                                f"in table {name} of store {store.uri}: run embedstore.extract(store, "
                                f"'{dataset or 'DATASET'}', model_id='{identity.model_id}') first")
        return name
    hits = [t for t in store.embedding_tables(identity.key, modality)
            if store.open_table(t).count_rows(eq("alignment_key", alignment_key))]
    if not hits:
        store.alignment(alignment_key)  # an alignment that does not exist is named as unknown, with the closest keys
        raise NotFoundError(f"no {modality} embeddings of model {identity.model_id} under alignment "
                            f"'{alignment_key}': run the alignment first (see 'embedstore info')")
    if len(hits) > 1:
        raise InputError(f"alignment '{alignment_key}' has {modality} vectors in several tables {hits}: "
                         f"pass {modality}_dim to choose one")
    return hits[0]
