"""Training data from the store at pinned table versions.

:class:`StoreSource` reads a dataset's labels and split (``samples__<ds>``)
and its image and text embeddings (``emb__...``), each **at a pinned table
version**, joined by ``sample_id`` with Arrow compute (no per-row Python):

1. At setup an :class:`embedstore.snapshot.Snapshot` pins the tables and
   reads only their key columns; it maps each sample to the *position* of
   its current vector in each embeddings table. Table lookup, the staleness
   rule and pairing live there; this module keeps only torch batching.
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

Samples without a current embedding in every modality read (missing, or
stale: their content hash changed since extraction, aligned vectors
included) are skipped and reported in :attr:`StoreSource.skipped`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from embedstore.errors import InputError, NotFoundError
from embedstore.keys import NO_ALIGNMENT
from embedstore.prefetch import prefetch
from embedstore.refs import lookup_model
from embedstore.snapshot import HASH_COLUMN, Snapshot

from .loader import Batch, Source, _slices, encode_labels, epoch_order, label_codes

if TYPE_CHECKING:
    from .options import LoaderOptions

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
        if image_model is None and text_model is None:
            raise InputError("no modality to read: give an image model, a text model or both")
        image_model, text_model = (m if m is None else lookup_model(store, m, mod)  # user refs: resolved here
                                   for m, mod in ((image_model, "image"), (text_model, "text")))
        self.snapshot = Snapshot(store, dataset, image_model=image_model, text_model=text_model, split_by=split_by,
                                 image_alignment_key=image_alignment_key, text_alignment_key=text_alignment_key,
                                 image_dim=image_dim, text_dim=text_dim, versions=versions)
        snap = self.snapshot
        self.samples_table, self.split_column = snap.samples_table, snap.split_column
        self.alignment_keys, self.tables, self.versions = snap.alignment_keys, snap.tables, snap.versions
        self.model_keys: dict[str, str] = snap.model_keys
        self.image_dim, self.text_dim = snap.dims.get("image"), snap.dims.get("text")
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

    @classmethod
    def open(cls, store, dataset: str, *, image_model: str | None, text_model: str | None, split_by: str | None,
             alignment_keys: dict[str, str], options: "LoaderOptions",
             setup_splits: Sequence[str] = ("train",)) -> "StoreSource":
        """The source of a training call (:func:`~embedstore.trainers.train.train`) or of a recorded run's rerun.

        ``alignment_keys`` maps ``image``/``text`` to the vectors read;
        ``options`` (:class:`~embedstore.trainers.options.LoaderOptions`) says
        how: loader path, readahead, chunk rows, label column, pinned
        versions and table widths.
        """
        return cls(store, dataset, image_model=image_model, text_model=text_model, split_by=split_by,
                   image_alignment_key=alignment_keys.get("image", NO_ALIGNMENT),
                   text_alignment_key=alignment_keys.get("text", NO_ALIGNMENT), image_dim=options.image_dim,
                   text_dim=options.text_dim, versions=None if options.versions is None else dict(options.versions),
                   setup_splits=setup_splits, label_column=options.label_column, path=options.loader,
                   readahead=options.readahead, chunk_rows=options.chunk_rows)

    # -- setup -------------------------------------------------------------
    def has_split(self, split: str) -> bool:
        return self.snapshot.has_split(split)

    def _read_split(self, split: str) -> dict[str, Any]:
        """Labels (and content hashes) of one split: the only per-split sample read."""
        self.events.append(("labels", split))
        cols = ["sample_id", self.label_column] + [HASH_COLUMN[m] for m in self.tables]
        tbl = self.snapshot.samples(cols, split)
        return {"rows": tbl, "labeled": tbl[self.label_column].is_valid().to_numpy(zero_copy_only=False),
                "label": np.asarray(tbl[self.label_column].to_pylist(), dtype=object).astype(str)}

    def _make_index(self, split: str, raw: dict[str, Any]) -> SplitIndex:
        """Keep labeled rows with a current vector in every modality (the snapshot's rule)."""
        sel = self.snapshot.select(raw["rows"])
        keep = raw["labeled"] & sel.keep
        ids = np.asarray(raw["rows"]["sample_id"].to_pylist(), dtype=object)
        if (~keep).any():
            self.skipped[split] = {"unlabeled": int((~raw["labeled"]).sum()), **sel.report(),
                                   "examples": [str(s) for s in ids[~keep][:5]], "skipped": int((~keep).sum())}
        if not keep.any():
            stale = sum(sel.stale.values())
            hint = (f"{stale} are stale (content changed since extraction): re-run 'embedstore extract "
                    f"{self.dataset}'" if stale else f"run 'embedstore extract {self.dataset}' first")
            raise NotFoundError(f"dataset '{self.dataset}' split '{split}' has no sample with current embeddings "
                                f"in {sorted(self.tables.values())}: {hint}")
        codes = label_codes(raw["label"][keep], self.classes, f"dataset '{self.dataset}' split '{split}'")
        return SplitIndex(ids[keep], codes, {m: p[keep] for m, p in sel.positions.items()})

    def _choose_path(self, path: str) -> str:
        if path != "auto":
            return path
        import psutil

        n = self.snapshot.num_samples
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
        return torch.from_numpy(self.snapshot.take(modality, positions))

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
