"""Compute embeddings once: the Python side of ``embedstore extract``.

:func:`extract` embeds a dataset's samples with one model and writes the
vectors to the model's embeddings tables. For each modality it

1. copies vectors of identical content already computed by the same
   ``model_key`` for any dataset (:meth:`Store.reuse_by_hash`);
2. runs only the rows :meth:`Store.missing` still reports through the model,
   in true batches under ``torch.inference_mode()``, with image decoding and
   preprocessing in a background thread overlapping the forward;
3. commits results every ``chunk_rows`` rows, so a killed run loses at most
   one chunk and a re-run continues. Ctrl-C commits what is done and raises
   :class:`ExtractInterrupted`.

When nothing is missing the model is not loaded, nothing runs and no table
version is created. Every run tags the versions it writes
(``extract-<time>-<pid>-<rand>``). Samples whose image cannot be decoded are
skipped and listed in the report, and so are samples whose file changed on
disk since ``ingest``: every image is hashed from the bytes that are decoded
and embedded only when that hash is the stored ``image_sha256``, so a vector
is never stored (and then reused by content hash across datasets) under the
hash of other bytes. Re-ingesting the dataset records the new file's hash;
see :mod:`embedstore.reingest` for what happens to the old vectors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cpu import cores, torch_threads  # noqa: F401 (cores: also public here, as before)
from .data import HASH_COLUMN
from .engines import Engine
from .engines.job import ComputeJob
from .errors import InputError
from .extract_inputs import SkippedSample
from .identity import MODALITIES
from .formats import ToDict
from .schema import embeddings_table
from .store import Store, new_run_tag

#: Rows committed per write (a kill loses at most this many computed rows).
CHUNK_ROWS = 256


@dataclass(frozen=True)
class ModalityResult(ToDict):
    """What one extract run did for one modality.

    Attributes
    ----------
    modality, table : str
    computed : int
        Rows run through the model and written.
    reused : int
        Rows copied from identical content already embedded by this model.
    skipped : list of SkippedSample
        Samples that failed to decode/prepare.
    seconds : float
        Wall time of the compute loop (model load excluded).
    rows_per_s : float
        ``computed / seconds`` (0 when nothing was computed).
    version : int
        Table version after the run (unchanged when nothing was written).
    forward_calls : int
        Model forward calls made for this modality.
    """

    modality: str
    table: str
    computed: int
    reused: int
    skipped: list[SkippedSample]
    seconds: float
    rows_per_s: float
    version: int
    forward_calls: int


@dataclass(frozen=True)
class ExtractReport:
    """Outcome of :func:`extract`.

    Attributes
    ----------
    dataset, model_id, model_key : str
    tag : str
        Run tag placed on every version this run wrote.
    results : list of ModalityResult
    load_seconds : float
        Time spent loading the model (0 when nothing had to be computed).
    interrupted : bool
    backend : str
        What ran the forwards: ``torch``, ``onnxruntime`` or ``llama.cpp`` with its dtype, e.g.
        ``onnxruntime fp32`` (keyed as torch fp32: see :class:`~embedstore.identity.ModelIdentity`).
    backend_reason : str
        Why this backend (``requested``, ``model default``, or what ``auto`` read from the table).
    parity : dict
        Min per-row cosine vs torch fp32 on the probe batch, per modality
        (empty when nothing ran or for the reference path).
    other_keys : list of str
        Other model_keys of the same model id already in the store (e.g.
        vectors from another backend): kept, not used by this run.
    busy : str or None
        One line when the machine was busy at the end of the run (1-minute
        load average above its logical CPUs: :func:`embedstore.cpu.busy_note`),
        explaining slower rows/s; ``None`` on a machine that was not.
    """

    dataset: str
    model_id: str
    model_key: str
    tag: str
    results: list[ModalityResult] = field(default_factory=list)
    load_seconds: float = 0.0
    interrupted: bool = False
    backend: str = "torch fp32"
    backend_reason: str = ""
    parity: dict[str, float] = field(default_factory=dict)
    other_keys: list[str] = field(default_factory=list)
    busy: str | None = None

    @property
    def computed(self) -> int:
        return sum(r.computed for r in self.results)

    @property
    def reused(self) -> int:
        return sum(r.reused for r in self.results)

    @property
    def forward_calls(self) -> int:
        return sum(r.forward_calls for r in self.results)

    @property
    def skipped(self) -> list[SkippedSample]:
        return [s for r in self.results for s in r.skipped]

    def result(self, modality: str) -> ModalityResult:
        """The :class:`ModalityResult` of ``modality``."""
        for r in self.results:
            if r.modality == modality:
                return r
        raise KeyError(modality)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        from dataclasses import asdict

        d = asdict(self)
        d.update(computed=self.computed, reused=self.reused, forward_calls=self.forward_calls)
        return d


class ExtractInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`extract`: finished rows were committed; ``.report`` says what is stored."""

    def __init__(self, report: ExtractReport) -> None:
        super().__init__("interrupted")
        self.report = report


def extract(store: Store, dataset: str, model_id: str, *, modality: str = "both", batch_size: int = 32,
            quantize: str | None = None, pooling: str | None = None, limit: int | None = None,
            chunk_rows: int = CHUNK_ROWS, progress: bool = True, extractor: Any = None,
            threads: int | None = None, engine: str | Engine = "local", ray_address: str | None = None,
            workers: int | None = None, backend: str | None = None, **opts: Any) -> ExtractReport:
    """Embed the samples of ``dataset`` that are not embedded yet by ``model_id``.

    Parameters
    ----------
    store : Store
    dataset : str
        An ingested dataset.
    model_id : str
        Any id :func:`embedstore.extractors.load_extractor` accepts.
    modality : {"both", "image", "text"}
        ``both`` = every modality the model encodes that the dataset has
        (:mod:`embedstore.modalities`); asking for one the dataset lacks
        raises :class:`InputError`.
    batch_size : int
        Rows per model forward.
    quantize : {None, "none", "bf16", "8bit"}
    pooling : str, optional
        See :func:`~embedstore.extractors.load_extractor`.
    limit : int, optional
        Compute at most this many missing rows per modality.
    chunk_rows : int
        Rows per committed write.
    progress : bool
        Show a progress bar (rows, rows/s, ETA) on stderr.
    extractor : Extractor, optional
        An already created extractor (then ``model_id``/``quantize``/``pooling`` are ignored).
    threads : int, optional
        torch intra-op threads while computing (default: every core this
        process may use; fewer helps on a machine shared with other jobs).
        With ``engine="ray"``: CPUs and torch threads per actor (default 1).
    engine : {"local", "ray"} or Engine
        ``ray`` runs the forwards on Ray Data actors (``embedstore[ray]``);
        see :mod:`embedstore.engines.ray_engine`. Writes stay in this process.
        An :class:`~embedstore.engines.Engine` object is used as given (and
        left open: the caller closes it).
    ray_address : str, optional
        Ray cluster to join (``auto``, ``ray://host:10001``); default: start
        a local instance with this machine's CPUs and stop it at the end.
    workers : int, optional
        Ray actors (model copies); default: cluster CPUs / ``threads``.
    backend : {None, "torch", "onnx", "auto"}
        What runs the forwards (see :mod:`embedstore.extractors.backends`:
        torch and ONNX Runtime fp32 share one key, bf16/8-bit/int8 have
        their own). ``None`` = the model's default (``auto`` for the builtin
        and paper encoders: torch or ONNX Runtime fp32, from the measured
        table). Texts are batched by length within each ``chunk_rows``.
    **opts
        Extractor options (``max_length``).

    Returns
    -------
    ExtractReport

    Raises
    ------
    ExtractInterrupted
        On Ctrl-C, after committing the finished rows.

    Examples
    --------
    >>> from embedstore import Store  # doctest: +SKIP
    >>> r = extract(Store(), "ham10000", "builtin:efficientnet-lite0", modality="image")  # doctest: +SKIP
    >>> r.result("image").computed  # doctest: +SKIP
    70
    """
    if batch_size < 1 or chunk_rows < 1:
        raise InputError("batch_size and chunk_rows must be at least 1")
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0, got {limit}")
    if modality not in ("both",) + MODALITIES:
        raise InputError(f"unknown modality {modality!r}: use image, text or both")
    from .engines import EngineOptions, make_engine

    if isinstance(engine, str):
        runner = make_engine(EngineOptions(engine, model_id, extractor, quantize, pooling, backend, dict(opts),
                                           ray_address, workers, threads))
    elif ray_address or workers:
        raise InputError("ray_address and workers go with engine='ray', not with an Engine object: "
                         "give them to the engine you built")
    else:
        runner = engine
    from .modalities import dataset_modalities, describe, require

    have = dataset_modalities(store, dataset)  # also a clear error when the dataset is missing
    if modality != "both":
        require(store, dataset, modality, f"extract modality='{' or '.join(have)}'", have=have)
    if extractor is None:
        from .extractors import load_extractor

        extractor = load_extractor(model_id, quantize=quantize, pooling=pooling, backend=backend, **opts)
    ident = extractor.identity
    if modality == "both":
        mods = [m for m in MODALITIES if m in ident.modalities and m in have]
        if not mods:
            raise InputError(f"model {ident.model_id} encodes {', '.join(ident.modalities)} but dataset "
                             f"'{dataset}' has {describe(have)}: extract it with a {' or '.join(have)} model")
    elif modality not in ident.modalities:
        raise InputError(f"model {ident.model_id} does not encode {modality}s; it supports "
                         f"{', '.join(ident.modalities)}: pass modality='{ident.modalities[0]}'")
    else:
        mods = [modality]
    if "image" in mods:
        from .images import max_pixels

        max_pixels()  # a bad decoded-size setting is one error for the run, not one per image
    run = _Run(store, dataset, extractor, new_run_tag("extract"), batch_size, chunk_rows, limit, progress, threads)
    try:
        for m in mods:
            run.modality(m, runner)
    finally:
        if runner is not engine:
            runner.close()
    return run.report()


class _Run:
    """State of one extract call across modalities: decides what to compute, commits chunks, reports.

    The engine computes (:mod:`embedstore.engines`); this class only hands it a
    :class:`~embedstore.engines.job.ComputeJob` whose ``commit`` is the one write path.
    """

    def __init__(self, store: Store, dataset: str, extractor: Any, tag: str, batch_size: int,
                 chunk_rows: int, limit: int | None, progress: bool, threads: int | None = None) -> None:
        self.store, self.dataset, self.ext, self.tag = store, dataset, extractor, tag
        self.batch_size, self.chunk_rows, self.limit, self.progress = batch_size, chunk_rows, limit, progress
        self.threads = threads
        self.ident = extractor.identity
        self.results: list[ModalityResult] = []
        self.load_seconds = 0.0
        self.ext_loaded = False

    def report(self, interrupted: bool = False) -> ExtractReport:
        ext = self.ext
        others = sorted({m.key for m in self.store.models() if m.model_id == self.ident.model_id} - {self.ident.key})
        from .cpu import busy_note

        ran = f"{getattr(ext, 'backend', self.ident.backend)} {getattr(ext, 'dtype', self.ident.dtype)}"
        return ExtractReport(self.dataset, self.ident.model_id, self.ident.key, self.tag, list(self.results),
                             self.load_seconds, interrupted, ran, getattr(ext, "backend_reason", ""),
                             dict(getattr(ext, "parity", {})), others,
                             busy_note() if any(r.computed for r in self.results) else None)

    def _version(self, table: str) -> int:
        return self.store.version(table) if self.store.has_table(table) else 0

    def modality(self, modality: str, engine: Any) -> None:
        """Reuse by content hash, compute what is still missing on ``engine``, commit, record the result."""
        store, ident = self.store, self.ident
        table = embeddings_table(ident.key, modality, ident.dim(modality))
        reuse = store.reuse_by_hash(self.dataset, ident, modality, tag=self.tag)
        reused = (reuse.inserted + reuse.updated) if reuse is not None else 0
        todo = store.missing(self.dataset, ident, modality, limit=self.limit)
        if todo.num_rows == 0:
            self.results.append(ModalityResult(modality, table, 0, reused, [], 0.0, 0.0, self._version(table), 0))
            return

        def commit(ids: list[str], hashes: list[str], vectors: np.ndarray) -> None:
            store.write_embeddings(self.dataset, ident, modality, ids, vectors, hashes, tag=self.tag)

        job = ComputeJob(modality, todo["sample_id"].to_pylist(), todo[HASH_COLUMN[modality]].to_pylist(),
                         todo["image_ref" if modality == "image" else "text"].to_pylist(), extractor=self.ext,
                         batch_size=self.batch_size, chunk_rows=self.chunk_rows, show_progress=self.progress,
                         commit=commit, load=self._load, dataset=self.dataset)
        forward_start, loading, t0 = self.ext.forward_calls, self.load_seconds, time.perf_counter()
        interrupted = False
        try:
            with _torch_threads(self.threads):
                engine.compute(job)
        except KeyboardInterrupt:
            interrupted = True
        seconds = time.perf_counter() - t0 - (self.load_seconds - loading)
        job.flush()
        rate = job.computed / seconds if job.computed and seconds > 0 else 0.0
        self.results.append(ModalityResult(modality, table, job.computed, reused, list(job.skipped),
                                           round(seconds, 4), round(rate, 3), self._version(table),
                                           self.ext.forward_calls - forward_start))
        if interrupted:
            raise ExtractInterrupted(self.report(interrupted=True)) from None

    def _load(self) -> None:
        if not self.ext_loaded:
            t0 = time.perf_counter()
            self.ext.ensure_loaded()
            self.load_seconds += time.perf_counter() - t0
            self.ext_loaded = True


def _torch_threads(n: int | None = None) -> Any:
    """Torch's pool at ``n`` threads (default: all cores) for a ``with`` block: :func:`embedstore.cpu.torch_threads`."""
    return torch_threads(n or None, default=cores())


def models_overview(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Known model ids (with defaults) and the model identities present in ``store``.

    Returns
    -------
    dict
        ``{"known": [...], "stored": [...]}``; each stored entry has the
        ``model_key``, id, modalities, dims, dtype, pooling, truncation and
        the embedding rows per modality.

    Examples
    --------
    >>> import tempfile
    >>> o = models_overview(Store(tempfile.mkdtemp() + "/s"))
    >>> (o["known"][0]["model_id"], o["stored"])
    ('hf:facebook/dinov2-base', [])
    """
    from .extractors.registry import list_known
    from .schema import parse_embeddings_table

    known = [{"model_id": m.model_id, "modalities": ",".join(m.modalities), "dims": m.dims,
              "pooling": m.pooling, "quantize": m.quantize or "none", "backend": m.backend, "note": m.note}
             for m in list_known()]
    rows: dict[str, dict[str, int]] = {}
    for name in store.embedding_tables():
        modality, key, _ = parse_embeddings_table(name)
        rows.setdefault(key, {})[modality] = store.open_table(name).count_rows()
    stored = [{"model_key": m.key, "model_id": m.model_id, "modalities": ",".join(m.modalities), "dims": m.dims,
               "dtype": m.dtype, "backend": m.backend, "pooling": m.pooling, "truncation": m.truncation,
               "weights": m.weights,
               "rows": rows.get(m.key, {})} for m in store.models()]
    return {"known": known, "stored": stored}
