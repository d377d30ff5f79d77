"""``extract --engine ray``: forward passes on Ray Data actors, writes on the driver.

What runs where
---------------
* **Driver** (the process that called :func:`~embedstore.extract.extract`):
  resolves the model identity (no weights loaded), copies vectors by content
  hash, asks the store what is missing, turns those rows into a Ray Dataset
  (one block per model batch), and commits results as they stream back
  through :meth:`Store.write_embeddings` every ``chunk_rows`` rows, tagged with
  the run tag. It is the only writer, so the store's concurrency design
  (keyed upserts under the table lock) holds unchanged: a killed run loses at
  most one uncommitted chunk, a re-run computes only what is still missing,
  and no key is ever written twice.
* **Actors** (:class:`EncodeActor`, one per ``workers``): each loads the model
  once, checks that its identity is the driver's (same weights fingerprint,
  preprocessing, pooling, dtype), then decodes and embeds whole batches. They
  never touch the store, so workers need the model weights and read access to
  the ``image_ref`` paths, not store credentials.

Without an address a local Ray instance is started with this machine's CPUs
and shut down when the run ends (also on errors and Ctrl-C). That instance is
private to the user who started it: every Ray process listens on 127.0.0.1
only (Ray on Linux otherwise binds its GCS, raylet and worker servers to all
interfaces), and its session files (logs, sockets, the object store's
spill folder) live in a fresh folder of mode 0700 under ``$RAY_TMPDIR`` (or
the system temporary folder), removed at shutdown; see
:func:`local_instance_options`. With an address (``auto``,
``ray://host:10001`` or ``host:6379``) the run joins that cluster and leaves
it running.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from ..cpu import cores
from ..errors import EmbedstoreError, InputError, require
from .job import ComputeJob


def _ray_messages_to_stderr() -> None:
    """Send what Ray prints on the driver to stderr, never to stdout (``--json`` owns stdout).

    ``log_to_driver=False`` stops the workers' logs, but Ray's driver still
    prints the errors its raylet publishes (``(raylet) A worker died or was
    killed ...``) with ``print_to_stdstream``, to ``sys.stdout`` for messages
    not marked as errors. Wrapped once per process so every message it prints
    is marked as one, i.e. goes to ``sys.stderr``.
    """
    from ray._private import worker

    printer = worker.print_to_stdstream
    if getattr(printer, "embedstore_stderr", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        printer({**data, "is_err": True}, ignore_prefix)

    to_stderr.embedstore_stderr = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


class RayEngineError(EmbedstoreError):
    """A Ray worker failed for a reason that is not an embedstore error."""


class RayEngine:
    """Runs the forward passes of one extract call on Ray Data actors (an :class:`~embedstore.engines.Engine`).

    Parameters
    ----------
    spec : dict
        How a worker builds the extractor: ``model_id``, ``quantize``,
        ``pooling`` and ``opts`` (the arguments of
        :func:`~embedstore.extractors.load_extractor`).
    address : str, optional
        Ray cluster address; ``None`` starts (and later stops) a local instance.
    workers : int, optional
        Number of actors, i.e. model copies. Default: as many as fit, each
        with ``cpus_per_worker`` CPUs.
    cpus_per_worker : float, optional
        CPUs reserved per actor (also its torch thread count). Default: 1.

    Examples
    --------
    >>> eng = RayEngine({"model_id": "builtin:minilm-l6"}, workers=2)  # doctest: +SKIP
    >>> eng.close()  # doctest: +SKIP
    """

    name = "ray"

    def __init__(self, spec: dict[str, Any], *, address: str | None = None, workers: int | None = None,
                 cpus_per_worker: float | None = None) -> None:
        require("ray", "embedstore[ray]")
        if workers is not None and workers < 1:
            raise InputError(f"workers= must be at least 1, got {workers}")
        if cpus_per_worker is not None and cpus_per_worker <= 0:
            raise InputError(f"cpus per worker must be positive, got {cpus_per_worker}")
        self.spec = dict(spec)
        self.address = address
        self.workers = workers
        self.cpus_per_worker = float(cpus_per_worker or 1)
        self._started = False
        self._session_dir: str | None = None

    @classmethod
    def from_options(cls, options: Any) -> "RayEngine":
        """The engine for :class:`~embedstore.engines.EngineOptions`; workers rebuild the extractor from its id.

        Given the driver's extractor, its canonical id and settings are what
        workers load (their model_key is checked against it).
        """
        model_id, quantize, pooling, backend = options.model_id, options.quantize, options.pooling, options.backend
        ext = options.extractor
        if ext is not None:
            model_id, quantize, pooling = ext.resolved.model_id, ext.dtype, ext.identity.pooling
            backend = {"onnxruntime": "onnx"}.get(ext.backend, ext.backend)
            quantize = {"int8": "8bit", "fp32": "none"}.get(quantize, quantize)
        spec = {"model_id": model_id, "quantize": quantize, "pooling": pooling, "backend": backend,
                "opts": dict(options.opts)}
        return cls(spec, address=options.address, workers=options.workers, cpus_per_worker=options.threads)

    # -- cluster lifecycle -------------------------------------------------
    def _ensure_ray(self):
        import ray

        if ray.is_initialized():
            return ray
        quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
        _ray_messages_to_stderr()
        with warnings.catch_warnings():
            # ray.init fork+execs its daemons; lance/lancedb warn about fork, which exec makes moot.
            warnings.filterwarnings("ignore", message=".*fork", category=Warning)
            if self.address:
                try:
                    ray.init(address=self.address, **quiet)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise InputError(f"cannot connect to the Ray cluster at {self.address}: "
                                     f"{str(exc).splitlines()[0]}; check ray_address=") from None
            else:
                self._session_dir = _start_local(ray, quiet)
                self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver shows its own bar (rows committed)
        from ray.util.debug import log_once

        log_once("ray_data_progress_manager_disabled")  # ...and Ray need not warn that it is off
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray

    def close(self) -> None:
        """Shut down the local Ray instance if this engine started it."""
        if self._started:
            import shutil

            import ray

            ray.shutdown()
            self._started = False
            if self._session_dir:
                shutil.rmtree(self._session_dir, ignore_errors=True)
                self._session_dir = None

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _pool_size(self, ray, blocks: int) -> int:
        if self.workers is not None:
            size = self.workers
        else:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            size = max(1, int(cpus // self.cpus_per_worker))
        return max(1, min(size, blocks))

    # -- the compute step of one modality --------------------------------
    def compute(self, job: ComputeJob) -> None:
        """Embed ``job``'s rows on the actors; results, skips and forward counts go back through ``job``.

        Only ``job``'s public API is used (:class:`~embedstore.engines.job.ComputeJob`):
        its rows, ``batch_size``, ``model_key`` and ``show_progress``, and
        ``add``/``skip``/``count_forwards``; ``job`` commits every ``chunk_rows``.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from ..data import vectors_of
        from ..progress import progress as progress_bar

        ray = self._ensure_ray()
        modality = job.modality
        rows = pa.table({"sample_id": pa.array(list(map(str, job.ids)), pa.string()),
                         "content_sha256": pa.array(list(job.hashes), pa.string()),
                         "input": pa.array(list(job.inputs), pa.string())})
        if modality == "text":  # blocks of similar length, as the local engine batches (characters: no tokenizer here)
            from ..extract_inputs import window_order

            rows = rows.take(window_order([len(t or "") for t in job.inputs], job.chunk_rows))
        bs = job.batch_size
        blocks = [rows.slice(i, bs) for i in range(0, rows.num_rows, bs)]
        size = self._pool_size(ray, len(blocks))
        ds = ray.data.from_arrow(blocks).map_batches(
            EncodeActor, batch_size=bs, batch_format="pyarrow", num_cpus=self.cpus_per_worker,
            compute=ray.data.ActorPoolStrategy(size=size),
            fn_constructor_kwargs={"spec": self.spec, "modality": modality, "expected_key": job.model_key,
                                   "threads": max(1, int(self.cpus_per_worker)), "dataset": job.dataset,
                                   "env": worker_env()})
        bar = progress_bar(total=rows.num_rows, unit="rows", desc=f"extract {modality} (ray x{size})",
                           disable=not job.show_progress)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                for out in _results(ds):
                    ok = out.filter(out["error"].is_null())
                    for sid, reason in zip(*(out.filter(out["error"].is_valid())[c].to_pylist()
                                             for c in ("sample_id", "error"))):
                        job.skip(sid, reason)
                    job.count_forwards(pc.sum(out["forwards"]).as_py() or 0)  # made on the actors
                    if ok.num_rows:
                        job.add(ok["sample_id"].to_pylist(), ok["content_sha256"].to_pylist(), vectors_of(ok))
                    bar.update(out.num_rows)
        finally:
            bar.close()


#: Ray's switch between "node IP = this machine's address" (Linux default) and "node IP = localhost".
_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def local_instance_options() -> dict[str, Any]:
    """``ray.init`` options of the local instance an extract starts: loopback only, private session folder.

    The session files go to ``<private>/r``, where ``<private>`` is a new
    ``mkdtemp`` folder (mode 0700, this user's) under ``$RAY_TMPDIR`` or the
    system temporary folder: Ray makes its own temp folder world-writable
    (0777), so privacy comes from the folder above it, which no other user
    can enter. Listening on 127.0.0.1 is :func:`_start_local`'s part (Ray
    has no ``init`` option for it on Linux).
    """
    import os
    import tempfile

    base = os.environ.get("RAY_TMPDIR") or None
    if base:
        os.makedirs(base, exist_ok=True)  # as Ray itself does with it
    private = tempfile.mkdtemp(prefix="esr-", dir=base)  # short: Ray's unix sockets live below (~107 chars)
    return {"num_cpus": cores(), "include_dashboard": False, "_node_ip_address": "127.0.0.1",
            "_temp_dir": os.path.join(private, "r")}


def _start_local(ray, quiet: dict[str, Any]) -> str:
    """Start the private local instance; returns its private folder (removed by :meth:`RayEngine.close`).

    On Linux Ray replaces a ``127.0.0.1`` node address with the machine's
    network address and its servers then listen on every interface, unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its single-machine mode): set
    here for the daemons Ray starts (they inherit it, and they are what
    listens) and for this call only, then put back, so that a later
    ``ray.init(address=...)`` in this process still joins remote clusters.
    """
    import os

    from ray._private import ray_constants

    options = local_instance_options()
    before_env, before_flag = os.environ.get(_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_CLUSTER_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(**options, **quiet)
    except BaseException:
        import shutil

        shutil.rmtree(os.path.dirname(options["_temp_dir"]), ignore_errors=True)
        raise
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before_flag
        if before_env is None:
            os.environ.pop(_CLUSTER_ENV, None)
        else:
            os.environ[_CLUSTER_ENV] = before_env
    return os.path.dirname(options["_temp_dir"])


def worker_env() -> dict[str, str]:
    """The driver's embedstore decoding settings that Ray workers must share (e.g. the decoded-size limit)."""
    import os

    from ..images import MAX_PIXELS_ENV

    return {k: os.environ[k] for k in (MAX_PIXELS_ENV,) if k in os.environ}


def _results(ds):
    """Iterate the actors' output blocks, turning worker failures into one-line errors."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        raise _worker_error(exc) from None


def _worker_error(exc: BaseException) -> EmbedstoreError:
    """The embedstore error a worker raised, or a one-line :class:`RayEngineError`.

    A failure inside a batch arrives as Ray's subclass of the worker's
    exception type with the original in ``.cause``; a failure while an actor
    starts (e.g. a model_key mismatch) arrives only as text, whose last line
    is ``embedstore.errors.<Class>: <message>``.
    """
    import re

    from .. import errors

    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        cause = getattr(exc, "cause", None)
        if isinstance(cause, EmbedstoreError):
            return cause
        exc = cause if isinstance(cause, BaseException) else exc.__cause__
    text = "\n".join(str(e) for e in chain)
    found = re.findall(r"^embedstore\.errors\.(\w+): (.+)$", text, re.M)
    if found:
        name, message = found[-1]
        cls = getattr(errors, name, RayEngineError)
        return (cls if isinstance(cls, type) and issubclass(cls, EmbedstoreError) else RayEngineError)(message)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return RayEngineError(f"a Ray worker failed: {lines[-1][:300] if lines else type(chain[0]).__name__}; "
                          "see the Ray worker logs")


class EncodeActor:
    """A Ray Data callable class: loads the model once per actor, embeds batches.

    Output per input row: ``sample_id``, ``content_sha256``, ``vector``
    (float32 list, null when skipped), ``error`` (the skip reason, null
    when embedded) and ``forwards`` (1 on the first row of a batch that ran
    the model, else 0; Ray may merge output blocks, so this is summed).
    """

    def __init__(self, spec: dict[str, Any], modality: str, expected_key: str, threads: int = 1,
                 dataset: str = "", env: dict[str, str] | None = None) -> None:
        import os

        import torch

        from ..extractors import load_extractor

        os.environ.update(env or {})  # the driver's decoding settings (e.g. the decoded-size limit)
        self.dataset = dataset
        torch.set_num_threads(max(1, threads))
        self.modality = modality
        self.ext = load_extractor(spec["model_id"], quantize=spec.get("quantize"), pooling=spec.get("pooling"),
                                  backend=spec.get("backend"), **spec.get("opts", {}))
        got = self.ext.identity
        if got.key != expected_key:
            raise InputError(f"worker model {got.model_id} has model_key {got.key}, the driver expected "
                             f"{expected_key}: install identical weights and library settings on every node")
        self.dim = got.dim(modality)
        self.ext.ensure_loaded()

    def __call__(self, batch):
        import pyarrow as pa

        from ..extract_inputs import decode_rows

        ids = batch["sample_id"].to_pylist()
        inputs = batch["input"].to_pylist()
        skipped: list = []
        idx, items = decode_rows(self.modality, ids, inputs, range(len(ids)), skipped,
                                 batch["content_sha256"].to_pylist(), self.dataset)
        full = np.zeros((len(ids), self.dim), dtype=np.float32)
        done = np.zeros(len(ids), dtype=bool)
        if idx:
            full[idx] = self.ext.forward(self.modality, self.ext.prepare(self.modality, items))
            done[idx] = True
        reasons = {s.sample_id: s.reason for s in skipped}
        forwards = [0] * len(ids)
        if idx and ids:
            forwards[0] = 1
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(full.reshape(-1)), self.dim, mask=pa.array(~done))
        return pa.table({"sample_id": batch["sample_id"], "content_sha256": batch["content_sha256"],
                         "vector": vectors, "error": pa.array([reasons.get(str(s)) for s in ids], pa.string()),
                         "forwards": pa.array(forwards, pa.int32())})
