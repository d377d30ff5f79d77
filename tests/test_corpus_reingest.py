"""Bad-input corpus, re-ingest edits: what a lab does to a dataset between two ingests.

Each item runs the exact CLI command and checks the one-line message with
exit code 1, or the documented behaviour, and that nothing is lost (the
previous version stays readable). The dataset is a 60-row SYNTHETIC
manifest, two rows per patient (column ``group``).

R1 shrinking folder (15 rows curated away): refused with the diff, exit 1,
   nothing written; ``--prune`` then makes the store equal the source in one
   commit, the old version readable.
R2 a previously ingested photo is unreadable now: refused the same way,
   naming it as skipped now.
R3 changed prompt (text template, which changes the table's columns):
   refused with one line unless ``--prune`` (one overwrite commit); then the
   old text vectors are stale, so ``train`` refuses with one line naming the
   fix, and ``doctor`` reports them.
R4 changed label: the row is updated, the old label still readable at the
   old version, no ``split_grouped`` moves.
R5 patient moved to another group: the row takes its new group's split,
   every other row keeps its split, no group in two splits.
"""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import ModelIdentity, Store
from embedstore.maintenance import doctor
from embedstore.reingest import split_conflicts
from tests.helpers import invoke_cli, one_line_error

TABLE = "samples__syn"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from embedstore.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("reingest"), n=60).manifest


def variant(manifest, name: str, edit) -> str:
    """A copy of the manifest next to it (same image folder), edited line by line; returns its file name."""
    lines = manifest.read_text().splitlines()
    out = manifest.with_name(name)
    out.write_text("\n".join([lines[0]] + [x for x in (edit(i, ln) for i, ln in enumerate(lines[1:])) if x]) + "\n")
    return out.name


def ingest_cmd(uri, manifest, name: str, *extra):
    return invoke_cli(uri, "ingest", "manifest", "--root", manifest.parent, "--manifest", name, "--name", "syn",
                  "--id-column", "sample_id", "--group-column", "group", "--no-progress", *extra)


@pytest.fixture
def uri(tmp_path, source):
    uri = tmp_path / "store"
    assert ingest_cmd(uri, source, source.name).exit_code == 0
    return uri


def test_r1_shrinking_folder_is_refused_with_the_diff_then_pruned(uri, source):
    curated = variant(source, "curated.csv", lambda i, ln: ln if i < 45 else None)
    line = one_line_error(ingest_cmd(uri, source, curated),
                          "15 stored sample(s) are not in the source", "0 added, 15 removed (e.g. synthetic-",
                          "Pass --prune", "nothing was written")
    assert "Traceback" not in line
    store = Store(uri)
    assert store.samples("syn").num_rows == 60 and store.version(TABLE) == 1
    pruned = ingest_cmd(uri, source, curated, "--prune")
    assert pruned.exit_code == 0 and "45 valid" in pruned.output and "15 removed" in pruned.output
    assert store.samples("syn").num_rows == 45 and store.version(TABLE) == 2
    assert store.samples("syn", version=1).num_rows == 60  # nothing lost


def test_r2_a_photo_unreadable_now_is_refused_and_named_as_skipped(uri, source, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(source.parent, copy)
    first = sorted((copy / "images").iterdir())[0]
    first.write_bytes(first.read_bytes()[:40])  # truncated
    result = invoke_cli(uri, "ingest", "manifest", "--root", copy, "--manifest", source.name, "--name", "syn",
                    "--id-column", "sample_id", "--group-column", "group", "--no-progress")
    one_line_error(result, "1 stored sample(s) are not in the source (1 of them skipped now as unreadable",
                   "Pass --prune")
    assert Store(uri).version(TABLE) == 1


def test_r3_changed_prompt_makes_the_old_text_vectors_stale_and_train_says_so(uri, source):
    store = Store(uri)
    rows = store.samples("syn")
    model = ModelIdentity("hf:toy-text", "constructed", ("text",), {"text": 4}, pooling="toy")
    vecs = np.random.default_rng(0).normal(size=(rows.num_rows, 4)).astype(np.float32)
    store.write_embeddings("syn", model, "text", rows["sample_id"].to_pylist(), vecs, rows["text_sha256"].to_pylist())
    one_line_error(ingest_cmd(uri, source, source.name, "--text-template", "Site: {site}."),
                   "the source's columns differ from the stored samples table (new ['meta_text']",
                   "Pass --prune", "nothing was written")
    assert store.version(TABLE) == 1
    changed = ingest_cmd(uri, source, source.name, "--text-template", "Site: {site}.", "--prune")
    assert changed.exit_code == 0 and store.version(TABLE) == 2, changed.output
    assert store.samples("syn")["text"][0].as_py().startswith("Site: ")
    one_line_error(invoke_cli(uri, "train", "syn", "--text-model", "hf:toy-text", "--fusion", "text", "--mode", "paper",
                          "--epochs", "1"),
                   "has no sample with current embeddings", "are stale", "re-run 'embedstore extract syn'")
    rep = doctor(store)
    assert [(p.check, p.count) for p in rep.problems] == [("stale_embedding", 60)]
    assert store.samples("syn", version=1)["text_sha256"] == rows["text_sha256"]  # nothing lost


def test_r4_changed_label_updates_one_row_and_moves_no_split(uri, source):
    store = Store(uri)
    before = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    target = sorted(before)[0]
    old = before[target]["label"]
    new = next(r["label"] for r in before.values() if r["label"] != old)
    edited = variant(source, "relabel.csv",
                     lambda i, ln: ln.replace(f",{old},", f",{new},", 1) if ln.startswith(target + ",") else ln)
    result = ingest_cmd(uri, source, edited)
    assert result.exit_code == 0 and "0 new" in result.output  # split_paper is the paper's fresh per-image split
    after = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    old_rows = {r["sample_id"]: r for r in store.samples("syn", version=1).to_pylist()}
    assert after[target]["label"] == new and old_rows[target]["label"] == old  # nothing lost
    assert all(after[s]["split_grouped"] == r["split_grouped"] for s, r in before.items())


def test_r5_patient_moved_takes_the_new_groups_split(uri, source):
    store = Store(uri)
    before = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    a, b = next((x, y) for x in before.values() for y in before.values()
                if x["split_grouped"] != y["split_grouped"])
    moved = variant(source, "moved.csv", lambda i, ln: ln.replace(a["group_id"], b["group_id"])
                    if ln.startswith(a["sample_id"] + ",") else ln)
    result = ingest_cmd(uri, source, moved)
    assert result.exit_code == 0 and "1 updated" in result.output
    after = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    assert after[a["sample_id"]]["split_grouped"] == b["split_grouped"]
    assert all(after[s]["split_grouped"] == r["split_grouped"] for s, r in before.items() if s != a["sample_id"])
    assert split_conflicts(store.samples("syn")) == {} and doctor(store).ok
