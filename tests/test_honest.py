"""Honest mode refuses alignments that saw test rows; runs record the alignment settings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from embedstore.alignment import align
from embedstore.errors import InputError
from embedstore.pairs import toy_pairs
from embedstore.runs import get_run
from tests.test_snapshot import rewrite_texts

N = 60


@pytest.fixture
def two_splits(store):
    """The constructed toy pairs as dataset ``two`` with a second split column (``split_grouped``)."""
    img, txt = toy_pairs(store, "toy", n=N)
    rows = store.samples("toy")
    other = np.array(["train", "val", "test"])[np.random.default_rng(1).permutation(np.arange(N) % 5).clip(0, 2)]
    rows = rows.append_column("split_grouped", pa.array(other.tolist())).append_column(
        "group_id", rows["sample_id"])
    store.write_samples("two", rows)
    for modality, model in (("image", img), ("text", txt)):
        ids, mat = store.embeddings("toy", model, modality, as_="numpy")
        hashes = dict(zip(rows["sample_id"].to_pylist(), rows[f"{modality}_sha256"].to_pylist()))
        store.write_embeddings("two", store.model(model), modality, ids, mat, [hashes[i] for i in ids])
    return store, img, txt


def _train(store, key, dim, **kw):
    from embedstore.trainers.train import train

    return train(store, "two", image_model="hf:toy-image", text_model="hf:toy-text", alignment_key=key,
                 image_dim=dim, text_dim=dim, epochs=1, **kw)


def _aligned(two_splits, **settings):
    """``(alignment_key, dim)`` of an interpolating gap shift on the two-split toy set."""
    store, img, txt = two_splits
    res = align(store, "two", image_model=img, text_model=txt, match="interp", **settings)
    return res.alignment_key, res.dim


@pytest.mark.parametrize("settings, refusal", [
    ({"fit_on": "all"}, r"honest mode refuses alignment '{key}': it was fitted with fit_on='all' "
                        r".*re-align with fit_on='train' on split_grouped"),
    ({"split_by": "paper"}, r"fitted with fit_on='train' on split_paper, but this run trains on split_grouped"),
], ids=["fitted-on-all-rows", "fitted-on-another-split-column"])
def test_honest_refuses_an_alignment_not_fitted_on_its_train_rows(two_splits, settings, refusal):
    key, dim = _aligned(two_splits, **settings)
    with pytest.raises(InputError, match=refusal.replace("{key}", key)):
        _train(two_splits[0], key, dim, mode="honest", split_by="grouped")


def test_paper_mode_may_use_an_alignment_fitted_on_all_rows(two_splits):
    key, dim = _aligned(two_splits, fit_on="all")
    paper = _train(two_splits[0], key, dim, mode="paper")  # the paper's protocol fits on everything
    assert paper.config["alignments"]["image"]["fit_on"] == "all"


def test_honest_run_records_the_alignment_settings(two_splits):
    store, img, txt = two_splits
    res = align(store, "two", image_model=img, text_model=txt, match="interp", lam=0.5, split_by="grouped")
    run = _train(store, res.alignment_key, res.dim, mode="honest", split_by="grouped")
    rec = get_run(store, run.run_ids[0])
    summary = rec.config["alignments"]["text"]
    assert (summary["alignment_key"], summary["method"], summary["lam"], summary["fit_on"],
            summary["split_column"]) == (res.alignment_key, "gapshift", 0.5, "train", "split_grouped")


def test_honest_refuses_an_alignment_whose_source_rows_changed(two_splits):
    store, img, txt = two_splits
    res = align(store, "two", image_model=img, text_model=txt, match="interp", split_by="grouped")
    rewrite_texts(store, "two", n=5)
    with pytest.raises(InputError, match="fitted on other source rows than the current ones"):
        _train(store, res.alignment_key, res.dim, mode="honest", split_by="grouped")
