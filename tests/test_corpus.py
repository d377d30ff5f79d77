"""The bad-input corpus: every item either fails with one actionable line or is skipped and reported.

The corpus is generated here, under a temporary directory (``tests/corpus/``
is git-ignored and never used). Items, as numbered in the issue:

 1 truncated JPEG, 2 zero-byte file, 3 text file named .jpg, 7 20000x20000
   image: skipped at ingest and listed (path + reason);
 4 CMYK JPEG, 5 16-bit PNG, 6 grayscale: converted to RGB, ingested, embedded;
 8 missing required column, 9 wrong delimiter, 11 non-UTF-8, 13 duplicate ids,
   14 unknown model id, 15 vector width, 16 read-only store, 17 missing parent
   directory, 18 ``../x`` dataset name, 19 label unseen in training: one-line
   error naming the file/row/field and the fix, CLI exit 1;
10 UTF-8 BOM + CRLF: just works;
12 NaN/empty texts: the documented fallback ("No data reported") or skipped and reported.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore import DimensionMismatchError, Store
from tests.helpers import invoke_cli, one_line_error, sample_rows, toy_model

GOOD = [f"g{i}" for i in range(8)]
BROKEN = {"truncated": "corrupt or truncated", "empty": "file is empty", "notimage": "not a readable image",
          "huge": "decompression-bomb guard"}
CONVERTED = ("cmyk", "gray16", "gray")


def write_csv(path: Path, header: str, rows: list[str], *, sep: str = ",", newline: str = "\n",
              bom: bool = False, encoding: str = "utf-8") -> Path:
    text = newline.join([header.replace(",", sep)] + [r.replace(",", sep) for r in rows]) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Images for items 1-7 and a valid manifest naming them, plus good images."""
    from PIL import Image

    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for sid in GOOD:
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / f"{sid}.png")
    ok = root / "ok.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(ok, quality=90)
    (root / "truncated.jpg").write_bytes(ok.read_bytes()[: ok.stat().st_size // 2])  # 1
    (root / "empty.jpg").write_bytes(b"")  # 2
    (root / "notimage.jpg").write_text("sample_id,label\nthis is a CSV, not a JPEG\n")  # 3
    Image.new("CMYK", (40, 30), (0, 200, 200, 10)).save(root / "cmyk.jpg")  # 4
    Image.fromarray(np.linspace(0, 65535, 30 * 40).reshape(30, 40).astype(np.uint16)).save(root / "gray16.png")  # 5
    Image.new("L", (40, 30), 128).save(root / "gray.jpg")  # 6
    Image.new("1", (20000, 20000)).save(root / "huge.png")  # 7: 400 Mpx, a few kB on disk
    names = {**{s: f"{s}.png" for s in GOOD}, **{s: f"{s}.jpg" for s in BROKEN}, "cmyk": "cmyk.jpg",
             "gray16": "gray16.png", "gray": "gray.jpg", "huge": "huge.png"}
    rows = [f"{sid},{img},{'ab'[k % 2]},photo of {sid}" for k, (sid, img) in enumerate(names.items())]
    write_csv(root / "manifest.csv", "id,image,label,text", rows)
    return root


@pytest.fixture(scope="module")
def ingested(corpus, tmp_path_factory):
    """The corpus manifest ingested through the CLI (``--json``): (store uri, report)."""
    uri = tmp_path_factory.mktemp("ingested") / "store"
    r = invoke_cli(uri, "ingest", "manifest", "--root", corpus, "--name", "corpus", "--json")
    assert r.exit_code == 0, r.output
    return uri, json.loads(r.output)


# -- 1, 2, 3, 7: skipped and reported ---------------------------------------------
def test_broken_images_are_skipped_and_reported(ingested, corpus):
    uri, report = ingested
    skipped = {s["sample_id"]: s for s in report["skipped"]}
    assert set(skipped) == set(BROKEN)
    for sid, reason in BROKEN.items():
        assert reason in skipped[sid]["reason"] and sid in skipped[sid]["path"], skipped[sid]
    assert report["rows_total"] == len(GOOD) + len(CONVERTED)
    stored = set(Store(uri).samples("corpus", columns=["sample_id"])["sample_id"].to_pylist())
    assert stored == set(GOOD) | set(CONVERTED)
    text = invoke_cli(uri, "ingest", "manifest", "--root", corpus, "--name", "corpus", "--no-progress").output
    assert "skipped 4 sample(s)" in text and "decompression-bomb guard" in text


# -- 4, 5, 6: converted, ingested and embedded ------------------------------------
def test_cmyk_16bit_and_grayscale_are_converted_ingested_and_embedded(ingested, tmp_path):
    from embedstore.extract import extract
    from embedstore.images import load_image
    from tests.tiny_models import make_tiny_dinov2

    uri, _ = ingested
    store = Store(uri)
    refs = dict(zip(*store.samples("corpus", columns=["sample_id", "image_ref"]).to_pydict().values()))
    for sid in CONVERTED:
        img = load_image(refs[sid])
        assert (img.mode, img.size) == ("RGB", (40, 30))
    arr = np.asarray(load_image(refs["gray16"]))
    assert arr.min() == 0 and arr.max() == 255  # 16-bit range scaled to 8 bits, not clipped
    rep = extract(store, "corpus", make_tiny_dinov2(tmp_path / "dino"), modality="image", progress=False, threads=1)
    res = rep.result("image")
    assert res.computed == len(GOOD) + len(CONVERTED) and not res.skipped
    ids, vecs = store.embeddings("corpus", rep.model_key, "image", as_="numpy")
    assert set(CONVERTED) <= set(ids) and np.isfinite(vecs).all()


# -- 8, 9, 11, 13: manifest CSV problems --------------------------------------------
def test_csv_with_a_missing_required_column(corpus, tmp_path):
    # no label column is a predict-only dataset; a named --label-column must exist
    write_csv(tmp_path / "m.csv", "id,image,text", ["a,g0.png,x"])
    line = one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", tmp_path / "m.csv",
                                 "--image-root", corpus, "--label-column", "diagnosis"), "m.csv",
                          "'diagnosis'", "found ['id', 'image', 'text']", "--label-column")
    assert line


def test_csv_with_the_wrong_delimiter(corpus, tmp_path):
    write_csv(tmp_path / "m.csv", "id,image,label,text", ["a,g0.png,x,y"], sep=";")
    one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", tmp_path / "m.csv", "--image-root", corpus,
                              "--delimiter", ","), "m.csv", "';'-separated", "--delimiter")
    ok = invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", tmp_path / "m.csv", "--image-root", corpus,
                    "--no-progress")  # a ';'-separated manifest (Excel in many locales) is read as such
    assert ok.exit_code == 0 and "read as ';'-separated" in ok.output, ok.output


def test_non_utf8_text_names_the_line_and_the_fix(corpus, tmp_path):
    write_csv(tmp_path / "m.csv", "id,image,label,text", ["a,g0.png,x,ok", "b,g1.png,y,lésion"], encoding="latin-1")
    one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", tmp_path / "m.csv", "--image-root", corpus),
                   "m.csv", "not valid UTF-8", "line 3", "iconv")


def test_duplicate_sample_ids_are_refused_with_examples(corpus, tmp_path):
    write_csv(tmp_path / "m.csv", "id,image,label,text", ["a,g0.png,x,t", "b,g1.png,y,t", "a,g2.png,y,t"])
    one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", tmp_path / "m.csv", "--image-root", corpus),
                   "m.csv", "duplicate", "'a' (data rows 1, 3)", "remove or rename")
    assert not Store(tmp_path / "s").datasets()  # nothing half-written


# -- 10: BOM + CRLF, and 12: NaN / empty texts -------------------------------------
def _ham_root(tmp_path: Path, corpus: Path, rows: list[str]) -> Path:
    root = tmp_path / "ham"
    (root / "images").mkdir(parents=True)
    for i in range(len(rows)):
        shutil.copy(corpus / f"g{i}.png", root / "images" / f"ISIC_{i:07d}.png")
    write_csv(root / "HAM10000_metadata.csv", "lesion_id,image_id,dx,dx_type,age,sex,localization",
              rows, newline="\r\n", bom=True)
    return root


def test_bom_and_crlf_just_work_and_nan_fields_get_the_paper_fallback(corpus, tmp_path):
    rows = ["HAM_0000001,ISIC_0000000,nv,follow_up,45.0,male,back",
            "HAM_0000002,ISIC_0000001,mel,histo,,female,",
            "HAM_0000003,ISIC_0000002,bkl,histo,NaN,,face"]
    root = _ham_root(tmp_path, corpus, rows)
    r = invoke_cli(tmp_path / "s", "ingest", "ham10000", "--root", root, "--prompt", "paper", "--no-progress")
    assert r.exit_code == 0, r.output
    got = Store(tmp_path / "s").samples("ham10000", columns=["sample_id", "text", "label", "lesion_id"]).to_pylist()
    by_id = {g["sample_id"]: g for g in got}
    assert set(by_id) == {"ISIC_0000000", "ISIC_0000001", "ISIC_0000002"}  # no BOM in ids, no '\r' anywhere
    assert by_id["ISIC_0000000"]["lesion_id"] == "HAM_0000001" and by_id["ISIC_0000000"]["label"] == "nv"
    assert by_id["ISIC_0000001"]["text"] == ("Patient diagnosed via histo. Age: No data reported years. "
                                             "Sex: female. Localization: No data reported.")
    assert by_id["ISIC_0000002"]["text"] == ("Patient diagnosed via histo. Age: No data reported years. "
                                             "Sex: No data reported. Localization: face.")
    assert not any("\r" in str(v) for g in got for v in g.values())


def test_nan_and_empty_texts_are_skipped_and_reported_or_filled_by_the_template(corpus, tmp_path):
    from embedstore.ingest import ingest

    m = write_csv(tmp_path / "m.csv", "id,image,label,text,age",
                  ["a,g0.png,x,fine,41", "b,g1.png,y,,NaN", "c,g2.png,x,NaN,", "d,g3.png,y,   ,7"])
    store = Store(tmp_path / "s")
    rep = ingest(store, "manifest", m, name="texts", image_root=str(corpus), progress=False)
    assert rep.rows_total == 1 and {s.sample_id for s in rep.skipped} == {"b", "c", "d"}
    assert all("no text in column 'text'" in s.reason for s in rep.skipped)
    rep = ingest(store, "manifest", m, name="tmpl", image_root=str(corpus), text_template="Age: {age}.",
                 progress=False)
    texts = dict(zip(*store.samples("tmpl", columns=["sample_id", "text"]).to_pydict().values()))
    assert texts == {"a": "Age: 41.", "b": "Age: No data reported.", "c": "Age: No data reported.", "d": "Age: 7."}


# -- 14: unknown model id -----------------------------------------------------
def test_unknown_model_id_fails_fast_in_one_line(ingested):
    uri, _ = ingested
    t0 = time.monotonic()
    r = invoke_cli(uri, "extract", "corpus", "--model", "hf:no-such-org/no-such-model", "--no-progress")
    assert time.monotonic() - t0 < 10
    one_line_error(r, "hf:no-such-org/no-such-model")
    assert "local" in r.output.lower()  # says how to fix it: a local path (or download once)


# -- 15: vector width -----------------------------------------------------------
def test_vector_width_that_does_not_match_the_table(store, tmp_path):
    model = toy_model(4, "image", "hf:w4")
    rows = sample_rows(["a", "b"])
    store.write_samples("d", rows)
    store.write_embeddings("d", model, "image", ["a", "b"], np.ones((2, 4)), rows["image_sha256"].to_pylist())
    with pytest.raises(DimensionMismatchError, match=rf"{model.key}.*width 4, got 5"):
        store.write_embeddings("d", model, "image", ["a"], np.ones((1, 5)), ["h"])
    np.save(tmp_path / "q.npy", np.ones(3, dtype=np.float32))
    r = invoke_cli(store.uri, "neighbors", "d", "--model", "hf:w4", "--modality", "image",
               "--vector-file", tmp_path / "q.npy")
    one_line_error(r, "query vector has width 3, table expects 4", "pass a 4-d vector")
    assert store.read(f"emb__image__{model.key}__4").num_rows == 2


# -- 16, 17, 18: store paths and dataset names ----------------------------------------
def _read_only_checks(uri: str, scratch: str, out) -> None:
    """In a worker: run CLI commands on the read-only store ``uri`` as an unprivileged user.

    Root ignores permission bits, so a root worker first runs the same
    commands on a writable ``scratch`` store (importing every module they
    need while the interpreter's files are still readable), then drops to
    user ``nobody``.
    """
    def run(store, *args):
        r = CliRunner().invoke(cli, ["--store", str(store), *args], obj={})
        return r.exit_code, r.output + (repr(r.exception) if r.exit_code and not r.output else "")

    run(scratch, "info"), run(scratch, "tag", "samples__d", "warm"), run(f"{scratch}-x/new", "info")
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    out.put([run(uri, "tag", "samples__d", "v1"), run(uri, "info"), run(f"{os.path.dirname(uri)}/new", "info")])


def test_read_only_store_refuses_writes_in_one_line_but_still_reads(tmp_path):
    import multiprocessing as mp

    base = Path(tempfile.mkdtemp(prefix="embedstore-ro-"))  # under /tmp: reachable by 'nobody'
    try:
        os.chmod(base, 0o755)
        uri, scratch = base / "store", tmp_path / "scratch"
        rows = sample_rows(["a"])
        Store(uri).write_samples("d", rows)
        Store(scratch).write_samples("d", rows)
        for path in [base, *base.rglob("*")]:
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
        ctx = mp.get_context("spawn")  # a fresh interpreter (lance is not fork-safe)
        out = ctx.Queue()
        proc = ctx.Process(target=_read_only_checks, args=(str(uri), str(scratch), out))
        proc.start()
        (code, text), (info_code, info), (new_code, new) = out.get(timeout=180)
        proc.join(30)
        assert code == 1 and len(text.strip().splitlines()) == 1, text
        assert f"store path {uri} is read-only" in text and "writable --store" in text
        assert info_code == 0 and "samples__d" in info  # reading a read-only store works
        assert new_code == 1 and "permission denied" in new and len(new.strip().splitlines()) == 1, new
        assert Store(uri).tags("samples__d") == {}
    finally:
        for path in [base, *base.rglob("*")]:
            os.chmod(path, 0o755)
        shutil.rmtree(base)


def test_store_on_a_missing_parent_directory(tmp_path):
    one_line_error(invoke_cli(tmp_path / "no" / "such" / "store", "info"),
                   f"parent directory {tmp_path / 'no' / 'such'} does not exist", "create it first")


def test_dataset_name_with_path_characters(corpus, tmp_path):
    one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", corpus, "--name", "../x"),
                   "invalid dataset name '../x'", "no '/' or '..'")
    assert not list(tmp_path.glob("x*")) and not (tmp_path / "s").exists() or not Store(tmp_path / "s").datasets()


# -- 19: labels unseen in training --------------------------------------------
def test_label_unseen_in_training(store):
    from embedstore.trainers.train import train

    ids = [f"s{i:02d}" for i in range(40)]
    labels = [str(i % 2) for i in range(38)] + ["novel", "novel"]
    rows = sample_rows(ids, labels=labels, splits=["train"] * 24 + ["val"] * 8 + ["test"] * 8)
    store.write_samples("toy", rows)
    image, text = toy_model(4, "image", "hf:img"), toy_model(4, "text", "hf:txt")
    rng = np.random.default_rng(0)
    for model, col in ((image, "image_sha256"), (text, "text_sha256")):
        store.write_embeddings("toy", model, model.modalities[0], ids, rng.normal(size=(40, 4)), rows[col].to_pylist())
    # honest mode (the default): refused before training, naming dataset, split, label and fix
    r = invoke_cli(store.uri, "train", "toy", "--image-model", image.key, "--text-model", text.key, "--epochs", "2",
               "--split", "paper", "--no-progress")
    one_line_error(r, "dataset 'toy' split 'test'", "['novel']", "absent from the training classes ['0', '1']",
                   "fix the split")
    # paper mode reproduces the paper's code: the label vocabulary covers train+test, so the class exists
    # with no training rows; its 2 test rows are scored like any other class
    res = train(store, "toy", image_model=image.key, text_model=text.key, epochs=2, mode="paper").runs[0]
    assert res.metrics["classes"] == ["0", "1", "novel"] and sum(res.metrics["confusion"][2]) == 2
