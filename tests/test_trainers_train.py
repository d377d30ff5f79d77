"""Training end to end on synthetic stores: learning, protocols, test-once, records, rerun."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import Store
from embedstore.errors import InputError
from embedstore.runs import get_run, list_runs
from embedstore.trainers.synthetic_vectors import write_synthetic
from embedstore.trainers.train import rerun, train, train_arrays


@pytest.fixture(scope="module")
def signal(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("train") / "store")
    return store, write_synthetic(store, "sig", n=600, image_dim=24, text_dim=32, n_classes=2, signal=0.6, seed=7)


def _train(store, info, dataset="sig", **kw):
    kw.setdefault("epochs", 8)
    return train(store, dataset, image_model=info["image_model"], text_model=info["text_model"], **kw)


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_separable_signal_is_learned_and_shuffled_labels_stay_at_chance(tmp_path, signal, fusion):
    store, info = signal
    res = _train(store, info, fusion=fusion, record=False)
    assert res.mean["accuracy"] > 0.95
    noise_store = Store(tmp_path / "noise")
    noise = write_synthetic(noise_store, "noise", n=1000, image_dim=24, text_dim=32, signal=0.6, seed=7,
                            shuffle_labels=True)
    shuffled = _train(noise_store, noise, dataset="noise", fusion=fusion, record=False)
    assert 0.35 < shuffled.mean["accuracy"] < 0.65
    assert shuffled.mean["roc_auc_ovr"] < 0.65


def test_honest_mode_reads_test_once_per_seed_after_selection_and_records_runs(signal):
    store, info = signal
    res = _train(store, info, fusion="late", seeds=2, epochs=6)
    assert len(res.runs) == 2 and res.sd["macro_f1"] >= 0
    for run in res.runs:
        events = run.events
        selected = events.index(("mark", "selected"))
        assert all(split != "test" for _, split in events[:selected])
        assert [e for e in events[selected:] if e == ("iter", "test")] == [("iter", "test")]
        assert run.selection["selected_on"] == "inner-cv"
        assert run.selection["refit"]["rows"] == run.cost["rows"]["train"] > len(res.source.labels("test"))
    rec = get_run(store, res.run_ids[0])
    assert rec.table_versions == res.runs[0].table_versions and "samples__sig" in rec.table_versions
    assert set(rec.model_keys) == {"image", "text"} and rec.alignment_keys == {"image": "none", "text": "none"}
    assert rec.loader == "memory" and len(rec.history) == rec.metrics["selection"]["epochs_run"]
    assert rec.environment["torch_threads"] >= 1 and rec.environment["cpu_model"]
    assert {r.run_id for r in list_runs(store, "sig", group_id=res.group_id)} == set(res.run_ids)


def test_rerun_from_record_reproduces_final_metrics_exactly(signal):
    store, info = signal
    first = _train(store, info, fusion="early", epochs=4, seeds=[5]).runs[0]
    again = rerun(store, first.run_id)
    assert again.metrics == first.metrics and again.seed == 5
    assert again.table_versions == first.table_versions
    streamed = rerun(store, first.run_id, loader="stream", record=True)
    assert streamed.metrics == first.metrics and streamed.loader == "stream"
    assert get_run(store, streamed.run_id).rerun_of == first.run_id


def test_paper_mode_reports_both_best_epochs_and_both_memory_formulas(signal):
    store, info = signal
    res = _train(store, info, fusion="early", mode="paper", epochs=5, record=False)
    run = res.runs[0]
    sel = run.selection
    assert sel["selected_on"] == "test" and sel["epochs_run"] == 5
    assert run.metrics["accuracy"] == max(h["accuracy"] for h in run.history)
    assert sel["best_f1"]["macro_f1"] == max(h["macro_f1"] for h in run.history)
    assert sel["best_accuracy"]["epoch"] == run.metrics["selected_epoch"]
    mem = run.cost["data_mib"]
    assert mem["test"] > mem["test_paper"] > 0
    n_train, n_test = run.cost["rows"]["train"], run.cost["rows"]["test"]
    assert mem["train"] == pytest.approx(n_train * (24 + 32 + 1) * 4 / 2**20)
    assert mem["test"] == pytest.approx(n_test * (24 + 32 + 1) * 4 / 2**20)
    assert sum(1 for e in run.events if e == ("iter", "test")) == 5  # evaluated every epoch
    assert run.cost["model_mib"] > 0 and run.cost["peak_rss_mib"] > 0 and run.cost["train_s_per_epoch"] > 0


def test_late_fusion_alignment_loss_changes_training_and_needs_late_fusion(signal):
    store, info = signal
    base = _train(store, info, fusion="late", epochs=2, record=False).runs[0]
    aligned = _train(store, info, fusion="late", epochs=2, record=False, align_loss_weight=1.0).runs[0]
    assert aligned.history[0]["train_loss"] != base.history[0]["train_loss"]
    with pytest.raises(InputError, match="late"):
        _train(store, info, fusion="early", epochs=1, record=False, align_loss_weight=1.0)


def test_single_modality_heads_and_multiclass_output_size(tmp_path):
    store = Store(tmp_path / "s")
    info = write_synthetic(store, "mc", n=400, image_dim=16, text_dim=12, n_classes=4, signal=0.8, seed=3)
    for fusion in ("image", "text"):
        res = _train(store, info, dataset="mc", fusion=fusion, epochs=6, record=False)
        assert res.mean["accuracy"] > 0.8
        assert len(res.runs[0].metrics["per_class_f1"]) == 4
        assert list(res.runs[0].table_versions) == ["samples__mc", res.source.tables[fusion]]
    two = write_synthetic(store, "bin", n=200, image_dim=8, text_dim=8, seed=4)
    res = _train(store, two, dataset="bin", fusion="early", mode="paper", epochs=2, record=False, output_size=2)
    assert res.runs[0].cost["params"] == 16 * 128 + 128 + 256 + 129 * 2


def test_honest_mode_without_val_rows_explains_the_fix(signal):
    store, info = signal
    with pytest.raises(InputError, match="honest mode needs train/val/test"):
        _train(store, info, split_by="paper", epochs=1)
    with pytest.raises(InputError, match="needs text_model="):
        train(store, "sig", image_model=info["image_model"], fusion="early")


def test_train_arrays_shares_the_protocol_and_records_to_a_store(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = rng.standard_normal((300, 10)).astype(np.float32) + y[:, None] * 2.0
    split = np.where(np.arange(300) % 5 == 0, "test", np.where(np.arange(300) % 5 == 1, "val", "train"))
    store = Store(tmp_path / "s")
    res = train_arrays(x, x[:, :4], y, split, fusion="late", epochs=8, seeds=2, store=store, record=True,
                       dataset="raw-demo", provenance={"backbones": "frozen"})
    assert res.mean["accuracy"] > 0.9 and res.runs[0].loader == "arrays"
    rec = get_run(store, res.run_ids[1])
    assert rec.seed == 1 and rec.config["provenance"] == {"backbones": "frozen"} and rec.table_versions == {}
    with pytest.raises(InputError, match="cannot be re-run"):
        rerun(store, res.run_ids[0])


def test_recorded_seeds_trains_only_the_missing_seeds(tmp_path):
    from embedstore.trainers.seed_runs import recorded_seeds

    store = Store(tmp_path / "store")
    info = write_synthetic(store, "few", n=120, image_dim=6, text_dim=5, signal=1.0, seed=3)
    asked: list[list[int]] = []

    def fit(missing: list[int]) -> None:
        asked.append(missing)
        _train(store, info, dataset="few", fusion="image", epochs=1, seeds=missing, group_id="grp-cache")

    first, trained = recorded_seeds(store, "few", "grp-cache", [0, 1], fit)
    assert trained and asked == [[0, 1]] and [r.seed for r in first] == [0, 1]
    wider, trained = recorded_seeds(store, "few", "grp-cache", [1, 0, 2], fit)
    assert trained and asked[-1] == [2] and [r.seed for r in wider] == [1, 0, 2]
    again, trained = recorded_seeds(store, "few", "grp-cache", [0, 1, 2], fit, known=list_runs(store, "few"))
    assert not trained and len(asked) == 2 and [r.run_id for r in again] == [wider[1].run_id, wider[0].run_id,
                                                                           wider[2].run_id]


def test_resume_trains_only_the_missing_seeds_of_a_group(store):
    """An interrupted many-seed run completes on re-run: recorded seeds are reused, the rest trained."""
    from embedstore.runs import list_runs
    from embedstore.trainers.synthetic_vectors import write_synthetic

    info = write_synthetic(store, "toy", n=200, image_dim=8, text_dim=6, signal=1.0, seed=3)
    kw = dict(image_model=info["image_model"], text_model=info["text_model"], fusion="early", epochs=2,
              group_id="grp-resume")
    first = train(store, "toy", seeds=1, **kw)
    again = train(store, "toy", seeds=3, resume=True, **kw)
    runs = list_runs(store, "toy", group_id="grp-resume")
    assert sorted(r.seed for r in runs) == [0, 1, 2] and len(runs) == 3  # seed 0 was not trained twice
    assert again.runs[0].run_id == first.runs[0].run_id
    assert again.runs[0].flat() == first.runs[0].flat()
    assert [r.seed for r in again.runs] == [0, 1, 2] and again.mean["macro_f1"] == pytest.approx(
        sum(r.metrics["macro_f1"] for r in again.runs) / 3)
    assert len(list_runs(store, "toy", group_id="grp-resume")) == len(
        train(store, "toy", seeds=3, resume=True, **kw).runs) == 3  # nothing left to train: nothing recorded
    with pytest.raises(InputError, match=r"resume: group 'grp-resume' holds run .* pass a new group_id="):
        train(store, "toy", seeds=3, resume=True, **{**kw, "epochs": 3})
    with pytest.raises(InputError, match=r"resume=True .* pass group_id= and record=True"):
        train(store, "toy", seeds=2, resume=True, image_model=info["image_model"], text_model=info["text_model"])
