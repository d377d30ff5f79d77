"""Bad-input corpus, boundary section: output paths, disks, filters, names, vector files.

Every error item runs the exact CLI command and checks exit code 1, a single
``Error: ...`` line with the expected message, no traceback, and that
nothing was lost or touched: every file under the test's folder (store,
inputs) is byte-for-byte where it was, and no file appeared anywhere.

Items (command -> message):

B1  neighbors ds ... --where "nope = 1"            -> bad --where filter 'nope = 1': Schema error: No field named nope; ...
B2  neighbors ds ... --where "sample_id = 'a"      -> bad --where filter ...: ... Unterminated string literal ...
B2b neighbors ds ... --where "sample_id = 'a'; x"  -> bad --where filter ...: ... sql parser error ... (not a silently shorter filter)
B3  neighbors ds ... --vector-file bad.txt         -> vector file .../bad.txt: token 2 is 'two', not a number: ...
B4  neighbors ds ... --vector-file bad.npy         -> vector file .../bad.npy: not a readable .npy array ...
B5  neighbors ds ... --vector-file empty.txt       -> vector file .../empty.txt: holds no numbers; ...
B6  neighbors ds ... --vector-file short.txt       -> query vector has width 3, table expects 16: ...
B7  tag ../../x t                                  -> invalid table name '../../x': use a table listed by 'embedstore info' ...
B8  versions ../x                                  -> invalid table name '../x': ...
B9  tag emb__image__x__16/../../../y t             -> invalid table name ...
B10 neighbors "ds'" ...                            -> invalid dataset name "ds'": ...
B11 export ds ... --out afile/f.parquet            -> export target .../afile/f.parquet: cannot create the folder ... (File exists); ...
B12 export ds ... --out <read-only disk>/f.parquet -> export target ...: the folder ... is not writable; ...
B13 extract ds ... on a full disk (mid-extract)    -> store ...: disk full: nothing committed was lost ...; re-run ... to resume
B14 neighbors ... on a table with a corrupt data file -> <Lance error type>: <first line> (re-run with --debug ...)

Beside them: ``--where "1=1) OR (1=1"`` returns no foreign ids, ``export``
creates missing output folders, ``#`` in image file names works, and
``--debug`` shows the traceback that the one line hides.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore import Store


def invoke(store_uri, *args):
    return CliRunner().invoke(cli, ["--store", str(store_uri), *map(str, args)], obj={})


def one_line_error(result, *needles):
    """Exit code 1 and a single ``Error: ...`` line (no traceback) that contains every needle."""
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> (size, mtime_ns).

    A store's ``_leases/`` folder is left out: a lease is a reader's
    transient, expiring marker (docs/lab-sharing.md), not store content, and
    an in-process command keeps its process's lease until the process ends.
    """
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and "_leases" not in p.relative_to(root).parts:
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def ingest_cmd(manifest, name="ds"):
    return ["ingest", "manifest", "--root", manifest, "--name", name, "--id-column", "sample_id", "--no-progress"]


@pytest.fixture(scope="module")
def lab_store(lab, tmp_path_factory):
    """A store (nested two folders deep) with the lab dataset ``ds`` ingested and its images embedded."""
    manifest, model = lab
    root = tmp_path_factory.mktemp("boundary")
    store = root / "a" / "b" / "store"
    store.parent.mkdir(parents=True)
    assert invoke(store, *ingest_cmd(manifest)).exit_code == 0
    res = invoke(store, "extract", "ds", "--model", f"local:{model}", "--modality", "image", "--no-progress")
    assert res.exit_code == 0, res.output
    inputs = root / "inputs"
    inputs.mkdir()
    (inputs / "q.txt").write_text(" ".join(["0.1"] * 16))
    (inputs / "bad.txt").write_text("1 two 3")
    (inputs / "bad.npy").write_text("not a numpy file")
    (inputs / "empty.txt").write_text("")
    (inputs / "short.txt").write_text("1, 2, 3")
    (inputs / "afile").write_text("a file, not a folder")
    return root, store, f"local:{model}"


def _nn(model, *extra):
    return ["neighbors", "ds", "--model", model, "--modality", "image", *extra]


CASES = {  # id -> (args after the store, given root/inputs/model; expected message parts)
    "B1-where-unknown-column": (lambda i, m: _nn(m, "--vector-file", i / "q.txt", "--where", "nope = 1"),
                                ["bad --where filter 'nope = 1'", "No field named nope", "sample_id"]),
    "B2-where-unterminated": (lambda i, m: _nn(m, "--vector-file", i / "q.txt", "--where", "sample_id = 'a"),
                              ["bad --where filter", "Unterminated string literal"]),
    "B2b-where-trailing-text": (lambda i, m: _nn(m, "--vector-file", i / "q.txt", "--where", "sample_id = 'a'; x"),
                                ["bad --where filter", "sql parser error"]),
    "B3-vector-not-a-number": (lambda i, m: _nn(m, "--vector-file", i / "bad.txt"),
                               ["bad.txt: token 2 is 'two', not a number"]),
    "B4-vector-bad-npy": (lambda i, m: _nn(m, "--vector-file", i / "bad.npy"),
                          ["bad.npy: not a readable .npy array", "numpy.save"]),
    "B5-vector-empty": (lambda i, m: _nn(m, "--vector-file", i / "empty.txt"),
                        ["empty.txt: holds no numbers"]),
    "B6-vector-width": (lambda i, m: _nn(m, "--vector-file", i / "short.txt"),
                        ["query vector has width 3, table expects 16"]),
    "B7-tag-dotdot-table": (lambda i, m: ["tag", "../../x", "t"], ["invalid table name '../../x'", "embedstore info"]),
    "B8-versions-dotdot-table": (lambda i, m: ["versions", "../x"], ["invalid table name '../x'"]),
    "B9-tag-emb-table-with-path": (lambda i, m: ["tag", "emb__image__x__16/../../../y", "t"], ["invalid table name"]),
    "B10-dataset-name-with-quote": (lambda i, m: ["neighbors", "ds'", "--model", m, "--modality", "image",
                                                  "--vector-file", i / "q.txt"], ["invalid dataset name \"ds'\""]),
    "B11-export-folder-is-a-file": (lambda i, m: ["export", "ds", "--model", m, "--modality", "image",
                                                  "--out", i / "afile" / "f.parquet"],
                                    ["afile/f.parquet: cannot create the folder", "File exists"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_touches_nothing(lab_store, case):
    root, store, model = lab_store
    args, needles = CASES[case]
    before = tree(root)
    one_line_error(invoke(store, *args(root / "inputs", model)), *needles)
    assert tree(root) == before  # nothing lost, nothing created (no lock file, no folder), inside or outside


def test_where_injection_returns_no_foreign_ids(lab_store, lab, tmp_path):
    root, store, model = lab_store
    manifest = Path(lab[0])
    other = tmp_path / "other.csv"  # the same images under other ids: a second dataset in the same table
    lines = manifest.read_text().splitlines()
    other.write_text("\n".join([lines[0]] + [f"other-{ln}" for ln in lines[1:]]) + "\n")
    shutil.copytree(manifest.parent / "images", tmp_path / "images")
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    assert invoke(copy, *ingest_cmd(other, "ds2")).exit_code == 0
    res = invoke(copy, "extract", "ds2", "--model", model, "--modality", "image", "--no-progress")
    assert res.exit_code == 0 and "forwards" in res.output
    assert Store(copy).embeddings("ds2", model, "image").num_rows == 24
    for where, n in (("1=1) OR (1=1", 24), ("sample_id = 'x') OR (dataset = 'ds2'", 0)):
        res = invoke(copy, *_nn(model, "--vector-file", root / "inputs" / "q.txt", "-k", "48", "--where", where,
                                "--json"))
        assert res.exit_code == 0, res.output
        ids = [r["sample_id"] for r in json.loads(res.output)]
        assert len(ids) == n and not any(s.startswith("other-") for s in ids), ids


def test_export_creates_missing_output_folders(lab_store):
    root, store, model = lab_store
    out = root / "exports" / "new" / "dir" / "image.parquet"
    res = invoke(store, "export", "ds", "--model", model, "--modality", "image", "--out", out)
    assert res.exit_code == 0, res.output
    import polars as pl

    assert pl.read_parquet(out).height == 24


def test_debug_shows_the_traceback_that_the_one_line_hides(lab_store, tmp_path):
    """B14: an unexpected Lance error is one line; --debug / EMBEDSTORE_DEBUG=1 re-raise it with its traceback."""
    root, store, model = lab_store
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    table = next(p for p in copy.iterdir() if p.name.startswith("emb__image__"))
    for data in (table / "data").iterdir():
        data.write_bytes(b"\0" * 64)  # corrupt every data file of the embeddings table
    args = _nn(model, "--vector-file", root / "inputs" / "q.txt")
    line = one_line_error(invoke(copy, *args), "re-run with --debug or EMBEDSTORE_DEBUG=1")
    assert "Error: " in line
    debug = CliRunner().invoke(cli, ["--store", str(copy), "--debug", *map(str, args)], obj={})
    assert debug.exit_code == 1 and debug.exception is not None and not isinstance(debug.exception, SystemExit)
    env = CliRunner(env={"EMBEDSTORE_DEBUG": "1"}).invoke(cli, ["--store", str(copy), *map(str, args)], obj={})
    assert env.exception is not None and not isinstance(env.exception, SystemExit)


def test_hash_in_image_file_names(lab, tmp_path):
    """``#`` inside a file name is part of the name; a derived-image fragment still works beside it."""
    from PIL import Image

    rng = np.random.default_rng(1)
    names = ["scan#1.png", "odd#crop=2.png", "plain.png"]
    for n in names:
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / n)
    manifest = tmp_path / "m.csv"
    manifest.write_text("sample_id,image,label,text\n" + "".join(
        f"s{k},{n},{'ab'[k % 2]},photo {k}\n" for k, n in enumerate(names)))
    store = tmp_path / "store"
    res = invoke(store, *ingest_cmd(manifest, "hash"))
    assert res.exit_code == 0 and "0 skipped" in res.output, res.output
    res = invoke(store, "extract", "hash", "--model", f"local:{lab[1]}", "--modality", "image", "--no-progress")
    assert res.exit_code == 0, res.output
    s = Store(store)
    assert s.embeddings("hash", f"local:{lab[1]}", "image").num_rows == 3
    from embedstore.images import load_image, split_ref

    refs = s.samples("hash", columns=["image_ref"])["image_ref"].to_pylist()
    assert sorted(Path(split_ref(r)[0]).name for r in refs) == sorted(names)
    assert all(load_image(r).size == (24, 20) for r in refs)


# -- disks: a small tmpfs -------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A real 8 MiB tmpfs (needs root and mount rights; skipped otherwise), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}): needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, _free(disk) - leave))
    return filler


@pytest.mark.slow
def test_full_disk_mid_extract_is_one_line_then_a_clean_resume(lab, small_disk):
    """B13: a full disk mid-extract ends in one line at the last commit; a re-run after freeing space completes."""
    manifest, model = lab
    store = small_disk / "store"
    extract = ["extract", "ds", "--model", f"local:{model}", "--chunk-rows", "4", "--batch-size", "4",
               "--no-progress"]
    assert invoke(store, *ingest_cmd(manifest)).exit_code == 0
    assert invoke(store, *extract, "--limit", "4").exit_code == 0  # creates both tables
    before = _free(small_disk)
    assert invoke(store, *extract, "--limit", "4").exit_code == 0  # one appended chunk per modality
    per_chunk = before - _free(small_disk)
    filler = _fill(small_disk, leave=per_chunk)  # room for about one more chunk per modality, not four
    s = Store(store)
    tables = s.embedding_tables()
    committed = {t: (s.version(t), s.read(t).num_rows) for t in tables}
    line = one_line_error(invoke(store, *extract), "disk full", "nothing committed was lost", "re-run")
    assert str(store) in line
    for t in tables:  # readable, at a committed version, one row per key
        keys = s.read(t, columns=["row_key"])["row_key"].to_pylist()
        assert len(keys) == len(set(keys)) and len(keys) % 4 == 0 and s.version(t) >= committed[t][0]
    assert sum(s.read(t).num_rows for t in tables) > sum(r for _, r in committed.values()), \
        "the disk should fill mid-extract, after at least one more committed chunk"
    filler.unlink()
    res = invoke(store, *extract)
    assert res.exit_code == 0, res.output
    for t in tables:
        keys = s.read(t, columns=["row_key"])["row_key"].to_pylist()
        assert len(keys) == len(set(keys)) == 24


def test_export_to_a_read_only_disk(lab_store, tmp_path):
    """B12: a read-only file system is named in one line; nothing is written."""
    root, store, model = lab_store
    ro = tmp_path / "ro"
    ro.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}): needs root")
    try:
        before = tree(root)
        one_line_error(invoke(store, "export", "ds", "--model", model, "--modality", "image", "--out", ro / "f.parquet"),
                       "export target", "is not writable")
        assert tree(root) == before and not list(ro.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
