"""extract(): computed once, reused by content, chunked commits, skipped failures, CLI, kill/Ctrl-C resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from embedstore.errors import InputError, NotFoundError
from embedstore.extract import extract
from embedstore.extractors import load_extractor
from embedstore.images import load_image
from embedstore.keys import sha256_file, sha256_text
from tests.conftest import REPO


def write_dataset(store, name: str, folder: Path, indices, *, texts=None) -> pa.Table:
    """Samples with real PNG files; the same index always gives the same bytes and text."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for i in indices:
        p = folder / f"img{i}.png"
        rng = np.random.RandomState(i)
        Image.fromarray((rng.rand(30 + i % 7, 40, 3) * 255).astype("uint8")).save(p)
        refs.append(str(p))
    texts = texts or [f"sample {i}: a lesion on the back" for i in indices]
    n = len(refs)
    rows = pa.table({
        "sample_id": [f"s{i}" for i in indices], "text": texts, "text_sha256": [sha256_text(t) for t in texts],
        "prompt_name": ["p"] * n, "prompt_template": ["{x}"] * n, "image_ref": refs,
        "image_sha256": [sha256_file(r) for r in refs], "label": [str(i % 3) for i in indices],
        "split_paper": ["train"] * n})
    store.write_samples(name, rows)
    return rows


def _table_rows(store, table):
    return store.read(table, columns=["row_key", "sample_id", "content_sha256", "run_tag"])


def test_extract_once_then_second_run_loads_nothing(store, tmp_path, clip_dir):
    rows = write_dataset(store, "toy", tmp_path / "img", range(24))
    rep = extract(store, "toy", clip_dir, batch_size=5, chunk_rows=8, progress=False, threads=1)
    assert [r.modality for r in rep.results] == ["image", "text"]
    for r in rep.results:
        assert (r.computed, r.reused, r.forward_calls) == (24, 0, 5)
        assert r.version == 3  # 24 rows committed in chunks of >= 8 rows: 3 versions
        assert r.rows_per_s > 0 and not r.skipped
        assert store.tags(r.table)[rep.tag] == r.version
        stored = _table_rows(store, r.table)
        assert stored.num_rows == 24 and set(stored["run_tag"].to_pylist()) == {rep.tag}
    # the stored vectors are the model's vectors for those exact inputs, in the right rows
    ext = load_extractor(clip_dir)
    ids, mat = store.embeddings("toy", rep.model_key, "image", as_="numpy")
    order = {s: k for k, s in enumerate(rows["sample_id"].to_pylist())}
    refs = [rows["image_ref"][order[s]].as_py() for s in ids]
    np.testing.assert_allclose(mat, ext.encode_images([load_image(r) for r in refs]), atol=1e-5)

    again = load_extractor(clip_dir)
    rep2 = extract(store, "toy", clip_dir, extractor=again, progress=False)
    assert rep2.forward_calls == 0 and again.forward_calls == 0 and not again._loaded
    assert rep2.computed == rep2.reused == 0
    assert [r.version for r in rep2.results] == [r.version for r in rep.results]
    assert [store.version(r.table) for r in rep.results] == [3, 3]


def test_identical_content_is_copied_not_recomputed(store, tmp_path, clip_dir):
    write_dataset(store, "first", tmp_path / "a", range(10))
    extract(store, "first", clip_dir, modality="image", progress=False, threads=1)
    write_dataset(store, "second", tmp_path / "b", range(6, 14))  # same bytes for 6..9, new 10..13
    ext = load_extractor(clip_dir)
    rep = extract(store, "second", clip_dir, modality="image", extractor=ext, batch_size=4, progress=False,
                  threads=1)
    r = rep.result("image")
    assert (r.reused, r.computed, r.forward_calls) == (4, 4, 1)
    ids, mat = store.embeddings("second", rep.model_key, "image", as_="numpy")
    ids1, mat1 = store.embeddings("first", rep.model_key, "image", as_="numpy")
    first = dict(zip(ids1, mat1))
    for sid, vec in zip(ids, mat):
        if sid in ("s6", "s7", "s8", "s9"):
            np.testing.assert_array_equal(vec, first[sid])


def test_decode_failures_are_skipped_and_reported(store, tmp_path, clip_dir):
    rows = write_dataset(store, "toy", tmp_path / "img", range(8))
    Path(rows["image_ref"][2].as_py()).write_bytes(b"not an image")
    Path(rows["image_ref"][5].as_py()).unlink()
    rep = extract(store, "toy", clip_dir, modality="image", batch_size=3, progress=False, threads=1)
    r = rep.result("image")
    assert r.computed == 6
    assert {s.sample_id for s in r.skipped} == {"s2", "s5"}
    reasons = {s.sample_id: s.reason for s in r.skipped}
    assert "img2.png" in reasons["s2"] and "not a readable image" in reasons["s2"]
    assert "img5.png" in reasons["s5"] and "file not found" in reasons["s5"]
    # all that is left is unreadable: reported again, but the model is never loaded
    ext = load_extractor(clip_dir)
    rep2 = extract(store, "toy", clip_dir, modality="image", extractor=ext, progress=False)
    assert len(rep2.skipped) == 2 and rep2.computed == 0 and not ext._loaded


def test_limit_then_resume_and_changed_text_recomputed(store, tmp_path, bert_dir):
    rows = write_dataset(store, "toy", tmp_path / "img", range(12))
    rep = extract(store, "toy", bert_dir, limit=5, progress=False, threads=1)
    assert rep.results[0].computed == 5
    rep = extract(store, "toy", bert_dir, progress=False, threads=1)
    assert rep.results[0].computed == 7
    texts = rows["text"].to_pylist()
    texts[3] = "a re-rendered prompt"
    write_dataset(store, "toy", tmp_path / "img", range(12), texts=texts)
    rep = extract(store, "toy", bert_dir, progress=False, threads=1)
    assert rep.results[0].computed == 1
    stored = _table_rows(store, rep.results[0].table).to_pylist()
    assert len(stored) == 12
    assert {r["sample_id"]: r["content_sha256"] for r in stored}["s3"] == sha256_text("a re-rendered prompt")


def test_background_preparation_and_all_cores(store, tmp_path, bert_dir):
    write_dataset(store, "toy", tmp_path / "img", range(6))
    ext = load_extractor(bert_dir)
    seen = []
    original = ext.prepare

    def recording(modality, items):
        seen.append(threading.current_thread().name)
        return original(modality, items)

    ext.prepare = recording
    import torch

    before = torch.get_num_threads()
    extract(store, "toy", bert_dir, extractor=ext, batch_size=2, progress=False)
    assert seen == ["embedstore-prefetch"] * 3  # prepared off the main thread
    assert torch.get_num_threads() == before  # restored afterwards


def test_bad_requests(store, tmp_path, bert_dir):
    write_dataset(store, "toy", tmp_path / "img", range(2))
    with pytest.raises(InputError, match="does not encode images"):
        extract(store, "toy", bert_dir, modality="image", progress=False)
    with pytest.raises(NotFoundError, match="no dataset 'nope'"):
        extract(store, "nope", bert_dir, progress=False)
    with pytest.raises(InputError, match="unknown modality"):
        extract(store, "toy", bert_dir, modality="audio", progress=False)


def test_cli_extract_and_models(store, tmp_path, bert_dir):
    from embedstore.cli.main import cli

    write_dataset(store, "toy", tmp_path / "img", range(5))
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", store.uri, "extract", "toy", "--model", bert_dir, "--modality", "text",
                              "--batch-size", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    key = load_extractor(bert_dir).identity.key
    assert f"model_key {key}" in res.output
    assert "computed" in res.output and "reused" in res.output and "rows/s" in res.output
    line = [ln for ln in res.output.splitlines() if ln.startswith("text ")][0].split()
    assert line[1:3] == ["5", "0"] and line[6] == "1"  # computed, reused ... version 1
    res = runner.invoke(cli, ["--store", store.uri, "extract", "toy", "--model", bert_dir, "--json"])
    data = json.loads(res.output)
    assert data["computed"] == 0 and data["forward_calls"] == 0 and data["results"][0]["version"] == 1
    res = runner.invoke(cli, ["--store", store.uri, "models"])
    assert res.exit_code == 0 and "builtin:efficientnet-lite0" in res.output and key in res.output
    res = runner.invoke(cli, ["--store", store.uri, "models", "--json"])
    stored = json.loads(res.output)["stored"]
    assert stored[0]["model_key"] == key and stored[0]["rows"] == {"text": 5}
    res = runner.invoke(cli, ["--store", store.uri, "extract", "toy", "--model", bert_dir, "--modality", "image"])
    assert res.exit_code == 1 and "does not encode images" in res.output


# -- interruption ----------------------------------------------------------
N_KILL = 600


def _spawn(store, model_dir):
    code = ("from embedstore.cli.main import main; main()")
    args = ["--store", store.uri, "extract", "toy", "--model", model_dir, "--modality", "text",
            "--batch-size", "5", "--chunk-rows", "10", "--threads", "1", "--no-progress"]
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for_versions(store, table, n, proc, timeout=120):
    versions = Path(store.uri) / f"{table}.lance" / "_versions"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if versions.is_dir() and len(list(versions.glob("*.manifest"))) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"extract ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.02)
    pytest.fail("extract made no progress")


def _check_complete(store, table):
    rows = _table_rows(store, table)
    keys = rows["row_key"].to_pylist()
    assert len(keys) == len(set(keys)) == N_KILL  # exactly one row per key, total = dataset size
    assert set(rows["sample_id"].to_pylist()) == {f"s{i}" for i in range(N_KILL)}


def _extracting(store, tmp_path, bert_dir, word: str):
    """An ``embedstore extract`` process on N_KILL texts, past its third committed chunk: (process, table)."""
    texts = [f"note {i}: " + f"{word} " * (i % 9) for i in range(N_KILL)]
    write_dataset(store, "toy", tmp_path / "img", range(N_KILL), texts=texts)
    table = f"emb__text__{load_extractor(bert_dir).identity.key}__32"
    proc = _spawn(store, bert_dir)
    _wait_for_versions(store, table, 3, proc)
    return proc, table


@pytest.mark.slow
def test_sigkill_mid_extraction_then_rerun(store, tmp_path, bert_dir):
    proc, table = _extracting(store, tmp_path, bert_dir, "lesion")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = store.read(table, columns=["row_key"]).num_rows
    assert 0 < partial < N_KILL and partial % 10 == 0  # killed mid-way; only whole chunks are stored
    rep = extract(store, "toy", bert_dir, progress=False, threads=1, batch_size=50)
    assert rep.results[0].computed == N_KILL - partial
    _check_complete(store, table)


@pytest.mark.slow
def test_ctrl_c_commits_done_rows_and_rerun_continues(store, tmp_path, bert_dir):
    proc, table = _extracting(store, tmp_path, bert_dir, "nevus")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "re-run the same command to continue" in err
    done = int(err.split("interrupted: ")[1].split()[0])
    assert store.read(table, columns=["row_key"]).num_rows == done > 0
    rep = extract(store, "toy", bert_dir, progress=False, threads=1, batch_size=50)
    assert rep.results[0].computed == N_KILL - done
    _check_complete(store, table)
