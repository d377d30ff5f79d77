"""``embedstore train`` / ``embedstore runs`` driven through click against a real store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore.runs import list_runs
from embedstore.trainers.synthetic_vectors import write_synthetic


@pytest.fixture
def synth(store):
    return store, write_synthetic(store, "toy", n=300, image_dim=12, text_dim=10, signal=1.0, seed=2)


def _invoke(store, *args):
    return CliRunner().invoke(cli, ["--store", store.uri, *args], catch_exceptions=False)


def test_train_prints_mean_sd_table_and_records_runs(synth):
    store, info = synth
    res = _invoke(store, "train", "toy", "--image-model", info["image_model"], "--text-model", info["text_model"],
                  "--fusion", "early", "--fusion", "text", "--seeds", "2", "--epochs", "3", "--split", "grouped",
                  "--no-progress")
    assert res.exit_code == 0, res.output
    assert "macro_f1" in res.output and " ± " in res.output and "runs: run-" in res.output
    assert "early" in res.output and "text" in res.output
    runs = list_runs(store, "toy")
    assert len(runs) == 4 and {r.fusion for r in runs} == {"early", "text"}
    listing = _invoke(store, "runs", "toy")
    assert listing.exit_code == 0 and listing.output.count("honest") == 2
    each = _invoke(store, "runs", "--each")
    assert all(r.run_id in each.output for r in runs)


def test_train_json_paper_mode_reports_both_best_epochs(synth):
    store, info = synth
    res = _invoke(store, "train", "toy", "--image-model", info["image_model"], "--text-model", info["text_model"],
                  "--fusion", "late", "--mode", "paper", "--epochs", "2", "--hidden", "16", "--json", "--no-record")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)[0]
    run = out["runs"][0]
    assert {"best_accuracy", "best_f1"} <= set(run["selection"])
    assert {"train", "test_paper", "test"} <= set(run["cost"]["data_mib"])
    assert run["cost"]["params"] == (10 * 16 + 16 + 32) + (12 * 16 + 16 + 32) + 33
    assert out["run_ids"] == [None] and list_runs(store) == []
    runs_json = json.loads(_invoke(store, "runs", "--json").output)
    assert runs_json == []


def test_train_errors_are_one_line(synth):
    store, info = synth
    res = _invoke(store, "train", "toy", "--image-model", "missing-model", "--text-model", info["text_model"])
    assert res.exit_code == 1 and "no model 'missing-model'" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = _invoke(store, "train", "toy", "--image-model", info["image_model"], "--fusion", "early")
    assert res.exit_code == 1 and "needs --text-model" in res.output


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_data_ingest_extract_train_runs_rerun(tmp_path, shared_data):
    """ham10000-sample70 → ingest → extract (tiny local encoders) → train --seeds 2 → runs → rerun."""
    from embedstore import Store
    from tests.tiny_models import make_tiny_bert, make_tiny_dinov2
    from embedstore.trainers.train import rerun

    uri = str(tmp_path / "store")
    image_model, text_model = make_tiny_dinov2(tmp_path / "dino"), make_tiny_bert(tmp_path / "bert")
    runner = CliRunner()
    steps = [["ingest", "ham10000", "--root", str(shared_data / "ham10000-sample70"), "--name", "ham70",
              "--no-progress"],
             ["extract", "ham70", "--model", image_model, "--modality", "image", "--no-progress"],
             ["extract", "ham70", "--model", text_model, "--modality", "text", "--no-progress"]]
    for args in steps:
        res = runner.invoke(cli, ["--store", uri, *args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["--store", uri, "train", "ham70", "--image-model", image_model, "--text-model",
                              text_model, "--fusion", "early", "--fusion", "image", "--seeds", "2", "--epochs", "4",
                              "--split", "grouped", "--no-progress", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [o["fusion"] for o in out] == ["early", "image"] and len(out[0]["run_ids"]) == 2
    store = Store(uri)
    rec = list_runs(store, "ham70")[0]
    assert rec.table_versions["samples__ham70"] == store.version("samples__ham70")
    assert len(rec.table_versions) == 3 and len(rec.metrics["per_class_f1"]) == 7
    again = rerun(store, rec.run_id).metrics
    assert again == {k: rec.metrics[k] for k in again}


def test_rerun_reproduces_a_recorded_run_and_records_it_on_request(synth):
    store, info = synth
    res = _invoke(store, "train", "toy", "--image-model", info["image_model"], "--text-model", info["text_model"],
                  "--fusion", "early", "--epochs", "3", "--split", "grouped", "--no-progress", "--json")
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.output)[0]["run_ids"][0]
    out = _invoke(store, "rerun", run_id, "--loader", "stream", "--json")
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["identical"] is True and payload["loader"] == "stream" and payload["rerun_id"] is None
    assert payload["metrics"] == payload["recorded"] and len(list_runs(store, "toy")) == 1
    text = _invoke(store, "rerun", run_id, "--record")
    assert text.exit_code == 0 and "identical to the recorded run" in text.output
    runs = list_runs(store, "toy")
    assert len(runs) == 2 and runs[-1].rerun_of == run_id and runs[-1].metrics["macro_f1"] == runs[0].metrics["macro_f1"]


def test_rerun_of_an_unknown_run_is_one_line(synth):
    store, _ = synth
    res = _invoke(store, "rerun", "run-nope")
    assert res.exit_code == 1 and "no run 'run-nope'" in res.output and len(res.output.strip().splitlines()) == 1


def test_default_train_cross_validates_a_small_dataset_beside_the_independent_baseline(store):
    from embedstore.compare import baseline_comparison

    info = write_synthetic(store, "small", n=150, image_dim=6, text_dim=5, n_classes=3, signal=0.8, seed=5)
    res = _invoke(store, "train", "small", "--image-model", info["image_model"], "--fusion", "image", "--epochs", "3",
                  "--no-progress")
    assert res.exit_code == 0, res.output
    assert "5-fold grouped CV x 1 (default for datasets of at most 5,000 labelled samples" in res.output
    assert "5 folds x 1 x 1 seeds" in res.output and "macro_f1 (95% CI)" in res.output
    assert "against the independent baseline (scikit-learn StandardScaler + LogisticRegression" in res.output
    runs = list_runs(store, "small")
    assert len(runs) == 5 and all(r.metrics["baseline"]["test_pred"] for r in runs)
    cmp = baseline_comparison(runs)
    assert f"{cmp.difference:+.4f} ({cmp.low:+.4f} to {cmp.high:+.4f})" in res.output
    one = _invoke(store, "train", "small", "--image-model", info["image_model"], "--fusion", "image", "--epochs", "3",
                  "--split", "grouped", "--no-baseline", "--no-progress")
    assert one.exit_code == 0, one.output
    assert "split split_grouped" in one.output and "against the independent baseline" not in one.output
    assert len(list_runs(store, "small")) == 6
    gid = runs[0].group_id
    both = _invoke(store, "runs", "--compare", gid, gid)
    assert both.exit_code == 0 and f"{gid} against the independent baseline: macro_f1" in both.output
