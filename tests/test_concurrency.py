"""Many processes writing one store at once: never a lost or duplicated row.

Workers come from :func:`tests.lab.context` (a fork server that never loads
lance, which is not fork-safe) and are released together by a barrier, so their writes really overlap. Every test checks the
result with :func:`embedstore.maintenance.doctor` too.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from embedstore import Store
from embedstore.maintenance import doctor
from embedstore.schema import embeddings_table, samples_table
from tests.helpers import sample_rows, toy_model

N_SAMPLES = 40
HALVES = ([f"s{i:02d}" for i in range(0, 30)], [f"s{i:02d}" for i in range(10, 40)])  # overlap s10..s29
MODEL = toy_model(8, "image", "hf:toy/concurrent")
REPEATS = 5


def _vectors(ids):
    return np.array([[int(i[1:])] * 8 for i in ids], dtype=np.float32)


def _store_writer(uris, half, barrier, results):
    """Upsert one half (samples, an alignment, plain and aligned embeddings) in chunks."""
    ids = HALVES[half]
    stats = []
    for uri in uris:
        store = Store(uri)
        barrier.wait()
        for start in range(0, len(ids), 10):
            chunk = ids[start:start + 10]
            rows = sample_rows(chunk)
            stats.append(store.write_samples("ds", rows))
            hashes = rows["image_sha256"].to_pylist()
            stats.append(store.write_embeddings("ds", MODEL, "image", chunk, _vectors(chunk), hashes))
            store.register_alignment("gap1", "mean_shift", {"lam": 0.5}, np.zeros(8))
            stats.append(store.write_embeddings("ds", MODEL, "image", chunk, _vectors(chunk) + 1, hashes,
                                                alignment_key="gap1"))
    results.put((sum(r.retries for r in stats), sum(r.attempts for r in stats)))


def _reader(uri, stop, bad):
    """Read the embeddings table until told to stop; report any read that is not a committed state."""
    store = Store(uri)
    table = embeddings_table(MODEL.key, "image", 8)
    last = 0
    while not stop.is_set():
        if not store.has_table(table):
            time.sleep(0.01)
            continue
        keys = store.read(table, columns=["row_key"])["row_key"].to_pylist()
        if len(keys) != len(set(keys)) or len(keys) < last:
            bad.put(f"read {len(keys)} rows, {len(set(keys))} unique, after {last}")
        last = len(keys)


@pytest.mark.slow
def test_four_processes_upserting_overlapping_halves_leave_one_row_per_key(tmp_path):
    from tests.lab import context, run_all

    ctx = context()
    uris = [str(tmp_path / f"store{r}") for r in range(REPEATS)]
    for uri in uris:
        Store(uri)
    barrier, results, stop, bad = ctx.Barrier(4, timeout=120), ctx.Queue(), ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_reader, args=(uris[0], stop, bad))
    reader.start()
    writers = [ctx.Process(target=_store_writer, args=(uris, w % 2, barrier, results)) for w in range(4)]
    assert run_all(writers, 240) == [0] * 4, "a writer failed; see its traceback above"
    stop.set()
    reader.join(60)
    assert reader.exitcode == 0
    assert bad.empty(), bad.get()
    counts = [results.get(timeout=10) for _ in writers]
    retries, attempts = sum(c[0] for c in counts), sum(c[1] for c in counts)
    assert attempts >= 4 * REPEATS * 6  # 12 writes per writer and store, at least half of them commit
    print(f"\n{attempts} commit attempts, {retries} retried after a conflict with another writer")
    emb = embeddings_table(MODEL.key, "image", 8)
    for uri in uris:
        store = Store(uri)
        for table, expected in ((samples_table("ds"), N_SAMPLES), (emb, 2 * N_SAMPLES)):
            keys = store.read(table, columns=[store_key(table)])[store_key(table)].to_pylist()
            assert len(keys) == len(set(keys)) == expected, (uri, table)
        ids, vecs = store.embeddings("ds", MODEL, "image", as_="numpy")
        assert sorted(ids) == sorted(set(HALVES[0]) | set(HALVES[1]))
        assert np.array_equal(vecs, _vectors(ids))
        report = doctor(store)
        assert report.ok, report.summary()


def store_key(table):
    from embedstore.maintenance import key_column

    return key_column(table)


@pytest.mark.slow
def test_four_extract_processes_on_overlapping_halves_leave_one_row_per_key(tmp_path, lab):
    """4 workers behind a barrier each ingest one of two overlapping halves of one dataset and extract it."""
    from embedstore.extractors import load_extractor
    from tests.lab import N_ROWS, barrier_worker, context, run_all, write_half

    manifest, model = lab
    halves = [write_half(manifest, 0, 16), write_half(manifest, 8, N_ROWS)]  # rows 8..15 in both
    ctx = context()
    uris = [str(tmp_path / f"store{r}") for r in range(REPEATS)]
    barrier = ctx.Barrier(4, timeout=120)
    procs = [ctx.Process(target=barrier_worker, args=(uris, str(halves[w % 2]), model, barrier)) for w in range(4)]
    assert run_all(procs, 300) == [0] * 4, "a worker failed; see its traceback above"
    key = load_extractor(model).identity.key
    for uri in uris:
        store = Store(uri)
        sample_ids = store.samples("ds", columns=["sample_id"])["sample_id"].to_pylist()
        assert len(sample_ids) == len(set(sample_ids)) == N_ROWS
        for modality in ("image", "text"):
            table = embeddings_table(key, modality, 16)
            keys = store.read(table, columns=["row_key"])["row_key"].to_pylist()
            assert len(keys) == len(set(keys)) == N_ROWS, (uri, table)
        report = doctor(store)
        assert report.ok, report.summary()
