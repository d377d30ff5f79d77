"""Snapshot: one staleness rule for every reader (alignment, gap, sweep, aligned training, export, embeddings)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from embedstore.alignment import align, aligned
from embedstore.diagnostics import gap_diagnostics
from embedstore.errors import InputError
from embedstore.keys import sha256_text
from embedstore.pairs import toy_pairs
from embedstore.snapshot import Snapshot

N, STALE = 60, 10


def rewrite_texts(store, dataset: str = "toy", n: int = STALE) -> list[str]:
    """A prompt change for the first ``n`` samples: new text, new text hash; returns their ids."""
    rows = store.samples(dataset)
    texts = [("rewritten " + t) if i < n else t for i, t in enumerate(rows["text"].to_pylist())]
    rows = rows.set_column(rows.schema.get_field_index("text"), "text", pa.array(texts))
    rows = rows.set_column(rows.schema.get_field_index("text_sha256"), "text_sha256",
                           pa.array([sha256_text(t) for t in texts]))
    store.write_samples(dataset, rows)
    return rows["sample_id"].to_pylist()[:n]


@pytest.fixture
def toy(store):
    img, txt = toy_pairs(store, "toy", n=N)
    return store, img, txt


def test_snapshot_pins_versions_and_reports_missing_and_stale(toy):
    store, img, txt = toy
    first = Snapshot(store, "toy", image_model=img, text_model=txt)
    stale = rewrite_texts(store)
    later = Snapshot(store, "toy", image_model=img, text_model=txt)
    rows, vecs, sel = later.current(["label"])
    assert (rows.num_rows, sel.stale, sel.missing) == (N - STALE, {"image": 0, "text": STALE}, {"image": 0, "text": 0})
    assert not set(stale) & set(rows["sample_id"].to_pylist()) and vecs["text"].shape == (N - STALE, 5)
    old_rows, _, old_sel = first.current()  # pinned before the change: all current
    assert old_rows.num_rows == N and old_sel.skipped == 0
    assert later.versions[later.samples_table] == first.versions[first.samples_table] + 1


def test_alignment_gap_embeddings_and_export_never_read_stale_vectors(toy, tmp_path):
    store, img, txt = toy
    stale = set(rewrite_texts(store))
    res = align(store, "toy", image_model=img, text_model=txt, match="interp")
    assert res.rows == N - STALE
    assert not stale & set(aligned(store, "toy", res.alignment_key, "text")[0])
    rep = gap_diagnostics(store, "toy", image_model=img, text_model=txt)
    assert (rep.unpaired, rep.stale) == ({"image": 0, "text": STALE}, {"image": 0, "text": STALE})
    assert rep.before.rows == rep.after.rows == N - STALE
    ids, _ = store.embeddings("toy", txt, "text", as_="numpy")
    assert len(ids) == N - STALE and not stale & set(ids)
    out = tmp_path / "t.parquet"
    assert store.export("toy", txt, "text", str(out)) == N - STALE
    assert not stale & set(pl.read_parquet(out)["sample_id"].to_list())


def test_every_text_stale_is_refused_with_the_fix(toy):
    store, img, txt = toy
    rewrite_texts(store, n=N)
    with pytest.raises(InputError, match=rf"no sample with both a current .* {N} vector\(s\) are stale .*"
                                         r"re-run 'embedstore extract toy'"):
        align(store, "toy", image_model=img, text_model=txt, match="interp")


@pytest.mark.slow
def test_aligned_training_and_sweep_skip_stale_aligned_rows(toy):
    from embedstore.trainers.sweep import sweep
    from embedstore.trainers.train import train

    store, img, txt = toy
    before = align(store, "toy", image_model=img, text_model=txt, match="interp", fit_on="all")
    stale = set(rewrite_texts(store))
    res = train(store, "toy", image_model=img, text_model=txt, mode="paper", alignment_key=before.alignment_key,
                image_dim=before.dim, text_dim=before.dim, epochs=2, record=False)
    skipped = res.source.skipped
    assert sum(r.get("stale_text", 0) for r in skipped.values()) == STALE
    assert sum(len(res.source.index(s).sample_ids) for s in ("train", "test")) == N - STALE - 12  # val unused
    swept = sweep(store, "toy", image_model=img, text_model=txt, lambdas="0,1", seeds=1, epochs=1,
                  progress=False, fusion="early")
    for point in swept.points:
        ids = aligned(store, "toy", point.alignment_key, "text")[0]
        assert len(ids) == N - STALE and not stale & set(ids)


def test_take_returns_rows_in_the_order_asked(toy):
    store, img, txt = toy
    snap = Snapshot(store, "toy", image_model=img)
    ids, mat = store.embeddings("toy", img, "image", as_="numpy")
    rows = snap.samples(["sample_id", "image_sha256"])
    sel = snap.select(rows)
    pos = sel.positions["image"]
    order = np.array([5, 0, 3])
    got = snap.take("image", pos[order])
    want = {i: v for i, v in zip(ids, mat)}
    assert np.array_equal(got, np.stack([want[rows["sample_id"][int(i)].as_py()] for i in order]))
