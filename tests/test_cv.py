"""Honest cross-validation, input scaling, the linear probe and paired comparisons, on real stores."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import Store
from embedstore.compare import batch_metric, compare_settings, paired_bootstrap
from embedstore.errors import InputError, NotFoundError
from embedstore.heads import heads_of_run
from embedstore.runs import list_runs
from embedstore.trainers.cv import fold_parts, grouped_folds
from embedstore.trainers.synthetic_vectors import write_synthetic
from embedstore.trainers.train import train, train_arrays


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("cv") / "store")
    info = write_synthetic(store, "grp", n=180, image_dim=12, text_dim=8, n_classes=3, signal=0.8, seed=3,
                           group_size=3)
    return store, info


def test_folds_and_validation_parts_never_split_a_group():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 60, size=300)
    y = np.array(["a", "b", "c"])[groups % 3]
    for seed in (0, 1):
        folds = grouped_folds(y, groups, k=5, seed=seed)
        assert set(folds) == set(range(5))
        for g in np.unique(groups):
            assert len(set(folds[groups == g])) == 1
        for f in range(5):
            parts = fold_parts(y, groups, folds, f, val_fraction=0.2, seed=seed)
            sets = {p: set(groups[rows]) for p, rows in parts.items()}
            assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
            assert not sets["val"] & sets["test"]
            assert sorted(np.concatenate(list(parts.values()))) == list(range(300))
    assert not np.array_equal(grouped_folds(y, groups, 5, 0), grouped_folds(y, groups, 5, 1))
    with pytest.raises(InputError, match="number of groups"):
        grouped_folds(y[:4], [0, 0, 1, 1], k=3, seed=0)


def test_store_cv_records_fold_assignment_and_reads_no_test_row_before_selection(grouped):
    store, info = grouped
    res = train(store, "grp", image_model=info["image_model"], text_model=info["text_model"], fusion="early",
                cv=3, repeats=2, seeds=1, epochs=4)
    assert len(res.runs) == 6 and res.config["cv"]["k"] == 3
    # fold heads are kept only when asked (scikit-learn's cross_validate(return_estimator=...))
    with pytest.raises(NotFoundError, match="save_heads=True"):
        heads_of_run(store, res.runs[0].run_id)
    events = res.source.events
    starts = [i for i, e in enumerate(events) if e[0] == "mark" and e[1].startswith("cv split")]
    assert len(starts) == 6
    for a, b in zip(starts, starts[1:] + [len(events)]):
        seg = events[a:b]
        selected = seg.index(("mark", "selected"))
        test_reads = [i for i, e in enumerate(seg) if e[1] == "test" and e[0] in ("vectors", "iter")]
        assert test_reads and min(test_reads) > selected          # test rows touched only after selection
        assert seg.count(("vectors", "test")) == 1
    # every sample is a test row exactly once per split seed, and no group is in two test folds
    recs = list_runs(store, "grp", group_id=res.group_id)
    samples = store.read("samples__grp").to_pandas().set_index("sample_id")["group_id"]
    for split_seed in (0, 1):
        tests = [r.config["cv"]["test"] for r in recs if r.config["cv"]["split_seed"] == split_seed]
        flat = [s for t in tests for s in t]
        assert sorted(flat) == sorted(samples.index)
        group_sets = [set(samples[t]) for t in tests]
        assert all(not (g1 & g2) for i, g1 in enumerate(group_sets) for g2 in group_sets[i + 1:])
    assert all("test_pred" in r.metrics and len(r.metrics["test_pred"]) == len(r.config["cv"]["test"])
               for r in recs)
    assert recs[0].config["scaling"]["image"]["method"] == "standard"
    assert recs[0].config["scaling"]["image"]["n_fit"] == recs[0].config["cv"]["rows"]["train"]


def test_scaling_is_fitted_on_training_rows_only_and_paper_mode_refuses_it():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 4))
    y = np.array(["a", "b"] * 50)
    split = np.array(["train"] * 60 + ["val"] * 20 + ["test"] * 20)
    a = train_arrays(x, None, y, split, fusion="linear", scale="standard", baseline=False)
    x2 = x.copy()
    x2[80:] += 100.0                                      # only test rows change
    b = train_arrays(x2, None, y, split, fusion="linear", scale="standard", baseline=False)
    assert a.config["scaling"]["image"]["params_sha256"] == b.config["scaling"]["image"]["params_sha256"]
    assert a.config["scaling"]["image"]["n_fit"] == 80    # the refit's training rows: the split's train and val
    with pytest.raises(InputError, match="paper mode"):
        train_arrays(x, None, y, np.where(split == "val", "train", split), fusion="image", mode="paper",
                     scale="standard")


def test_paired_interval_matches_a_scipy_bootstrap_reference():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 150)
    pa = np.where(rng.random(150) < 0.7, y, rng.integers(0, 3, 150))
    pb = np.where(rng.random(150) < 0.6, y, rng.integers(0, 3, 150))
    diff, low, high, _ = paired_bootstrap([(y, [pa], [pb])], n_classes=3, n_resamples=4000, seed=0)

    def stat(yy, aa, bb):
        return batch_metric(yy[None], aa[None], 3)[0] - batch_metric(yy[None], bb[None], 3)[0]

    ref = bootstrap((y, pa, pb), stat, paired=True, vectorized=False, n_resamples=4000, method="percentile",
                    random_state=1)
    assert diff == pytest.approx(stat(y, pa, pb))
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.012)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.012)


def test_runs_compare_pairs_the_same_folds_and_prints_the_interval(grouped):
    from click.testing import CliRunner

    from embedstore.cli.main import cli

    store, info = grouped
    kw = dict(image_model=info["image_model"], text_model=info["text_model"], cv=3, epochs=3)
    a = train(store, "grp", fusion="linear", **kw)
    b = train(store, "grp", fusion="image", **kw)
    cmp = compare_settings(store, a.group_id, b.group_id)
    assert cmp.n_pairs == 3 and cmp.n_rows == 180
    assert cmp.difference == pytest.approx(a.mean["macro_f1"] - b.mean["macro_f1"])
    assert cmp.low <= cmp.difference <= cmp.high
    out = CliRunner().invoke(cli, ["--store", store.uri, "runs", "--compare", a.group_id, b.group_id])
    assert out.exit_code == 0, out.output
    assert "95% CI" in out.output and f"{cmp.difference:+.4f}" in out.output
    other = train(store, "grp", fusion="image", cv=3, image_model=info["image_model"], epochs=2,
                  cv_seed=9)
    bad = CliRunner().invoke(cli, ["--store", store.uri, "runs", "--compare", a.group_id, other.group_id])
    assert bad.exit_code != 0 and "share no fold" in bad.output and "Traceback" not in bad.output


def test_cli_train_cv_linear_prints_folds_scaling_and_groups(grouped):
    from click.testing import CliRunner

    from embedstore.cli.main import cli

    store, info = grouped
    out = CliRunner().invoke(cli, ["--store", store.uri, "train", "grp", "--image-model", info["image_model"],
                                   "--fusion", "linear", "--cv", "3", "--scale", "image=l2", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert "3-fold grouped CV x 1" in out.output and "'image': 'l2'" in out.output
    assert "3 folds x 1 x 1 seeds" in out.output and "linear=grp-" in out.output
    bad = CliRunner().invoke(cli, ["--store", store.uri, "train", "grp", "--image-model", info["image_model"],
                                   "--fusion", "image", "--cv", "3", "--mode", "paper", "--no-progress"])
    assert bad.exit_code != 0 and "--cv is honest-mode" in bad.output and "Traceback" not in bad.output


def test_cv_keeps_fold_heads_when_asked_and_they_predict_as_an_ensemble(grouped):
    from embedstore.trainers.predict import predict

    store, info = grouped
    res = train(store, "grp", image_model=info["image_model"], fusion="image", cv=3, epochs=1, save_heads=True)
    heads = heads_of_run(store, res.runs[0].run_id, group=True)
    assert sorted(h.fold for h in heads) == ["r0f0", "r0f1", "r0f2"]
    ens = predict(store, "grp", res.runs[0].run_id, ensemble=True, write=False)
    assert len(ens.head_ids) == 3 and np.allclose(ens.proba.sum(axis=1), 1.0)


def test_a_cross_validation_runs_stored_head_reproduces_its_fold_with_the_folds_scaling(grouped):
    """Each fold's head is kept with the scaling fitted on that fold's training rows (it used to be dropped)."""
    from embedstore.heads import heads_of_run
    from embedstore.trainers.predict import predict, probabilities

    store, info = grouped
    res = train(store, "grp", image_model=info["image_model"], text_model=info["text_model"], fusion="early",
                cv=2, epochs=2, baseline=False, save_heads=True)
    run = res.runs[1]
    head = heads_of_run(store, run.run_id)[0]
    assert head.spec["scaling"] == {"image": "standard", "text": "standard"}
    assert head.spec["test_sample_ids"] == run.cv["test"]
    out = predict(store, "grp", run.run_id, write=False)
    pos = {s: i for i, s in enumerate(out.sample_ids)}
    rows = [pos[s] for s in run.cv["test"]]
    np.testing.assert_allclose(out.proba[rows], probabilities(np.array(run.metrics["test_logits"])), atol=1e-6)
