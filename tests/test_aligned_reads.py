"""Aligned rows computed when read equal the rows main (3795f98) stored; its store upgrades and reruns identically."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import Store
from embedstore.alignment import aligned
from embedstore.pairs import toy_pairs
from embedstore.transform_align import align_method
from embedstore.transforms import METHODS
from embedstore.upgrade_alignments import TOLERANCE, convert_alignments
from tests.main_store import writing_as_main

N = 40
SETTINGS = [dict(method=m, lam=0.6, n_components=3 if m in ("whiten", "procrustes", "cca") else None)
            for m in METHODS]


def _align(store, img, txt, method, lam, n_components, **kw):
    if kw.get("noise_std"):
        from embedstore.alignment import align

        return align(store, "toy", image_model=img, text_model=txt, lam=lam, match="interp", **kw)
    return align_method(store, "toy", method=method, image_model=img, text_model=txt, lam=lam,
                        n_components=n_components, match="interp")


def _emb_bytes(store):
    import os

    total = 0
    for t in store.embedding_tables():
        for dirpath, _, files in os.walk(os.path.join(store.uri, f"{t}.lance", "data")):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def test_every_method_reads_back_the_rows_main_stored_without_storing_a_copy(tmp_path):
    old, new = Store(tmp_path / "old"), Store(tmp_path / "new")
    settings = SETTINGS + [dict(method="gapshift", lam=0.5, n_components=None, noise_std=0.05, seed=3)]
    for store in (old, new):
        img, txt = toy_pairs(store, "toy", n=N, image_dim=8, text_dim=5)
    with writing_as_main():
        stored = [_align(old, img, txt, **s) for s in settings]
    before = _emb_bytes(new)
    computed = [_align(new, img, txt, **s) for s in settings]
    assert _emb_bytes(new) == before  # no aligned copy in any embeddings table
    for s, a, b in zip(settings, stored, computed):
        assert a.dim == b.dim and a.rows == b.rows == N  # (keys differ: main's row writes moved the source versions)
        for m in ("image", "text"):
            ids_a, va = aligned(old, "toy", a.alignment_key, m)
            ids_b, vb = aligned(new, "toy", b.alignment_key, m)
            assert ids_a == ids_b and va.dtype == vb.dtype == np.float32 and va.shape == vb.shape
            assert float(np.max(np.abs(va.astype(np.float64) - vb))) <= TOLERANCE, (s, m)
            if s["method"] == "gapshift":
                assert np.array_equal(va, vb), (s, m)  # the mean shift is row-wise: bit for bit
            for split in ("train", "test"):  # a subset read (a split) gives the same rows
                sa, xa = aligned(old, "toy", a.alignment_key, m, split=split)
                sb, xb = aligned(new, "toy", b.alignment_key, m, split=split)
                assert sa == sb and float(np.max(np.abs(xa.astype(np.float64) - xb))) <= TOLERANCE


def test_neighbors_and_export_read_computed_rows_like_stored_ones(tmp_path):
    import polars as pl

    old, new = Store(tmp_path / "old"), Store(tmp_path / "new")
    for store in (old, new):
        img, txt = toy_pairs(store, "toy", n=N, image_dim=8, text_dim=5)
    with writing_as_main():
        key = _align(old, img, txt, "center", 0.4, None).alignment_key
    assert _align(new, img, txt, "center", 0.4, None).alignment_key == key
    for sid in ("toy-0003", "toy-0031"):
        for m, model in (("image", img), ("text", txt)):
            a = old.neighbors("toy", model, m, sample_id=sid, k=5, alignment_key=key, dim=8)
            b = new.neighbors("toy", model, m, sample_id=sid, k=5, alignment_key=key, dim=8)
            assert a["sample_id"].to_pylist() == b["sample_id"].to_pylist()
            assert np.allclose(a["distance"].to_numpy(), b["distance"].to_numpy(), atol=1e-6)
    out_a, out_b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert old.export("toy", txt, "text", str(out_a), alignment_key=key) == N
    assert new.export("toy", txt, "text", str(out_b), alignment_key=key) == N
    va, vb = (np.stack(pl.read_parquet(p)["vector"].to_numpy()) for p in (out_a, out_b))
    assert va.shape == (N, 8) and float(np.max(np.abs(va - vb))) <= TOLERANCE
    with pytest.raises(Exception, match="computed when read"):
        new.neighbors("toy", txt, "text", sample_id="toy-0003", k=3, alignment_key=key, engine="lance")


@pytest.fixture(scope="module")
def main_store(tmp_path_factory):
    """A store written by main (3795f98): three alignments stored as rows, two recorded runs on them, a user tag."""
    from embedstore.trainers.train import train

    uri = tmp_path_factory.mktemp("main") / "store"
    store = Store(uri)
    img, txt = toy_pairs(store, "toy", n=N, image_dim=8, text_dim=5)
    with writing_as_main():
        keys = [_align(store, img, txt, "gapshift", 0.5, None).alignment_key,
                _align(store, img, txt, "center", 0.3, None).alignment_key,
                _align(store, img, txt, "gapshift", 0.5, None, noise_std=0.05, seed=3).alignment_key]
    store.tag("samples__toy", "paper-v1")
    runs = [train(store, "toy", image_model=img, text_model=txt, alignment_key=k, epochs=3, seeds=1,
                  split_by="paper", save_heads=False).runs[0] for k in keys[:2]]
    rows = {(k, m): aligned(store, "toy", k, m) for k in keys for m in ("image", "text")}
    return uri, img, txt, keys, runs, rows


def _copy(uri, tmp_path):
    import shutil

    shutil.copytree(uri, tmp_path / "store")
    return Store(tmp_path / "store")


@pytest.mark.slow
def test_a_store_written_by_main_is_read_as_it_is_then_upgraded_and_its_runs_rerun_identically(main_store, tmp_path):
    from click.testing import CliRunner

    from embedstore.cli.main import cli
    from embedstore.maintenance import cleanup, doctor
    from embedstore.trainers.train import rerun, train

    uri, img, txt, keys, runs, rows = main_store
    store = _copy(uri, tmp_path)
    # read as it is: the stored rows, and the runs re-execute
    assert all(store.alignment(k).settings.get("storage") is None for k in keys)
    assert rerun(store, runs[0].run_id).metrics == runs[0].metrics
    dry = convert_alignments(store, dry_run=True)
    assert [c.converted for c in dry] == [True] * 3 and all(store.alignment(k).settings.get("storage") is None
                                                          for k in keys)
    up = CliRunner().invoke(cli, ["--store", store.uri, "upgrade"], obj={})
    assert up.exit_code == 0, up.output
    assert "converted 3 alignment(s)" in up.output and f"{6 * N} row(s) removed" in up.output
    for k in keys:
        rec = store.alignment(k)
        assert rec.settings["storage"] == "on_read" and rec.settings["converted_from_rows"]
        for t in store.embedding_tables():
            assert store.open_table(t).count_rows(f"alignment_key = '{k}'") == 0
        for m in ("image", "text"):
            ids, vecs = aligned(store, "toy", k, m)
            want_ids, want = rows[(k, m)]
            assert ids == want_ids and float(np.max(np.abs(vecs.astype(np.float64) - want))) <= TOLERANCE
            if k != keys[1]:
                assert np.array_equal(vecs, want), (k, m)  # mean shift (noise included): bit for bit
    # old runs read the versions they pinned (rows still there); a new run reads computed rows: same metrics
    for run in runs:
        assert rerun(store, run.run_id).metrics == run.metrics
    again = train(store, "toy", image_model=img, text_model=txt, alignment_key=keys[0], epochs=3, seeds=1,
                  split_by="paper", save_heads=False, record=False).runs[0]
    assert again.metrics == runs[0].metrics
    # cleanup keeps what the runs pinned; the reruns are still identical; the store is healthy
    cleanup(store, 0)
    for run in runs:
        assert rerun(store, run.run_id).metrics == run.metrics
    assert doctor(store).ok, doctor(store).summary()
    assert convert_alignments(store) == []  # nothing left to convert
