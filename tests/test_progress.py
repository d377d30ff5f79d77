"""Progress fits the output: sparse plain lines in a log, never carriage-return frames."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from embedstore.progress import LineProgress, progress
from embedstore.trainers.synthetic_vectors import write_synthetic


def test_log_gets_only_the_final_line_within_one_interval():
    log = io.StringIO()
    with LineProgress(total=500, desc="extract image", unit="rows", file=log, interval=3600) as bar:
        for _ in range(500):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("extract image: 500/500 rows (100%), ")
    assert "\r" not in log.getvalue()


def test_each_line_has_count_rate_eta_and_postfix():
    log = io.StringIO()
    bar = LineProgress(total=4, desc="seed 0", unit="epoch", file=log, interval=0)
    bar.set_postfix({"val_f1": "0.500"})
    bar.update(1)
    bar.close()
    first = log.getvalue().splitlines()[0]
    assert first.startswith("seed 0: 1/4 epoch (25%), ") and "val_f1=0.500" in first
    assert "ETA" in first or "elapsed" in first


def test_iteration_and_disable():
    log = io.StringIO()
    assert list(progress(range(3), desc="x", file=log, disable=True)) == [0, 1, 2]
    assert log.getvalue() == ""
    assert list(progress(range(3), desc="x", file=log)) == [0, 1, 2]
    assert log.getvalue().strip().startswith("x: 3/3 it (100%)")


def test_train_into_a_file_writes_a_few_plain_lines(store, tmp_path):
    info = write_synthetic(store, "toy", n=300, image_dim=12, text_dim=10, signal=1.0, seed=2)
    log = tmp_path / "log"
    env = {**os.environ, "EMBEDSTORE_PROGRESS_INTERVAL": "2"}
    t0 = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.run([sys.executable, "-m", "embedstore.cli.main", "--store", store.uri, "train", "toy",
                               "--image-model", info["image_model"], "--text-model", info["text_model"],
                               "--fusion", "early", "--seeds", "2", "--epochs", "60", "--no-record",
                               "--split", "grouped"],  # one split (a small dataset's default is CV)
                              stdout=subprocess.PIPE, stderr=err, text=True, cwd=Path(__file__).parents[1], env=env)
    elapsed = time.monotonic() - t0
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "\r" not in text
    progress_lines = [ln for ln in text.splitlines() if ln.startswith("toy early seed ")]
    # one final line per seed, plus at most one per 2-second interval while training
    assert 2 <= len(progress_lines) <= 2 + elapsed / 2 + 1, text
    assert {ln.split(":")[0] for ln in progress_lines} == {"toy early seed 0", "toy early seed 1"}
    assert all(re.search(r"/\d+ epoch \(", ln) and "epoch/s" in ln for ln in progress_lines), text
