"""Stores made by embedstore 0.1 (no declared keys): upgrade in place, audit, repair."""

from __future__ import annotations

import pyarrow as pa
import pytest

from embedstore import Store
from embedstore.maintenance import doctor
from embedstore.schema import declared_key
from embedstore.upgrade import upgrade
from tests.release_store import ReleaseStore


@pytest.fixture(scope="module")
def release_store(tmp_path_factory):
    """A 0.1 store: toy pairs, a recorded training run, a user tag; returns (uri, run, state before)."""
    from embedstore.pairs import toy_pairs
    from embedstore.trainers.train import train

    uri = str(tmp_path_factory.mktemp("release") / "store")
    old = ReleaseStore(uri)
    image, text = toy_pairs(old, "toy", n=20)
    old.tag("samples__toy", "paper-v1")
    run = train(old, "toy", image_model=image, text_model=text, epochs=2, seeds=1,
                save_heads=False).runs[0]  # 0.1 kept no heads
    state = {t: {"versions": [v.version for v in old.versions(t)], "tags": old.tags(t),
                 "rows": {v.version: old.read(t, version=v.version).to_pylist() for v in old.versions(t)}}
             for t in old.list_tables()}
    return uri, run, state


def _copy(uri, tmp_path):
    import shutil

    shutil.copytree(uri, tmp_path / "store")
    return Store(tmp_path / "store")


@pytest.mark.slow
def test_upgrade_declares_every_key_and_keeps_versions_tags_and_run_reexecution(release_store, tmp_path):
    from embedstore.trainers.train import rerun

    uri, run, before = release_store
    store = _copy(uri, tmp_path)
    report = doctor(store)
    assert {p.check for p in report.problems} == {"declared_key"}
    assert {p.table for p in report.problems} == set(before) and "embedstore upgrade" in report.problems[0].message
    results = upgrade(store)
    # one commit makes a nullable key non-nullable, one declares it; older versions are untouched
    assert all(r.upgraded and r.version_after - r.version_before in (1, 2) for r in results)
    assert all(declared_key(store.open_table(t).schema) for t in before)
    for table, old in before.items():
        assert [v.version for v in store.versions(table)][:len(old["versions"])] == old["versions"]
        assert store.tags(table) == old["tags"]
        for version, rows in old["rows"].items():
            assert store.read(table, version=version).to_pylist() == rows, (table, version)
    assert store.read("samples__toy", version="paper-v1").num_rows == 20
    assert rerun(store, run.run_id).metrics == run.metrics
    assert doctor(store).ok and not any(r.upgraded for r in upgrade(store))


@pytest.mark.slow
def test_first_write_to_an_old_table_upgrades_it(release_store, tmp_path):
    uri, _run, before = release_store
    store = _copy(uri, tmp_path)
    table = next(t for t in before if t.startswith("emb__image"))
    rows = store.read(table).slice(0, 2)
    res = store.upsert(table, rows, key="row_key", schema=store.open_table(table).schema)
    assert res.updated == 2 and res.version == before[table]["versions"][-1] + 2  # 1 upgrade commit, 1 write
    assert declared_key(store.open_table(table).schema) == "row_key"


def test_repair_keeps_the_newest_row_per_key_in_one_commit_and_cli_reports_it(tmp_path):
    from click.testing import CliRunner

    from embedstore.cli.main import cli

    old = ReleaseStore(tmp_path / "store")
    old.upsert("models", pa.table({"model_key": ["a", "b"], "model_id": ["x", "y"]}), key="model_key")
    old.db.open_table("models").add(pa.table({"model_key": ["a"], "model_id": ["newest"]}))  # as a 0.1 race left it
    store = Store(old.uri)
    dup = [p for p in doctor(store).problems if p.check == "unique_keys"]
    assert dup and "embedstore repair" in dup[0].message
    runner = CliRunner()
    dry = runner.invoke(cli, ["--store", store.uri, "repair", "--dry-run"], obj={})
    assert dry.exit_code == 0 and "would remove 1 row(s)" in dry.output and store.version("models") == 2
    done = runner.invoke(cli, ["--store", store.uri, "repair"], obj={})
    assert done.exit_code == 0 and "removed 1 row(s)" in done.output, done.output
    assert store.version("models") == 3
    assert sorted(store.read("models").to_pylist(), key=lambda r: r["model_key"]) == [
        {"model_key": "a", "model_id": "newest"}, {"model_key": "b", "model_id": "y"}]
    up = runner.invoke(cli, ["--store", store.uri, "upgrade"], obj={})
    assert up.exit_code == 0 and "upgraded 1 table(s)" in up.output
    assert runner.invoke(cli, ["--store", store.uri, "doctor"], obj={}).exit_code == 0
