"""Heads kept in the store and ``predict``: real images, a tiny real CLIP, real LanceDB and torch."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore import Store
from embedstore.errors import InputError, NotFoundError
from embedstore.heads import heads_of_run
from embedstore.ingest import ingest
from embedstore.maintenance import cleanup
from embedstore.runs import get_run
from tests.helpers import embedded_manifest, manifest_copy
from embedstore.trainers.predict import predict, predictions_table, probabilities
from embedstore.trainers.train import train


def _unlabelled(manifest, out, keep) -> str:
    """A copy of ``manifest`` with only rows ``keep`` and no label column (same image files)."""
    return manifest_copy(manifest, out, drop=("label",), keep=keep)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    store, model, data = embedded_manifest(base)
    early = train(store, "ds", image_model=model, text_model=model, fusion="early", seeds=2, epochs=3)
    linear = train(store, "ds", image_model=model, text_model=model, fusion="linear")
    return store, data.manifest, model, early, linear, base


def test_predicting_the_runs_own_test_split_reproduces_its_probabilities(trained):
    store, _, _, early, linear, _ = trained
    for result in (early, linear):
        run_id = result.run_ids[0]
        rec = get_run(store, run_id)
        head = heads_of_run(store, run_id)[0]
        res = predict(store, "ds", run_id, write=False)
        pos = {s: i for i, s in enumerate(res.sample_ids)}
        rows = [pos[s] for s in head.spec["test_sample_ids"]]
        np.testing.assert_allclose(res.proba[rows], probabilities(np.array(rec.metrics["test_logits"])),
                                   atol=1e-6)
        codes = [res.classes.index(res.labels[i]) for i in rows]
        assert codes == rec.metrics["test_pred"]
        acc = np.mean(np.array(codes) == np.array(rec.metrics["test_y"]))
        assert acc == pytest.approx(rec.metrics["accuracy"])


def test_unlabelled_folder_reuses_the_cache_and_a_second_predict_writes_nothing(trained, tmp_path):
    store, manifest, model, early, _, _ = trained
    run_id = early.run_ids[0]
    held = heads_of_run(store, run_id)[0].spec["test_sample_ids"]
    ingest(store, "manifest", _unlabelled(manifest, tmp_path / "clinic", set(held)), name="clinic",
           id_column="sample_id", group_column="group", progress=False)
    assert set(store.samples("clinic")["label"].to_pylist()) == {None}
    first = predict(store, "clinic", run_id)
    assert first.forward_calls == 0  # same photos and texts: every vector reused by content hash
    assert sorted(first.sample_ids) == sorted(held) and first.written == len(held)
    np.testing.assert_allclose(first.proba.sum(axis=1), 1.0, atol=1e-12)
    table = store.read(predictions_table("clinic"))
    assert table.num_rows == len(held) and set(table["run_id"].to_pylist()) == {run_id}
    assert json.loads(table["input_versions"][0].as_py()) == first.input_versions
    version = store.version(predictions_table("clinic"))
    second = predict(store, "clinic", run_id)
    assert second.forward_calls == 0 and second.written == 0
    assert store.version(predictions_table("clinic")) == version
    with pytest.raises(InputError, match="predict-only"):
        train(store, "clinic", image_model=model, text_model=model, fusion="early", epochs=1)


def test_ensemble_cleanup_and_missing_heads(trained):
    store, _, model, early, _, _ = trained
    ens = predict(store, "ds", early.run_ids[0], ensemble=True, write=False)
    assert len(ens.head_ids) == 2
    singles = [predict(store, "ds", r, write=False).proba for r in early.run_ids]
    np.testing.assert_allclose(ens.proba, np.mean(singles, axis=0), atol=1e-12)
    cleanup(store, 0)
    assert len(heads_of_run(store, early.run_ids[0], group=True)) == 2
    np.testing.assert_allclose(predict(store, "ds", early.run_ids[1], write=False).proba, singles[1])
    off = train(store, "ds", image_model=model, text_model=model, fusion="image", epochs=1, save_heads=False)
    with pytest.raises(NotFoundError, match="no stored head"):
        predict(store, "ds", off.run_ids[0])


def test_cli_predict_writes_csv_and_json(trained, tmp_path):
    store, _, _, early, _, _ = trained
    out = tmp_path / "p.csv"
    res = CliRunner().invoke(cli, ["--store", store.uri, "predict", "ds", "--run", early.run_ids[0],
                                   "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["rows"] == 60 and summary["table"] == "predictions__ds"
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 60 and all(abs(sum(float(r[k]) for k in r if k.startswith("p_")) - 1) < 1e-9
                                   for r in rows)
    bad = CliRunner().invoke(cli, ["--store", store.uri, "predict", "ds", "--run", "run-nope"])
    assert bad.exit_code != 0 and "unknown run 'run-nope'" in bad.output and "Traceback" not in bad.output


def test_exported_onnx_head_matches_predict(trained, tmp_path):
    import onnxruntime as ort

    from embedstore.snapshot import Snapshot
    from embedstore.trainers.export import export_head

    store, _, model, early, linear, _ = trained
    for result in (early, linear):
        run_id = result.run_ids[0]
        side = export_head(store, run_id, tmp_path / "head.onnx")
        assert side["classes"] == heads_of_run(store, run_id)[0].spec["classes"]
        assert json.loads((tmp_path / "head.onnx.json").read_text())["input_models"]["image"]["model_key"]
        res = predict(store, "ds", run_id, write=False)
        _, vectors, _ = Snapshot(store, "ds", image_model=model, text_model=model).current()
        sess = ort.InferenceSession(str(tmp_path / "head.onnx"), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {f"{m}_embedding": vectors[m] for m in ("image", "text")})
        np.testing.assert_allclose(got, res.proba, atol=1e-5)


def predict_worker(uri: str, run_id: str, die_after: int) -> None:
    """Predict dataset ``fresh`` (needs extraction), SIGKILLed after its ``die_after``-th commit."""
    from tests.lab import die_after_commits

    die_after_commits(die_after)
    predict(Store(uri), "fresh", run_id)


@pytest.mark.slow
def test_killed_predict_leaves_no_partial_version_and_a_rerun_completes(trained):
    from embedstore.synthetic import make_synthetic
    from tests.lab import context, run_all

    store, _, _, early, _, base = trained
    fresh = make_synthetic(base / "fresh", n=12, seed=7)  # new photos: predict must extract them first
    ingest(store, "manifest", _unlabelled(fresh.manifest, base / "fresh-u", {f"synthetic-{i:04d}" for i in range(12)}),
           name="fresh", id_column="sample_id", progress=False)
    run_id = early.run_ids[0]
    ctx = context()
    codes = run_all([ctx.Process(target=predict_worker, args=(store.uri, run_id, 1))], timeout=300)
    assert codes == [-9]  # killed after the image vectors were committed, before any prediction
    assert not store.has_table(predictions_table("fresh"))
    res = predict(store, "fresh", run_id)
    assert len(res.sample_ids) == 12
    table = store.read(predictions_table("fresh"))
    assert table.num_rows == 12 and len(set(table["sample_id"].to_pylist())) == 12
    assert [v.version for v in store.versions(predictions_table("fresh"))] == [res.version]
