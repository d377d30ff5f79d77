"""Grouped train options (trainers/options.py): groups or flat keywords, never both; same runs either way."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.errors import InputError
from embedstore.runs import list_runs
from embedstore.trainers.models import BLOCK_ORDER
from embedstore.trainers.options import CVOptions, HeadOptions, LoaderOptions, grouped
from embedstore.trainers.synthetic_vectors import write_synthetic
from embedstore.trainers.train import train, train_arrays


def _arrays(n: int = 120):
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], n // 3)
    x = rng.standard_normal((n, 4)) + (y == "b")[:, None] * 3 + (y == "c")[:, None] * -3
    return x, y, ["train", "train", "val", "test"] * (n // 4)


def test_head_options_make_the_head_spec():
    spec = HeadOptions(hidden=[8, 4]).spec("early", n_classes=2)
    assert (spec.output_size, spec.hidden, spec.hidden_image, spec.block_order) == (1, (8, 4), None, BLOCK_ORDER)
    assert HeadOptions(output_size=5).spec("late", n_classes=3).output_size == 5


def test_a_group_and_its_flat_keywords_together_are_refused():
    given = HeadOptions(hidden=(8,))
    assert grouped(HeadOptions, given, hidden=None, output_size=None, align_loss_weight=0.0) is given
    with pytest.raises(InputError, match="give hidden inside HeadOptions or as keywords, not both"):
        grouped(HeadOptions, given, hidden=[16])
    x, y, split = _arrays()
    with pytest.raises(InputError, match="not both"):
        train_arrays(x, None, y, split, fusion="image", epochs=1, head=given, output_size=3)


def test_grouped_and_flat_options_train_the_same_run():
    x, y, split = _arrays()
    flat = train_arrays(x, None, y, split, fusion="image", epochs=3, hidden=[8], seed=3)
    group = train_arrays(x, None, y, split, fusion="image", epochs=3, head=HeadOptions(hidden=(8,)), seed=3)
    assert flat.runs[0].metrics == group.runs[0].metrics and flat.config["head"] == group.config["head"]
    cv_flat = train_arrays(x, None, y, None, fusion="image", epochs=2, cv=3, cv_seed=1, val_fraction=0.25)
    cv_group = train_arrays(x, None, y, None, fusion="image", epochs=2, cv=CVOptions(3, cv_seed=1, val_fraction=0.25))
    assert [r.metrics for r in cv_flat.runs] == [r.metrics for r in cv_group.runs]
    with pytest.raises(InputError, match="honest-mode cross-validation"):
        train_arrays(x, None, y, None, fusion="image", mode="paper", cv=CVOptions(3))


def test_loader_options_from_the_store_and_from_a_record(store):
    info = write_synthetic(store, "toy", n=200, image_dim=6, text_dim=5, signal=1.0, seed=1)
    kw = dict(image_model=info["image_model"], text_model=info["text_model"], fusion="early", epochs=2)
    flat = train(store, "toy", loader="stream", chunk_rows=16, **kw)
    group = train(store, "toy", loading=LoaderOptions(loader="stream", chunk_rows=16), **kw)
    assert flat.runs[0].metrics == group.runs[0].metrics and group.config["chunk_rows"] == 16
    rec = list_runs(store, "toy")[-1]
    back = LoaderOptions.from_config(rec.config, rec.table_versions)
    assert (back.loader, back.chunk_rows, back.versions) == ("stream", 16, rec.table_versions)
    with pytest.raises(InputError, match="not both"):
        train(store, "toy", loading=LoaderOptions(), loader="memory", **kw)
