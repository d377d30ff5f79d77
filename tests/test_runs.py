"""The runs table: record, get, list, compare, and the versions runs pin."""

from __future__ import annotations

import pytest

from embedstore.errors import NotFoundError
from embedstore.runs import (RunRecord, compare_groups, get_run, list_runs, new_run_id, record_run,
                             referenced_versions)


def _rec(dataset="ham", group="g1", seed=0, f1=0.7, versions=None, **kw):
    return RunRecord(run_id=new_run_id(), dataset=dataset, fusion="late", mode="honest", seed=seed,
                     group_id=group, table_versions=versions or {"samples__ham": 2, "emb__image__k__8": 5},
                     metrics={"accuracy": f1 + 0.1, "macro_f1": f1, "per_class_f1": [f1, f1]},
                     history=[{"epoch": 1, "macro_f1": f1}], config={"protocol": {"epochs": 1}},
                     alignment_keys={"image": "none", "text": "none"}, **kw)


def test_a_record_round_trips_through_the_store(store):
    rec = _rec(environment={"torch_threads": 2})
    result = record_run(store, rec)
    got = get_run(store, rec.run_id)
    assert result.version >= 1 and got.created_at
    assert (got.table_versions, got.metrics, got.history, got.environment) == \
        (rec.table_versions, rec.metrics, rec.history, {"torch_threads": 2})
    assert got.summary()["macro_f1"] == 0.7


def test_list_filters_by_dataset_and_group_and_orders_oldest_first(store):
    a, b = _rec(seed=0), _rec(seed=1, group="g2")
    c = _rec(dataset="brset")
    for r in (a, b, c):
        record_run(store, r)
    assert [r.run_id for r in list_runs(store, "ham")] == [a.run_id, b.run_id]
    assert [r.run_id for r in list_runs(store, group_id="g2")] == [b.run_id]
    assert len(list_runs(store)) == 3


def test_referenced_versions_collects_every_pinned_version(store):
    record_run(store, _rec())
    record_run(store, _rec(versions={"samples__ham": 3, "emb__image__k__8": 5}))
    assert referenced_versions(store) == {"emb__image__k__8": {5}, "samples__ham": {2, 3}}


def test_compare_groups_gives_mean_and_sd_per_group(store):
    for seed, f1 in enumerate([0.6, 0.8]):
        record_run(store, _rec(seed=seed, f1=f1))
    rows = compare_groups(list_runs(store))
    assert len(rows) == 1 and rows[0]["seeds"] == 2 and rows[0]["macro_f1"] == "0.7000 ± 0.1414"


def test_empty_store_and_unknown_run(store):
    assert list_runs(store) == [] and referenced_versions(store) == {}
    with pytest.raises(NotFoundError, match="no run 'run-x'.*embedstore runs"):
        get_run(store, "run-x")


def test_runs_manager_lists_gets_and_records(store):
    assert store.runs.list() == [] and store.runs() == []
    store.runs.record(RunRecord("run-a", "toy", "concat", "paper", 0, group_id="g"))
    store.runs.record(RunRecord("run-b", "other", "late", "paper", 1, group_id="g"))
    assert [r.run_id for r in store.runs.list("toy")] == ["run-a"] == [r.run_id for r in store.runs("toy")]
    assert [r.run_id for r in store.runs.list(group_id="g")] == ["run-a", "run-b"]
    got = store.runs.get("run-b")
    assert got.fusion == "late" and got.to_dict()["run_id"] == "run-b"
