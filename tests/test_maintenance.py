"""compact / cleanup / doctor against real on-disk LanceDB stores, API and CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore.keys import sha256_text
from embedstore.maintenance import cleanup, compact, doctor
from embedstore.schema import ALIGNMENTS, MODELS, embeddings_table, samples_table
from tests.helpers import sample_rows, toy_model

MODEL = toy_model(4, "image", "hf:toy/enc")


def healthy(store, n=6):
    ids = [f"s{i}" for i in range(n)]
    rows = sample_rows(ids)
    store.write_samples("toy", rows)
    vecs = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    store.write_embeddings("toy", MODEL, "image", ids, vecs, rows["image_sha256"].to_pylist())
    return ids


def emb_table():
    return embeddings_table(MODEL.key, "image", 4)


def run_cli(store, *args):
    return CliRunner().invoke(cli, ["--store", store.uri, *args], obj={})


# -- compact ---------------------------------------------------------------
def test_compact_merges_fragments_and_keeps_content(store):
    healthy(store, 2)
    for i in range(5):
        store.write_samples("toy", sample_rows([f"x{i}"], labels=[str(i)]))
    name = samples_table("toy")
    before = store.read(name).sort_by("sample_id")
    res = compact(store, name)
    assert len(res) == 1 and res[0].fragments_before >= 6 and res[0].fragments_after == 1
    assert res[0].version_after > res[0].version_before
    assert store.read(name).sort_by("sample_id").equals(before)
    # the pre-compaction version is still readable and identical
    assert store.read(name, version=res[0].version_before).sort_by("sample_id").equals(before)


def test_compact_all_tables_via_cli(store):
    healthy(store)
    store.write_samples("toy", sample_rows(["late"]))
    r = run_cli(store, "compact", "--json")
    assert r.exit_code == 0, r.output
    tables = {row["table"]: row for row in json.loads(r.output)}
    assert set(tables) == set(store.list_tables())
    assert all(row["fragments_after"] <= 1 for row in tables.values())
    bad = run_cli(store, "compact", "no_such_table")
    assert bad.exit_code == 1 and "no_such_table" in bad.output and "embedstore info" in bad.output


# -- cleanup ---------------------------------------------------------------
def _versions(store, name):
    return [v.version for v in store.versions(name)]


def test_cleanup_keeps_tagged_and_latest_and_removes_the_rest(store):
    name = "t"
    contents = {}
    for i in range(6):
        r = store.upsert(name, pa.table({"k": ["a", f"b{i}"], "x": [i, i]}), key="k")
        contents[r.version] = store.read(name, version=r.version).sort_by("k")
    store.tag(name, "paper-v2", 2)
    store.tag(name, "keep4", 4)
    dry = cleanup(store, 0, dry_run=True)
    assert dry[0].removed == (1, 3, 5) and _versions(store, name) == [1, 2, 3, 4, 5, 6]
    assert cleanup(store, 30)[0].removed == ()  # nothing is 30 days old
    res = cleanup(store, 0)
    assert res[0].removed == (1, 3, 5) and res[0].kept_tagged == (2, 4)
    assert _versions(store, name) == [2, 4, 6]
    for v in (2, 4, 6):
        assert store.read(name, version=v).sort_by("k").equals(contents[v])
    assert store.read(name, version="paper-v2").sort_by("k").equals(contents[2])


def _snapshot(store):
    """Every version of every table, as sorted Arrow tables."""
    from embedstore.maintenance import key_column

    return {(t, v): store.read(t, version=v).sort_by(key_column(t) or "k")
            for t in store.list_tables() for v in _versions(store, t)}


@pytest.mark.slow
def test_tagged_and_run_referenced_versions_survive_compact_and_cleanup(store):
    from embedstore.runs import referenced_versions
    from embedstore.trainers.train import rerun, train

    image, text = toy_model(4, "image", "hf:img"), toy_model(4, "text", "hf:txt")
    ids = [f"s{i:02d}" for i in range(40)]
    rows = sample_rows(ids, labels=[str(i % 2) for i in range(40)],
                       splits=["train"] * 24 + ["val"] * 8 + ["test"] * 8)
    rng = np.random.default_rng(0)

    def write_vectors():
        for model, col in ((image, "image_sha256"), (text, "text_sha256")):
            store.write_embeddings("toy", model, model.modalities[0], ids, rng.normal(size=(40, 4)),
                                   rows[col].to_pylist())

    store.write_samples("toy", rows)
    write_vectors()
    run = train(store, "toy", image_model=image.key, text_model=text.key, epochs=2).runs[0]
    for i in range(3):  # later versions of every table; the run pinned the first ones
        store.write_samples("toy", sample_rows([f"late{i}"]))
        write_vectors()
    name = samples_table("toy")
    store.tag(name, "paper-split", 2)
    store.tag(embeddings_table(image.key, "image", 4), "img-v3", 3)
    compact(store)
    protected = {(t, v) for t, vs in referenced_versions(store).items() for v in vs}
    protected |= {(t, v) for t in store.list_tables() for v in store.tags(t).values()}
    assert {t for t, _ in protected} >= {name, embeddings_table(image.key, "image", 4)}
    before = _snapshot(store)
    results = {r.table: r for r in cleanup(store, 0)}
    after = _snapshot(store)
    removed = {(t, v) for t, r in results.items() for v in r.removed}
    assert removed and not removed & protected
    assert set(after) == set(before) - removed
    for key in protected:
        assert after[key].equals(before[key]), key
    for t in store.list_tables():  # latest versions are untouched too
        latest = max(_versions(store, t))
        assert after[(t, latest)].equals(before[(t, latest)])
    assert results[name].kept_referenced == (1,) and results[name].kept_tagged == (2,)
    again = rerun(store, run.run_id)  # the run still re-executes from its pinned versions
    assert (again.metrics["accuracy"], again.metrics["macro_f1"]) == (run.metrics["accuracy"], run.metrics["macro_f1"])
    assert doctor(store).ok


def test_cleanup_rejects_negative_age_with_cli_error(store):
    healthy(store)
    r = run_cli(store, "cleanup", "--older-than", "-1")
    assert r.exit_code == 1 and "--older-than" in r.output and len(r.output.strip().splitlines()) == 1
    r = run_cli(store, "cleanup", "--older-than", "0")
    assert r.exit_code == 0, r.output
    assert "removed" in r.output


# -- doctor ----------------------------------------------------------------
def test_doctor_clean_store_passes_api_and_cli(store):
    healthy(store)
    rep = doctor(store)
    assert rep.ok and rep.tables == 3 and rep.rows == 6 + 6 + 1, rep.summary()
    r = run_cli(store, "doctor")
    assert r.exit_code == 0 and "no problems" in r.output


def test_doctor_finds_duplicate_keys(store):
    healthy(store)
    # what a racing, unlocked merge_insert leaves behind: the same key twice
    store.db.open_table(samples_table("toy")).add(sample_rows(["s1"]))
    rep = doctor(store)
    assert [(p.check, p.table, p.count) for p in rep.problems] == [("unique_keys", samples_table("toy"), 1)]
    assert "s1" in rep.problems[0].message
    r = run_cli(store, "doctor", "--json")
    assert r.exit_code == 1 and json.loads(r.output)["ok"] is False


def test_doctor_finds_embeddings_without_samples(store):
    healthy(store)
    store.write_embeddings("other", MODEL, "image", ["z1", "z2"], np.ones((2, 4)), ["h1", "h2"])
    store.db.open_table(samples_table("toy")).delete("sample_id = 's3'")
    rep = doctor(store)
    got = sorted((p.check, p.count, p.examples) for p in rep.problems)
    assert got == [("embedding_has_sample", 1, ("s3",)), ("embedding_has_sample", 2, ("z1", "z2"))]
    r = run_cli(store, "doctor")
    assert r.exit_code == 1 and "without a sample" in r.output and "ingest dataset 'other'" in r.output


def test_doctor_finds_unregistered_models_and_alignments(store):
    healthy(store)
    store.write_embeddings("toy", MODEL, "image", ["s0"], np.ones((1, 4)), [sha256_text("img-s0")],
                           alignment_key="gap-abc")
    store.register_alignment("gap-used", "mean_shift", {"lam": 1}, np.zeros(4))
    store.write_embeddings("toy", MODEL, "image", ["s1"], np.ones((1, 4)), [sha256_text("img-s1")],
                           alignment_key="gap-used")
    store.db.open_table(MODELS).delete(f"model_key = '{MODEL.key}'")
    rep = doctor(store)
    got = {(p.check, p.table): p for p in rep.problems}
    assert set(got) == {("model_registered", emb_table()), ("alignment_registered", emb_table())}
    assert got[("model_registered", emb_table())].examples == (MODEL.key,)
    assert got[("alignment_registered", emb_table())].examples == ("gap-abc",)
    assert store.has_table(ALIGNMENTS)
    assert run_cli(store, "doctor").exit_code == 1


def test_doctor_finds_runs_naming_unregistered_models_or_alignments(store):
    from embedstore.runs import RunRecord, new_run_id, record_run

    healthy(store)
    rec = RunRecord(run_id=new_run_id(), dataset="toy", fusion="early", mode="honest", seed=0,
                    model_keys={"image": MODEL.key, "text": "feedfacefeedface"},
                    alignment_keys={"image": "none", "text": "gap-gone"})
    record_run(store, rec)
    rep = doctor(store)
    got = sorted((p.check, p.table, p.examples) for p in rep.problems)
    assert got == [("alignment_registered", "runs", (f"{rec.run_id}:gap-gone",)),
                   ("model_registered", "runs", (f"{rec.run_id}:feedfacefeedface",))]


def test_doctor_reports_stale_embeddings_and_a_group_in_two_splits_with_the_fix(store):
    ids = healthy(store)
    rows = sample_rows(ids[:2], image_hashes=["new-bytes-0", "new-bytes-1"])  # the photos were re-exported
    store.write_samples("toy", rows)
    # a group in two splits, as an unchecked writer (or a store from before the check) leaves it
    leaky = sample_rows(["g0", "g1"]).append_column("group_id", pa.array(["p1", "p1"]))
    store.db.create_table(samples_table("grp"), leaky.append_column("split_grouped", pa.array(["test", "train"])))
    rep = doctor(store)
    # the raw create_table also leaves the key undeclared (its own check, fixed by 'embedstore upgrade')
    assert [p.table for p in rep.problems if p.check == "declared_key"] == [samples_table("grp")]
    got = {p.check: p for p in rep.problems if p.check != "declared_key"}
    assert set(got) == {"stale_embedding", "group_split"}
    assert got["stale_embedding"].count == 2 and "re-run 'embedstore extract toy'" in got["stale_embedding"].message
    assert got["group_split"].examples == ("p1 in test/train",) and "re-ingest" in got["group_split"].message
    r = run_cli(store, "doctor")
    assert r.exit_code == 1 and "[stale_embedding]" in r.output and "[group_split]" in r.output
