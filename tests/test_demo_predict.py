"""The demo's held-back predictions and the report's Predictions section: real images, a tiny real CLIP,
real LanceDB and torch."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.report import write_report
from embedstore.trainers.demo_predict import predict_held_back
from embedstore.trainers.predict import predict
from embedstore.trainers.train import train
from tests.helpers import embedded_manifest


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo-predict")
    store, model, data = embedded_manifest(base)
    early = train(store, "ds", image_model=model, text_model=model, fusion="early", seeds=2, epochs=2,
                  group_id="demo-early")
    return store, model, early


def test_held_back_samples_are_test_rows_predicted_by_the_group_ensemble_and_nothing_is_written(grouped):
    store, _, early = grouped
    before = {t: store.version(t) for t in store.list_tables()}
    held = predict_held_back(store, "ds", "demo-early", n=6)
    assert {t: store.version(t) for t in store.list_tables()} == before  # predict only reads
    test = store.samples("ds", split="test")
    truth = dict(zip(test["sample_id"].to_pylist(), test["label"].to_pylist()))
    rows = held["rows"]
    assert len(rows) == 6 and all(r["sample"] in truth and r["true label"] == truth[r["sample"]] for r in rows)
    assert len({r["true label"] for r in rows}) == min(6, len(set(truth.values())))  # one per class in turn
    ens = predict(store, "ds", early.run_ids[0], ensemble=True, write=False)
    pos = {s: i for i, s in enumerate(ens.sample_ids)}
    for r in rows:
        assert r["predicted"] == ens.labels[pos[r["sample"]]]
        assert r["probability"] == pytest.approx(ens.proba[pos[r["sample"]]].max(), abs=5e-4)
    assert "2 stored heads" in held["note"] and "held back" in held["note"]
    assert np.all([r["image_ref"] for r in rows])


def test_report_shows_the_predictions_section_with_thumbnails(grouped, tmp_path):
    store, _, _ = grouped
    held = predict_held_back(store, "ds", "demo-early", n=4)
    plain = write_report(store, "ds", tmp_path / "plain.html", runs=["demo-early"], gap=False)
    res = write_report(store, "ds", tmp_path / "r.html", runs=["demo-early"], gap=False, predictions=held)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    section = page.split("<h2>Predictions on held-back samples</h2>", 1)[1].split("<h2>", 1)[0]
    assert section.count("<tr>") == 1 + 4 and "<th>true label</th><th>predicted</th><th>probability</th>" in section
    assert res.images == plain.images + 4
    for r in held["rows"]:
        assert f"{r['sample']}</span></td><td>{r['true label']}</td><td>{r['predicted']}</td>" in section


def test_a_group_without_stored_heads_is_a_note_not_an_error(grouped):
    store, model, _ = grouped
    train(store, "ds", image_model=model, fusion="image", epochs=1, group_id="demo-noheads", save_heads=False)
    held = predict_held_back(store, "ds", "demo-noheads")
    assert held["rows"] == [] and "no stored head" in held["note"]
    assert predict_held_back(store, "ds", "demo-none")["rows"] == []
