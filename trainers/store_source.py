"""Training data from the store at pinned table versions.

:class:`StoreSource` reads a dataset's labels and split (``samples__<ds>``)
and its image and text embeddings (``emb__...``), each **at a pinned table
version**, joined by ``sample_id`` with Arrow compute (no per-row Python):

1. At setup only the key columns are read: ``sample_id`` + split of the
   samples table, and ``sample_id``/``dataset``/``alignment_key``/
   ``content_sha256`` of each embeddings table. Each sample is mapped to the
   *position* of its vector in each embeddings table (``pc.index_in``).
2. Labels and vectors of a split are read only when that split is first
   used, and every read and every pass over a split is logged in
   :attr:`Source.events` — so honest mode can *prove* that the test split is
   read once, after epoch selection.
3. Two paths, recorded in the run as ``loader``:

   * ``memory``: a split's vectors are taken once (sorted positional
     ``take``) into one float32 matrix per modality; batches are index
     slices of it. Fastest, and it fits for all three paper datasets.
   * ``stream``: every epoch, the shuffled order is cut into chunks; a
     background thread reads each chunk's vectors (Arrow record batches via
     positional ``take``) up to ``readahead`` chunks ahead, so I/O overlaps
     compute. Threads, not processes: lance is not fork-safe.

   ``auto`` picks ``memory`` when the matrices need less than half the
   available RAM. Both paths yield **identical** batches for a given
   generator state, so a run's numbers do not depend on the path.

Samples without a current embedding (missing, or stale: their content hash
changed since extraction) are skipped and reported in :attr:`StoreSource.skipped`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from embedstore.errors import InputError, NotFoundError
from embedstore.keys import NO_ALIGNMENT
from embedstore.prefetch import prefetch
from embedstore.schema import embeddings_table, samples_table
from embedstore.sql import eq

from .loader import Batch, Source, _slices, encode_labels, epoch_order, label_codes

PATHS = ("auto", "memory", "stream")


@dataclass
class SplitIndex:
    """Where one split's rows live: sample ids, label codes and table positions."""

    sample_ids: np.ndarray
    y: np.ndarray
    positions: dict[str, np.ndarray]


class StoreSource(Source):
    """A dataset's labels, split and embeddings at pinned table versions.

    Parameters
    ----------
    store : embedstore.Store
    dataset : str
    image_model, text_model : str or None
        Model id or ``model_key``; ``None`` when the modality is not used.
    split_by : str
        Split name (``paper``, ``grouped``...) or column ``split_<name>``.
    image_alignment_key, text_alignment_key : str
        Which vectors to read (``"none"`` = unaligned).
    image_dim, text_dim : int, optional
        Width of the embeddings table (aligned vectors may be wider than the
        model's output); found automatically when only one table has the key.
    versions : dict, optional
        ``{table: version}`` to pin; the latest versions otherwise.
    setup_splits : sequence of str
        Splits whose labels are read at setup (the label vocabulary comes
        from them); others are read on first use.
    label_column : str
    path : {"auto", "memory", "stream"}
    readahead, chunk_rows : int
        Streaming: chunks read ahead, and rows per chunk.
    """

    def __init__(self, store, dataset: str, *, image_model: str | None, text_model: str | None,
                 split_by: str | None = None, image_alignment_key: str = NO_ALIGNMENT,
                 text_alignment_key: str = NO_ALIGNMENT, image_dim: int | None = None,
                 text_dim: int | None = None, versions: dict[str, int] | None = None,
                 setup_splits: Sequence[str] = ("train",), label_column: str = "label",
                 path: str = "auto", readahead: int = 4, chunk_rows: int = 4096) -> None:
        super().__init__()
        if path not in PATHS:
            raise InputError(f"unknown loader path {path!r}: use auto, memory or stream")
        t0 = time.perf_counter()
        self.store, self.dataset, self.label_column = store, dataset, label_column
        self.readahead, self.chunk_rows = max(1, int(readahead)), max(1, int(chunk_rows))
        versions = dict(versions or {})
        self.samples_table = samples_table(dataset)
        if not store.has_table(self.samples_table):
            raise NotFoundError(f"no dataset '{dataset}' in store {store.uri}; known: {store.datasets()}. "
                                "Run 'embedstore ingest' first")
        self.split_column = store.split_column(dataset, split_by)
        self.model_keys: dict[str, str] = {}
        self.alignment_keys = {"image": image_alignment_key, "text": text_alignment_key}
        self.tables: dict[str, str] = {}
        for modality, ref, dim in (("image", image_model, image_dim), ("text", text_model, text_dim)):
            if ref is None:
                continue
            identity = store.model(ref, modality)
            self.model_keys[modality] = identity.key
            self.tables[modality] = _find_table(store, identity, modality, self.alignment_keys[modality], dim)
        if not self.tables:
            raise InputError("no modality to read: give an image model, a text model or both")
        self.versions = {name: int(versions.get(name) or store.version(name))
                         for name in [self.samples_table, *self.tables.values()]}
        self._ds = {name: store.open_table(name, v).to_lance() for name, v in self.versions.items()}
        self.image_dim = _width(self._ds[self.tables["image"]]) if "image" in self.tables else None
        self.text_dim = _width(self._ds[self.tables["text"]]) if "text" in self.tables else None
        self._keys = self._read_keys()
        self._index: dict[str, SplitIndex] = {}
        self._mem: dict[str, Batch] = {}
        self.skipped: dict[str, dict[str, Any]] = {}
        self.classes: list[str] = []
        raw = {s: self._read_split(s) for s in setup_splits if self.has_split(s)}
        self.classes = encode_labels(np.concatenate([r["label"][r["labeled"]] for r in raw.values()])
                                     if raw else [])
        for s, r in raw.items():
            self._index[s] = self._make_index(s, r)
        self.path = self._choose_path(path)
        self.setup_s = time.perf_counter() - t0
        self.load_s = 0.0

    # -- setup -------------------------------------------------------------
    def _read_keys(self) -> dict[str, Any]:
        import pyarrow.compute as pc

        samples = self._ds[self.samples_table].to_table(columns=["sample_id", self.split_column])
        out: dict[str, Any] = {"split": samples, "emb": {}}
        for modality, name in self.tables.items():
            keys = self._ds[name].to_table(columns=["sample_id", "dataset", "alignment_key", "content_sha256"])
            mask = pc.and_(pc.equal(keys["dataset"], self.dataset),
                           pc.equal(keys["alignment_key"], self.alignment_keys[modality]))
            pos = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
            out["emb"][modality] = (keys.take(pos).select(["sample_id", "content_sha256"]), pos)
        return out

    def has_split(self, split: str) -> bool:
        import pyarrow.compute as pc

        return bool(pc.any(pc.equal(self._keys["split"][self.split_column], split)).as_py())

    def _read_split(self, split: str) -> dict[str, np.ndarray]:
        """Labels (and content hashes) of one split: the only per-split sample read."""
        self.events.append(("labels", split))
        cols = ["sample_id", self.label_column] + [f"{m}_sha256" for m in self.tables]
        tbl = self._ds[self.samples_table].to_table(
            columns=cols, filter=eq(self.split_column, split))
        out = {c: tbl[c] for c in cols}
        out["labeled"] = tbl[self.label_column].is_valid().to_numpy(zero_copy_only=False)
        out["label"] = np.asarray(tbl[self.label_column].to_pylist(), dtype=object).astype(str)
        return out

    def _make_index(self, split: str, raw: dict[str, Any]) -> SplitIndex:
        import pyarrow.compute as pc

        ids = raw["sample_id"]
        keep = raw["labeled"].copy()
        report: dict[str, Any] = {"unlabeled": int((~keep).sum())}
        positions = {}
        for modality, (keys, pos) in self._keys["emb"].items():
            where = pc.index_in(ids, value_set=keys["sample_id"])
            found = pc.is_valid(where).to_numpy(zero_copy_only=False)
            idx = pc.fill_null(where, 0).to_numpy(zero_copy_only=False).astype(np.int64)
            current = found.copy()
            if self.alignment_keys[modality] == NO_ALIGNMENT:  # stale = content changed since extraction
                stored = keys["content_sha256"].take(idx).to_numpy(zero_copy_only=False)
                now = raw[f"{modality}_sha256"].to_numpy(zero_copy_only=False)
                current &= stored == now
            report[f"missing_{modality}"] = int((~found).sum())
            report[f"stale_{modality}"] = int((found & ~current).sum())
            keep &= current
            positions[modality] = pos[idx]
        if (~keep).any():
            report["examples"] = [str(s) for s in np.asarray(ids.to_pylist(), dtype=object)[~keep][:5]]
            report["skipped"] = int((~keep).sum())
            self.skipped[split] = report
        if not keep.any():
            raise NotFoundError(f"dataset '{self.dataset}' split '{split}' has no sample with current embeddings "
                                f"in {sorted(self.tables.values())}: run 'embedstore extract {self.dataset}' first")
        codes = label_codes(raw["label"][keep], self.classes,
                            f"dataset '{self.dataset}' split '{split}'")
        return SplitIndex(np.asarray(ids.to_pylist(), dtype=object)[keep], codes,
                          {m: p[keep] for m, p in positions.items()})

    def _choose_path(self, path: str) -> str:
        if path != "auto":
            return path
        import psutil

        n = len(self._keys["split"])
        need = n * ((self.image_dim or 0) + (self.text_dim or 0)) * 4
        return "memory" if need < 0.5 * psutil.virtual_memory().available else "stream"

    # -- reads -------------------------------------------------------------
    def index(self, split: str) -> SplitIndex:
        """The :class:`SplitIndex` of ``split`` (reads its labels on first use)."""
        if split not in self._index:
            if not self.has_split(split):
                raise NotFoundError(f"dataset '{self.dataset}' has no '{split}' rows in {self.split_column}")
            self._index[split] = self._make_index(split, self._read_split(split))
        return self._index[split]

    def labels(self, split: str) -> np.ndarray:
        return self.index(split).y

    def _take(self, modality: str, positions: np.ndarray) -> torch.Tensor:
        from embedstore.data import vectors_of

        order = np.argsort(positions, kind="stable")
        tbl = self._ds[self.tables[modality]].take(positions[order], columns=["vector"])
        mat = vectors_of(tbl)
        out = np.empty_like(mat)
        out[order] = mat
        return torch.from_numpy(out)

    def _vectors(self, ix: SplitIndex, rows: np.ndarray) -> tuple[Any, Any]:
        return tuple(self._take(m, ix.positions[m][rows]) if m in self.tables else None
                     for m in ("image", "text"))

    def prepare(self, splits: Sequence[str]) -> float:
        """Materialise ``splits`` now when on the memory path (once per run); returns the seconds spent.

        Called before training so that epoch timings do not include the
        one-off read; the time is kept in :meth:`describe` as ``load_s``.
        """
        t0 = time.perf_counter()
        if self.path == "memory":
            for split in splits:
                self.materialise(split)
        self.load_s += time.perf_counter() - t0
        return self.load_s

    def materialise(self, split: str) -> Batch:
        """Read ``split``'s vectors once into memory (memory path)."""
        if split not in self._mem:
            ix = self.index(split)
            self.events.append(("vectors", split))
            xi, xt = self._vectors(ix, np.arange(len(ix.y)))
            self._mem[split] = (xi, xt, torch.from_numpy(ix.y))
        return self._mem[split]

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        ix = self.index(split)
        order = epoch_order(len(ix.y), generator)
        if self.path == "memory":
            xi, xt, y = self.materialise(split)
            self.events.append(("iter", split))
            return _slices(xi, xt, y, order, batch_size)
        self.events.append(("iter", split))
        return self._stream(ix, order, batch_size)

    def _stream(self, ix: SplitIndex, order: np.ndarray, batch_size: int) -> Iterator[Batch]:
        chunk = max(1, self.chunk_rows // batch_size) * batch_size

        def chunks() -> Iterator[tuple]:
            for start in range(0, len(order), chunk):
                rows = order[start:start + chunk]
                xi, xt = self._vectors(ix, rows)
                yield xi, xt, torch.from_numpy(ix.y[rows])

        for xi, xt, y in prefetch(chunks(), self.readahead, name="embedstore-readahead"):
            yield from _slices(xi, xt, y, np.arange(len(y)), batch_size)

    def describe(self) -> dict[str, Any]:
        return {"loader": self.path, "split_column": self.split_column, "tables": dict(self.tables),
                "setup_s": round(self.setup_s, 4), "load_s": round(self.load_s, 4), "skipped": self.skipped,
                **({"readahead": self.readahead, "chunk_rows": self.chunk_rows} if self.path == "stream" else {})}


def _width(ds) -> int:
    return int(ds.schema.field("vector").type.list_size)


def _find_table(store, identity, modality: str, alignment_key: str, dim: int | None) -> str:
    """The embeddings table holding ``identity``'s ``modality`` vectors under ``alignment_key``."""
    if dim is not None or alignment_key == NO_ALIGNMENT:
        name = embeddings_table(identity.key, modality, dim or identity.dim(modality))
        if not store.has_table(name):
            raise NotFoundError(f"no {modality} embeddings table {name} for model {identity.model_id}: "
                                f"run 'embedstore extract' with that model first")
        return name
    hits = [t for t in store.embedding_tables(identity.key, modality)
            if store.open_table(t).count_rows(eq("alignment_key", alignment_key))]
    if not hits:
        raise NotFoundError(f"no {modality} embeddings of model {identity.model_id} under alignment "
                            f"'{alignment_key}': run the alignment first (see 'embedstore info')")
    if len(hits) > 1:
        raise InputError(f"alignment '{alignment_key}' has {modality} vectors in several tables {hits}: "
                         f"pass {modality}_dim to choose one")
    return hits[0]
