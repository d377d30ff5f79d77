"""Bad-input corpus, lab section: inputs from the wild, trainings that cannot be honest, numbers that are not.

Every item runs the exact CLI command against one real store (real image
files, tiny real encoders) and checks exit code 1, a single ``Error: ...``
line with the expected text, no traceback, and that nothing was written:
every file under the test's folder (store, data, models) is byte-for-byte
where it was, and no file appeared.

Items (command -> message):

L1  ingest a manifest with a row of 4 fields under 3 columns  -> data row 2 (line 3) has 4 fields, the header has 3
L2  ingest a manifest with a quote never closed               -> data row 1 (line 2) is not valid CSV ...
L3  ingest a manifest with a column named twice               -> column 'age' appears twice in the header ...
L4  ingest a manifest with ';' and tabs, no ','               -> the header has no ',' but several of ...
L5  ingest --column-type age=int, a word in row 3             -> data row 3 (id c) column 'age': 'old' is not an int ...
L6  ingest --column-type nosuch=int                           -> column_types names 'nosuch', which is not a column ...
L7  ingest --column-type age=decimal                          -> column type age=decimal: use one of str, int, float, bool
L8  ingest with EMBEDSTORE_MAX_IMAGE_PIXELS=lots              -> EMBEDSTORE_MAX_IMAGE_PIXELS='lots': use a positive ...
L9  train a dataset of one class                              -> has one class in its training rows ('a', ...)
L10 train classes of 4 rows on the 70/10/20 split             -> class(es) 'a', 'b', 'c' have no val/test rows ... --cv 4
L11 train --lr 0                                              -> --lr 0: must be a finite number > 0
L12 train --lr nan                                            -> --lr nan: must be a finite number > 0
L13 train --patience -1                                       -> --patience -1: must be a whole number >= 0
L14 train --output-size 0                                     -> --output-size 0: must be a whole number >= 1
L15 train --dropout 1.5                                       -> --dropout 1.5: must be a finite number >= 0 and < 1
L16 train --cv 1                                              -> --cv 1: must be a whole number >= 2
L17 align --lam nan                                           -> --lam nan: must be a finite number
L18 gap --lam inf                                             -> --lam inf: must be a finite number
L19 sweep --lambdas nan,0                                     -> --lambdas nan: must be a finite number
L20 sweep --lambdas=-inf:1:0.5                                -> --lambdas -inf: must be a finite number
L21 sweep --lr -1                                             -> --lr -1: must be a finite number > 0
L22 tag samples__ds t --version -1                            -> --version -1: must be a whole number >= 1
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from tests.test_corpus_boundary import one_line_error, tree


def _manifest(folder: Path, name: str, labels: list[str]) -> Path:
    rows = [f"{name}{i},img/{i % 40}.png,{lab},photo {i} of a {lab} lesion" for i, lab in enumerate(labels)]
    path = folder / f"{name}.csv"
    path.write_text("id,image,label,text\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory, vit_dir, bert_dir):
    """A store with ``ds`` (2 classes x 20, image+text embedded), ``one`` (one class), ``tiny`` (3 classes x 4)."""
    import numpy as np
    from PIL import Image

    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.ingest import ingest

    root = tmp_path_factory.mktemp("corpus-lab")
    (root / "data" / "img").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / "data" / "img" / f"{i}.png")
    store = Store(root / "store")
    for name, labels in (("ds", ["a", "b"] * 20), ("one", ["a"] * 10), ("tiny", ["a", "b", "c"] * 4)):
        ingest(store, "manifest", _manifest(root / "data", name, labels), name=name, progress=False)
        extract(store, name, vit_dir, modality="image", progress=False, threads=1)
    extract(store, "ds", bert_dir, modality="text", progress=False, threads=1)
    (root / "data" / "bad").mkdir()
    return root, str(vit_dir), str(bert_dir)


BAD_CSV = {
    "L1": ("id,image,label\na,img/0.png,x\nb,img/1.png,y,extra\n", ["data row 2 (line 3) has 4 fields, the header has 3"]),
    "L2": ('id,image,label,text\na,img/0.png,x,"never closed\nb,img/1.png,y,fine\n',
           ["data row 1 (line 2) is not valid CSV"]),
    "L3": ("id,image,label,age,age\na,img/0.png,x,1,2\n", ["column 'age' appears twice in the header (columns 4 and 5)",
                                                           "rename one"]),
    "L4": ("id;image\tlabel\na;img/0.png\tx\n", ["the header has no ',' but several of", "--delimiter"]),
}
AGES = "id,image,label,age\na,img/0.png,x,41\nb,img/1.png,y,52\nc,img/2.png,x,old\n"


def _ingest(root: Path, csv: str, *extra: str, env: dict[str, str] | None = None):
    path = root / "data" / "bad" / "m.csv"
    path.write_text(csv)
    (root / "data" / "bad" / "img").mkdir(exist_ok=True)
    for p in (root / "data" / "img").glob("[0-2].png"):
        target = root / "data" / "bad" / "img" / p.name
        if not target.exists():
            target.symlink_to(p)
    before = tree(root)
    r = CliRunner().invoke(cli, ["--store", str(root / "store"), "ingest", "manifest", "--root", str(path),
                                 "--name", "new", "--no-progress", *extra], obj={}, env=env)
    return r, before


@pytest.mark.parametrize("item", sorted(BAD_CSV))
def test_manifest_dialects_that_cannot_be_read(lab, item):
    root, _, _ = lab
    csv, needles = BAD_CSV[item]
    r, before = _ingest(root, csv)
    one_line_error(r, "m.csv", *needles)
    assert tree(root) == before


@pytest.mark.parametrize("item, extra, needles", [
    ("L5", ["--column-type", "age=int"], ["data row 3 (id c) column 'age': 'old' is not an int",
                                          "declare the column str"]),
    ("L6", ["--column-type", "nosuch=int"], ["column_types names 'nosuch', which is not a column",
                                             "['age']"]),
    ("L7", ["--column-type", "age=decimal"], ["column type age=decimal: use one of str, int, float, bool"]),
])
def test_declared_column_types_that_do_not_fit(lab, item, extra, needles):
    root, _, _ = lab
    r, before = _ingest(root, AGES, *extra)
    one_line_error(r, *needles)
    assert tree(root) == before


def test_a_bad_decoded_size_setting(lab):
    root, _, _ = lab
    r, before = _ingest(root, AGES, env={"EMBEDSTORE_MAX_IMAGE_PIXELS": "lots"})
    one_line_error(r, "EMBEDSTORE_MAX_IMAGE_PIXELS='lots': use a positive whole number of pixels")
    assert tree(root) == before


def _run(root: Path, *args: str):
    before = tree(root)
    r = CliRunner().invoke(cli, ["--store", str(root / "store"), *args], obj={})
    return r, before


@pytest.mark.parametrize("item, dataset, extra, needles", [
    ("L9", "one", [], ["dataset 'one' split column split_grouped has one class in its training rows ('a', ",
                       "a classifier needs at least two"]),
    ("L10", "tiny", ["--split", "grouped"], ["class(es) 'a', 'b', 'c' have no val/test rows", "'a': ",
                                             "--cv 4 and --val-fraction 0.34"]),
    ("L10b", "tiny", [], ["--cv 5 folds with --val-fraction 0.2 cannot test every class",
                          "--cv 4 and --val-fraction 0.34"]),  # the default on a small dataset: 5-fold CV
    ("L11", "ds", ["--lr", "0"], ["--lr 0: must be a finite number > 0"]),
    ("L12", "ds", ["--lr", "nan"], ["--lr nan: must be a finite number > 0"]),
    ("L13", "ds", ["--patience", "-1"], ["--patience -1: must be a whole number >= 0"]),
    ("L14", "ds", ["--output-size", "0"], ["--output-size 0: must be a whole number >= 1"]),
    ("L15", "ds", ["--dropout", "1.5"], ["--dropout 1.5: must be a finite number >= 0 and < 1"]),
    ("L16", "ds", ["--cv", "1"], ["--cv 1: must be a whole number >= 2"]),
])
def test_trainings_that_cannot_be_honest_or_have_invalid_numbers(lab, item, dataset, extra, needles):
    root, vit, _ = lab
    r, before = _run(root, "train", dataset, "--image-model", vit, "--fusion", "image", "--epochs", "2",
                     "--no-progress", *extra)
    one_line_error(r, *needles)
    assert tree(root) == before  # no run recorded, no head kept, no table version


@pytest.mark.parametrize("item, args, needles", [
    ("L17", ["align", "ds", "--lam", "nan"], ["--lam nan: must be a finite number"]),
    ("L18", ["gap", "ds", "--lam", "inf"], ["--lam inf: must be a finite number"]),
    ("L19", ["sweep", "ds", "--lambdas", "nan,0", "--no-progress"], ["--lambdas nan: must be a finite number"]),
    ("L20", ["sweep", "ds", "--lambdas=-inf:1:0.5", "--no-progress"], ["--lambdas -inf: must be a finite number"]),
    ("L21", ["sweep", "ds", "--lambdas", "0,1", "--lr", "-1", "--no-progress"], ["--lr -1: must be a finite number > 0"]),
])
def test_lambdas_that_are_not_numbers_register_nothing(lab, item, args, needles):
    root, vit, bert = lab
    r, before = _run(root, *args[:2], "--image-model", vit, "--text-model", bert, *args[2:])
    one_line_error(r, *needles)
    assert tree(root) == before  # no alignment registered, no vectors, no sweep record


def test_a_negative_version_is_refused(lab):
    root, _, _ = lab
    r, before = _run(root, "tag", "samples__ds", "t", "--version", "-1")
    one_line_error(r, "--version -1: must be a whole number >= 1", "embedstore versions samples__ds")
    assert tree(root) == before
