"""Training refuses what cannot be honest, and the fix its message names works (real store, real images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore import Store
from embedstore.cli.main import cli
from embedstore.errors import InputError
from tests.test_corpus_boundary import one_line_error, tree
from tests.test_corpus_lab import _manifest, lab  # noqa: F401  (the module's store fixture)


def _cli(root, *args):
    return CliRunner().invoke(cli, ["--store", str(root / "store"), *map(str, args)], obj={})


def test_classes_too_small_for_the_split_name_a_fix_that_works(lab):  # noqa: F811
    root, vit, _ = lab
    refused = one_line_error(_cli(root, "train", "tiny", "--image-model", vit, "--fusion", "image", "--epochs", "2",
                                  "--no-progress", "--split", "grouped"),  # one split (small data's default: CV)
                             "class(es) 'a', 'b', 'c' have no val/test rows", "'a': ",
                             "use cross-validation with --cv 4 and --val-fraction 0.34")
    assert "split_by='grouped'" not in refused and "--split grouped" not in refused  # not the split in use
    r = _cli(root, "train", "tiny", "--image-model", vit, "--fusion", "image", "--epochs", "2", "--no-progress",
             "--cv", "4", "--val-fraction", "0.34", "--json")  # the fix, as printed
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert len(out[0]["runs"]) == 4 and 0.0 <= out[0]["mean"]["macro_f1"] <= 1.0
    # the CV path refuses folds that cannot hold every class (not sklearn's ValueError), with the same fix
    one_line_error(_cli(root, "train", "tiny", "--image-model", vit, "--fusion", "image", "--no-progress",
                        "--cv", "4"),
                   "--cv 4 folds with --val-fraction 0.2 cannot test every class",
                   "use cross-validation with --cv 4 and --val-fraction 0.34")


def test_one_class_is_refused_before_anything_is_recorded(lab):  # noqa: F811
    from embedstore.trainers.train import train, train_arrays

    root, vit, _ = lab
    store = Store(root / "store")
    before = tree(root)
    with pytest.raises(InputError, match=r"has one class in its training rows \('a', \d+ rows\)"):
        train(store, "one", image_model=vit, fusion="image", epochs=2)
    with pytest.raises(InputError, match=r"has one class in its training rows \('a', 10 rows\)"):
        train(store, "one", image_model=vit, fusion="image", epochs=2, cv=2)
    assert tree(root) == before  # no run recorded, no head kept
    x = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(InputError, match="the arrays has one class"):
        train_arrays(x, None, ["a"] * 30, ["train"] * 20 + ["val"] * 5 + ["test"] * 5, fusion="image")


def test_a_class_with_a_single_group_cannot_be_fixed_by_folds_and_says_so(tmp_path):
    from embedstore.trainers.train import train_arrays

    rng = np.random.default_rng(1)
    y = ["a"] * 20 + ["b"] * 20 + ["rare"]
    split = (["train"] * 14 + ["val"] * 2 + ["test"] * 4) * 2 + ["train"]
    with pytest.raises(InputError, match=r"class\(es\) 'rare' have no val/test rows \('rare': 1 train, 0 val, 0 test\)"
                                         r".*no K-fold split holds out validation and test rows of every class: merge "
                                         r"the small classes \('rare' 1"):
        train_arrays(rng.normal(size=(41, 4)), None, y, split, fusion="image", epochs=2)


def test_invalid_numbers_are_refused_by_the_api_before_any_write(lab):  # noqa: F811
    from embedstore.alignment import align
    from embedstore.trainers.train import train

    root, vit, bert = lab
    store = Store(root / "store")
    before = tree(root)
    for kw, needle in (({"lr": float("inf")}, "lr=inf"), ({"patience": -3}, "patience=-3"),
                       ({"output_size": 0}, "output_size=0"), ({"weight_decay": float("nan")}, "weight_decay=nan"),
                       ({"versions": {"samples__ds": -2}}, "versions['samples__ds']=-2")):
        with pytest.raises(InputError, match=re_escape(needle)):
            train(store, "ds", image_model=vit, fusion="image", epochs=2, **kw)
    with pytest.raises(InputError, match="lam=nan: must be a finite number"):
        align(store, "ds", image_model=vit, text_model=bert, lam=float("nan"), match="interp")
    assert tree(root) == before


def re_escape(text: str) -> str:
    import re

    return re.escape(text)
