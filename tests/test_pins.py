"""What pins a version (user tags, runs, leases; not bookkeeping tags), and maintenance that shrinks the store."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore.leases import hold
from embedstore.maintenance import cleanup, compact, doctor
from embedstore.pins import is_bookkeeping_tag
from embedstore.schema import embeddings_table, samples_table
from embedstore.versions import new_run_tag
from tests.helpers import sample_rows, toy_model

IMAGE, TEXT = toy_model(16, "image", "hf:img"), toy_model(16, "text", "hf:txt")
N = 60


def _disk(store) -> int:
    total = 0
    for dirpath, _, files in os.walk(store.uri):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def _write(store, seed: int, tag: str | None = None):
    ids = [f"s{i:02d}" for i in range(N)]
    rows = sample_rows(ids, labels=[str(i % 3) for i in range(N)], splits=["train"] * 36 + ["val"] * 12 + ["test"] * 12)
    store.write_samples("toy", rows, tag=tag)
    rng = np.random.default_rng(seed)
    for model, col in ((IMAGE, "image_sha256"), (TEXT, "text_sha256")):
        for chunk in range(3):  # extract commits in chunks: several fragments per table
            part = slice(chunk * 20, (chunk + 1) * 20)
            store.write_embeddings("toy", model, model.modalities[0], ids[part], rng.normal(size=(20, 16)),
                                   rows[col].to_pylist()[part], tag=tag)
    return ids


def test_bookkeeping_tags_do_not_pin_user_tags_runs_and_leases_do(store):
    from embedstore.trainers.train import train

    image_table = embeddings_table(IMAGE.key, "image", 16)
    _write(store, 0, tag=new_run_tag("extract"))
    run = train(store, "toy", image_model=IMAGE.key, text_model=TEXT.key, epochs=1, save_heads=False).runs[0]
    run_version = run.table_versions[image_table]
    _write(store, 1, tag=new_run_tag("extract"))  # a re-extract: new versions, the run's now old
    store.tag(image_table, "paper-v1", 2)
    leased = store.version(image_table) - 1
    lease = hold(store, {image_table: leased})
    tags = store.tags(image_table)
    assert any(is_bookkeeping_tag(t) for t in tags)
    dry = {r.table: r for r in cleanup(store, 0, dry_run=True)}[image_table]
    assert dry.bytes_removed > 0 and store.tags(image_table) == tags  # dry run: what it would free, nothing gone
    assert set(dry.kept) == {2, run_version, leased}
    assert dry.kept[2] == ["tag paper-v1"] and dry.kept[run_version][0].startswith("1 run (")
    assert dry.kept[leased][0].startswith(f"lease pid {os.getpid()}@")
    before = {v.version: store.read(image_table, version=v.version) for v in store.versions(image_table)}
    res = {r.table: r for r in cleanup(store, 0)}[image_table]
    assert (res.kept_tagged, res.kept_referenced, res.kept_leased) == ((2,), (run_version,), (leased,))
    assert res.bytes_removed == dry.bytes_removed
    left = [v.version for v in store.versions(image_table)]
    assert left == sorted({2, run_version, leased, max(before)})
    for v in left:  # what is kept reads back exactly
        assert store.read(image_table, version=v).equals(before[v])
    # the bookkeeping tags went with their versions; the one on the latest version stays
    assert all(v in left for v in store.tags(image_table).values()) and "paper-v1" in store.tags(image_table)
    lease.release()
    res = {r.table: r for r in cleanup(store, 0)}[image_table]
    assert res.removed == (leased,) and res.kept_leased == ()
    assert doctor(store).ok


def test_compact_then_cleanup_never_leaves_the_store_larger(store):
    from embedstore.trainers.train import train

    _write(store, 0, tag=new_run_tag("extract"))
    for seed in range(3):  # runs pin the embeddings as they are now; the runs table gets many small writes
        train(store, "toy", image_model=IMAGE.key, text_model=TEXT.key, epochs=1, seed=seed)
    store.tag(samples_table("toy"), "paper-v1")
    size = _disk(store)
    pinned = {t: store.read(t) for t in store.embedding_tables()}
    out = {r.table: r for r in compact(store)}
    for t in store.embedding_tables():  # every fragment of these is pinned by the runs: left as it is
        assert out[t].skipped_pinned >= 1 and out[t].version_after == out[t].version_before
    assert out["runs"].fragments_after < out["runs"].fragments_before
    cleanup(store, 0)
    assert _disk(store) <= size
    for t, data in pinned.items():
        assert store.read(t).equals(data)
    assert doctor(store).ok


def test_info_reports_bytes_fragments_and_what_pins_old_versions(store):
    from embedstore.trainers.train import train

    image_table = embeddings_table(IMAGE.key, "image", 16)
    _write(store, 0)
    train(store, "toy", image_model=IMAGE.key, text_model=TEXT.key, epochs=1, save_heads=False)
    _write(store, 1)
    store.tag(image_table, "paper-v1", 1)
    tables = {t["table"]: t for t in store.info()["tables"]}
    t = tables[image_table]
    assert t["fragments"] >= 3 and t["versions"] == store.version(image_table) and t["bytes"] > t["old_bytes"] > 0
    assert t["pinned_by"][1] == ["tag paper-v1"] and any(r[0].startswith("1 run (") for v, r in t["pinned_by"].items())
    r = CliRunner().invoke(cli, ["--store", store.uri, "info"], obj={})
    assert r.exit_code == 0, r.output
    assert "pinned_by" in r.output and "v1: tag paper-v1" in r.output and "old_MiB" in r.output
    j = CliRunner().invoke(cli, ["--store", store.uri, "info", "--json"], obj={})
    assert json.loads(j.output)["bytes"] == sum(x["bytes"] for x in tables.values())
    dry = CliRunner().invoke(cli, ["--store", store.uri, "cleanup", "--older-than", "0", "--dry-run"], obj={})
    assert dry.exit_code == 0 and "would free" in dry.output and "kept (and why)" in dry.output
    assert "tag paper-v1" in dry.output and store.tags(image_table)["paper-v1"] == 1


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
def test_cleanup_refuses_an_age_that_is_not_a_number_of_days(store, bad):
    from embedstore.errors import InputError

    _write(store, 0)
    with pytest.raises(InputError, match="older_than_days= must be a number of days >= 0"):
        cleanup(store, bad)
