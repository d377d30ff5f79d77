"""Several 'machines' writing one ``s3://`` store at once, with no shared filesystem and no common lock.

Each worker process gets its own ``EMBEDSTORE_LOCK_DIR`` and reads the
storage options from ``EMBEDSTORE_STORAGE_*`` (as a lab machine would), and
all of them write to one bucket on a real S3 HTTP server (moto). One row per
key comes only from the declared primary keys and Lance's conditional-PUT
commits.
"""

from __future__ import annotations

import pytest

from embedstore import Store
from embedstore.maintenance import doctor, key_column
from embedstore.schema import embeddings_table, samples_table
from tests.s3_server import moto_endpoint, s3  # noqa: F401

REPEATS = 5


def _one_row_per_key(store: Store, table: str, expected: int) -> None:
    keys = store.read(table, columns=[key_column(table)])[key_column(table)].to_pylist()
    assert len(keys) == len(set(keys)) == expected, (store.uri, table, len(keys), len(set(keys)))


def _machines(s3, tmp_path, n):
    from tests.lab import s3_env

    return [s3_env(s3.endpoint, str(tmp_path / f"machine{m}" / "locks")) for m in range(n)]


@pytest.mark.slow
def test_three_extractors_on_three_machines_leave_one_row_per_key_on_s3(s3, lab, tmp_path):
    from embedstore.extractors import load_extractor
    from embedstore.ingest import ingest
    from tests.lab import N_ROWS, context, extract_worker, run_all

    manifest, model = lab
    uris = [s3.uri(f"extract{r}") for r in range(REPEATS)]
    for uri in uris:
        ingest(Store(uri, storage_options=s3.options), "manifest", str(manifest), name="ds", id_column="sample_id",
               progress=False)
    ctx = context()
    barrier = ctx.Barrier(3, timeout=180)
    procs = [ctx.Process(target=extract_worker, args=(uris, model, barrier, env))
             for env in _machines(s3, tmp_path, 3)]
    assert run_all(procs, 420) == [0] * 3, "an extractor failed; see its traceback above"
    key = load_extractor(model).identity.key
    for uri in uris:
        store = Store(uri, storage_options=s3.options)
        for modality in ("image", "text"):
            _one_row_per_key(store, embeddings_table(key, modality, 16), N_ROWS)
        assert len(store.tags(embeddings_table(key, "image", 16))) >= 1  # every run tagged what it wrote
        report = doctor(store)
        assert report.ok, report.summary()
    assert not any((tmp_path / f"machine{m}" / "locks").exists() for m in range(3))  # no lock was ever taken


@pytest.mark.slow
def test_four_ingests_of_overlapping_manifests_on_four_machines_leave_one_row_per_key_on_s3(s3, lab, tmp_path):
    from tests.lab import N_ROWS, context, ingest_worker, run_all, write_half

    manifest, _model = lab
    parts = [write_half(manifest, 0, 16), write_half(manifest, 8, N_ROWS), write_half(manifest, 4, 20),
             manifest]  # every row is in at least two manifests
    uris = [s3.uri(f"ingest{r}") for r in range(REPEATS)]
    ctx = context()
    barrier = ctx.Barrier(4, timeout=180)
    procs = [ctx.Process(target=ingest_worker, args=(uris, str(part), barrier, env))
             for part, env in zip(parts, _machines(s3, tmp_path, 4))]
    assert run_all(procs, 300) == [0] * 4, "an ingest failed; see its traceback above"
    for uri in uris:
        store = Store(uri, storage_options=s3.options)
        _one_row_per_key(store, samples_table("ds"), N_ROWS)
        report = doctor(store)
        assert report.ok, report.summary()
