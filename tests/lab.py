"""A small 'lab' for the concurrency and crash tests: data, a tiny model, worker processes.

Worker processes come from a ``forkserver`` whose server has already
imported torch and transformers, so each worker starts in a fraction of a
second instead of re-importing them (lance and polars are not fork-safe, so
they are imported by each worker itself, never by the server).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

#: Modules the fork server imports once (fork-safe: no threads are running afterwards).
#: ``lance_namespace`` is pure Python and two thirds of ``import lancedb``.
PRELOAD = ["numpy", "torch", "transformers", "transformers.models.clip.modeling_clip", "PIL.Image",
           "lance_namespace"]
N_ROWS = 24


def context():
    """The multiprocessing context of every worker."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def run_all(procs, timeout: float) -> list[int | None]:
    """Start ``procs``, wait for all (``timeout`` s in total), kill stragglers; their exit codes."""
    for p in procs:
        p.daemon = True
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)
    return codes


def make_lab(base: Path) -> tuple[Path, str]:
    """``(manifest CSV, tiny CLIP model dir)``: 24 synthetic images + texts and a 16-d two-tower model."""
    from embedstore.synthetic import make_synthetic
    from tests.tiny_models import make_tiny_clip_hf

    data = make_synthetic(base / "data", n=N_ROWS)
    return data.manifest, make_tiny_clip_hf(base / "clip", projection_dim=16)


def write_half(manifest: Path, lo: int, hi: int) -> Path:
    """A manifest with data rows ``lo..hi-1`` of ``manifest``, next to it (same image folder)."""
    lines = manifest.read_text().splitlines(keepends=True)
    out = manifest.with_name(f"half-{lo}-{hi}.csv")
    out.write_text(lines[0] + "".join(lines[1 + lo:1 + hi]))
    return out


def ingest_and_extract(uri: str, manifest: str, model: str, phase=None, times=None, *, extractor=None) -> None:
    """The lab's pipeline: ingest a manifest as dataset ``ds`` then extract both modalities.

    ``phase`` (a shared int) is set to 1 during ingest, 2 during extract and
    3 when done; ``times`` (2 shared floats) gets the seconds ingest took and
    the seconds of the whole pipeline.
    """
    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.ingest import ingest

    t0 = time.monotonic()
    store = Store(uri)

    def mark(value: int) -> None:
        if phase is not None:
            phase.value = value
        if times is not None and value > 1:
            times[value - 2] = time.monotonic() - t0

    mark(1)
    ingest(store, "manifest", manifest, name="ds", id_column="sample_id", progress=False,
           keep_missing=True)  # the workers ingest overlapping parts of one dataset
    mark(2)
    extract(store, "ds", model, extractor=extractor, batch_size=4, chunk_rows=4, progress=False, threads=1)
    mark(3)


def standby_worker(uri: str, manifest: str, model: str, ready, go, phase, times, env=None) -> None:
    """Warm up (imports, model, one pipeline run on a scratch store), say ready, wait for go, run the pipeline."""
    os.environ.update(env or {})
    from embedstore.extractors import load_extractor

    ext = load_extractor(model)
    ext.ensure_loaded()
    ingest_and_extract(uri + "-warmup", manifest, model, extractor=ext)
    ready.set()
    go.wait()
    ingest_and_extract(uri, manifest, model, phase, times, extractor=ext)


def die_after_commits(n: int) -> None:
    """Make this process SIGKILL itself right after its ``n``-th committed store write (fault injection)."""
    from embedstore.store import Store

    real = Store.upsert
    done = [0]

    def upsert(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        done[0] += 1
        if done[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Store.upsert = upsert


def align_worker(uri: str, die_after: int) -> None:
    """Align the toy pairs of ``uri``, dying after the ``die_after``-th commit."""
    from embedstore import Store
    from embedstore.alignment import align

    die_after_commits(die_after)
    align(Store(uri), "toy", image_model="hf:toy-image", text_model="hf:toy-text", match="interp")


def train_worker(uri: str, die_after: int) -> None:
    """Train 2 seeds on the toy pairs of ``uri`` (one run record each), dying after the ``die_after``-th commit."""
    from embedstore import Store
    from embedstore.trainers.train import train

    die_after_commits(die_after)
    train(Store(uri), "toy", image_model="hf:toy-image", text_model="hf:toy-text", epochs=2, seeds=2)


def barrier_worker(uris: list[str], manifest: str, model: str, barrier) -> None:
    """For each store: wait at the barrier with the other workers, then ingest its half and extract."""
    from embedstore.extractors import load_extractor

    ext = load_extractor(model)
    ext.ensure_loaded()
    for uri in uris:
        barrier.wait()
        ingest_and_extract(uri, manifest, model, extractor=ext)


def s3_env(endpoint: str, lock_dir: str) -> dict[str, str]:
    """Environment of one 'machine' of an S3 lab: the storage options as ``EMBEDSTORE_STORAGE_*``, its own lock dir."""
    from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY

    opts = {"endpoint": endpoint, "region": REGION, "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY, "allow_http": "true"}
    return {f"EMBEDSTORE_STORAGE_{k.upper()}": v for k, v in opts.items()} | {"EMBEDSTORE_LOCK_DIR": lock_dir}


def extract_worker(uris: list[str], model: str, barrier, env: dict[str, str]) -> None:
    """One 'machine' (its own ``env``, no shared files): for each store, wait at the barrier, then extract ``ds``."""
    os.environ.update(env)
    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.extractors import load_extractor

    ext = load_extractor(model)
    ext.ensure_loaded()
    for uri in uris:
        barrier.wait()
        extract(Store(uri), "ds", model, extractor=ext, batch_size=4, chunk_rows=4, progress=False, threads=1)


def ingest_worker(uris: list[str], manifest: str, barrier, env: dict[str, str]) -> None:
    """One 'machine': for each store, wait at the barrier, then ingest ``manifest`` as dataset ``ds``.

    The manifests overlap and each adds to the dataset (``keep_missing=True``):
    without it, whichever machine commits second sees rows its manifest lacks
    and refuses by design, so the outcome would depend on the commit order.
    """
    os.environ.update(env)
    import lancedb  # noqa: F401  (imported before the barrier, so the writes overlap)

    from embedstore import Store
    from embedstore.ingest import ingest

    for uri in uris:
        barrier.wait()
        ingest(Store(uri), "manifest", manifest, name="ds", id_column="sample_id", keep_missing=True, progress=False)
