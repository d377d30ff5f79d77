"""The λ sweep on constructed data: aligned + trained + recorded per λ, honest/paper selection, resume."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embedstore.errors import InputError, NotFoundError
from embedstore.heads import HEADS, heads_of_run
from embedstore.pairs import toy_pairs
from embedstore.runs import get_run, list_runs
from embedstore.sweep_records import list_sweeps, sweep_points
from embedstore.trainers.predict import predict
from embedstore.trainers.sweep import parse_lambdas, sweep


def _versions(store):
    return {t["table"]: t["version"] for t in store.info()["tables"]}


def test_parse_lambdas():
    assert parse_lambdas("-1:1:0.1")[:3] == [-1.0, -0.9, -0.8] and len(parse_lambdas("-1:1:0.1")) == 21
    assert 0.0 in parse_lambdas("-1:1:0.1")
    with pytest.raises(InputError, match="START:STOP:STEP"):
        parse_lambdas("1:x:2")
    with pytest.raises(InputError, match="STEP > 0"):
        parse_lambdas("1:-1:0.5")


def test_honest_sweep_selects_on_validation_and_resumes(store, tmp_path):
    img, txt = toy_pairs(store, "toy", n=60)
    res = sweep(store, "toy", image_model=img, text_model=txt, fusion="late", lambdas="-1:1:1", seeds=2,
                epochs=2, out=tmp_path / "sweep.png", progress=False)
    assert [p.lam for p in res.points] == [-1.0, 0.0, 1.0] and res.trained == [-1.0, 0.0, 1.0]
    for p in res.points:
        assert p.seeds == 2 and len(set(p.run_ids)) == 2
        rec = store.alignment(p.alignment_key)
        assert rec.settings["lam"] == p.lam and rec.settings["fit_on"] == "train"
        assert rec.settings["match"] == "interp" and rec.settings["dim"] == 8  # 8-d image, 5-d text
        runs = [get_run(store, r) for r in p.run_ids]
        assert {r.alignment_keys["image"] for r in runs} == {p.alignment_key}
        for r in runs:  # λ and the alignment settings are in each run's own config
            recorded = r.config["alignments"]["image"]
            assert (recorded["lam"], recorded["fit_on"], recorded["match"], recorded["method"]) == (
                p.lam, "train", "interp", "gapshift")
            assert recorded["noise_std"] == 0.0 and recorded["seed"] == 0
        assert all(r.metrics["selection"]["selected_on"] == "inner-cv" for r in runs)  # epoch: no test row
        assert p.test_f1 == pytest.approx(np.mean([r.metrics["macro_f1"] for r in runs]))
        assert p.val_f1 == pytest.approx(np.mean([r.metrics["selection"]["val"]["macro_f1"] for r in runs]))
    best = max(res.points, key=lambda p: (p.val_f1, -abs(p.lam)))
    assert res.selection["lam"] == best.lam and res.selection["test_f1"] == best.test_f1
    png = Image.open(res.png)
    assert png.size == (1100, 420) and np.asarray(png.convert("L")).std() > 5
    # read back from the runs table alone
    assert [p.to_dict() for p in sweep_points(store, "toy", res.sweep_id)] == [p.to_dict() for p in res.points]
    assert list_sweeps(store, "toy")[0]["lambdas"] == 3
    # a sweep keeps scores, not heads (validation_curve), unless asked
    assert not store.has_table(HEADS) or store.read(HEADS).num_rows == 0
    # same sweep again: nothing is aligned or trained, no table gets a new version
    before = _versions(store)
    again = sweep(store, "toy", image_model=img, text_model=txt, fusion="late", lambdas="-1:1:1", seeds=2,
                  epochs=2, progress=False)
    assert again.trained == [] and again.reused == [-1.0, 0.0, 1.0] and again.sweep_id == res.sweep_id
    assert _versions(store) == before
    assert len(list_runs(store, "toy")) == 8  # 3 λ × 2 seeds + the no-alignment reference × 2 seeds
    assert again.reference.to_dict() == res.reference.to_dict()


def test_sweep_keeps_heads_only_when_asked_and_they_predict(store):
    img, txt = toy_pairs(store, "toy", n=60)
    res = sweep(store, "toy", image_model=img, text_model=txt, fusion="early", lambdas="0.5", epochs=1,
                progress=False, train_options={"save_heads": True})
    run_id = res.points[0].run_ids[0]
    head = heads_of_run(store, run_id)[0]
    assert head.spec["alignment_keys"]["image"] == res.points[0].alignment_key
    assert predict(store, "toy", run_id, write=False).proba.shape[1] == len(head.spec["classes"])
    plain = sweep(store, "toy", image_model=img, text_model=txt, fusion="early", lambdas="0.5", epochs=1,
                  progress=False, resume=False)
    with pytest.raises(NotFoundError, match="save_heads=True"):
        heads_of_run(store, plain.points[0].run_ids[0])


def test_sweep_trains_the_no_alignment_reference_once_and_pairs_intervals_by_seed(store):
    from scipy import stats

    img, txt = toy_pairs(store, "toy", n=60)
    kw = dict(image_model=img, text_model=txt, fusion="early", seeds=3, epochs=2, progress=False)
    res = sweep(store, "toy", lambdas="0,1", **kw)
    ref = res.reference
    assert ref.group_id == f"{res.sweep_id}.none" and ref.seed_list == [0, 1, 2]
    for rid in ref.run_ids:  # the one "no alignment" row: unaligned, the mode's default scaling, with its baseline
        rec = get_run(store, rid)
        assert set(rec.alignment_keys.values()) == {"none"} and "baseline" in rec.metrics
        assert rec.config["scale"] == {"image": "standard", "text": "standard"}
    for rid in res.points[1].run_ids:  # the λ points keep the sweep's scale (none) and skip the baseline
        rec = get_run(store, rid)
        assert rec.config["scale"] == {"image": "none", "text": "none"} and "baseline" not in rec.metrics
    one, zero = res.points[1], res.points[0]
    for iv, base in ((res.intervals()[1]["vs_none"], ref), (res.intervals()[1]["vs_lam0"], zero)):
        d = np.array(one.test_f1_by_seed) - np.array(base.test_f1_by_seed)  # both ordered by seed
        half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
        assert iv["difference"] == pytest.approx(d.mean()) and iv["n"] == 3
        assert (iv["low"], iv["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert res.intervals()[0]["vs_lam0"] is None
    assert res.selection["vs_none"]["n"] == 3 and "ΔF1 vs none [95% CI]" in res.table()[0]
    # a wider grid reuses the reference and the recorded λ; the points do not include the reference group
    wider = sweep(store, "toy", lambdas="0,0.5,1", **kw)
    assert wider.trained == [0.5] and wider.reference.run_ids == ref.run_ids
    assert [p.lam for p in sweep_points(store, "toy", res.sweep_id)] == [0.0, 0.5, 1.0]
    assert list_sweeps(store, "toy")[0]["lambdas"] == 3


def test_paper_sweep_fits_on_all_rows_and_reports_best_on_test(store):
    img, txt = toy_pairs(store, "toy", n=60)
    res = sweep(store, "toy", image_model=img, text_model=txt, fusion="early", mode="paper", lambdas="0,1",
                seeds=1, epochs=2, progress=False)
    for p in res.points:
        assert store.alignment(p.alignment_key).settings["fit_on"] == "all"
        run = get_run(store, p.run_ids[0])
        assert run.mode == "paper" and run.metrics["selection"]["selected_on"] == "test"
        assert p.val_f1 is None
    assert res.selection["best_acc"] == max(p.test_acc for p in res.points)
    assert res.selection["best_f1"] == max(p.test_f1 for p in res.points)
    assert "lam0" in res.selection and res.selection["criterion"].startswith("best on test")


def test_sweep_passes_the_late_fusion_alignment_loss_and_noise(store):
    img, txt = toy_pairs(store, "toy", n=30)
    res = sweep(store, "toy", image_model=img, text_model=txt, fusion="late", mode="paper", lambdas="0.5",
                epochs=1, align_loss_weight=0.5, noise_std=0.01, align_seed=3, progress=False)
    (point,) = res.points
    run = get_run(store, point.run_ids[0])
    assert run.config["head"]["align_loss_weight"] == 0.5
    s = store.alignment(point.alignment_key).settings
    assert (s["noise_std"], s["seed"], s["lam"]) == (0.01, 3, 0.5)
    with pytest.raises(InputError, match="unknown mode"):
        sweep(store, "toy", image_model=img, text_model=txt, mode="best", lambdas="0")
