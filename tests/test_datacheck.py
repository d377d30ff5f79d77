"""``check``, ``drift``, their records and the runs they flag, on a constructed store with planted problems.

Real LanceDB on disk, real scikit-learn and cleanlab; the vectors are constructed (class centres plus
noise), so every planted problem is known: a near copy across splits, an exact copy (same content hash)
across splits, a group in two splits of ``split_paper``, flipped labels, and a metadata column that
gives the label away and is in the prompt. The acceptance numbers on real photos are in
``tests/test_datacheck_accept.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import invoke_cli, one_line_error, toy_model

N = 150
DIM = 16
FLIPPED = [20, 41, 62, 83]


def _write(store, name: str = "toy", *, shift: float = 0.0, seed: int = 0):
    """The constructed dataset ``name``; returns ``(model, ids)``."""
    from embedstore.keys import sha256_text
    from embedstore.synthetic import sample_table

    rng = np.random.default_rng(seed)
    labels = np.array(["a", "b", "c"])[np.arange(N) % 3]
    centres = rng.standard_normal((3, DIM)) * 3.0
    vecs = centres[np.arange(N) % 3] + rng.standard_normal((N, DIM)) + shift
    ids = [f"{name}-{i:03d}" for i in range(N)]
    hashes = [sha256_text(f"{name}-img-{i}") for i in range(N)]
    paper = np.where(np.arange(N) % 5 == 0, "test", "train").astype(object)
    grouped = paper.copy()
    groups = [f"g{i}" for i in range(N)]
    given = labels.copy().astype(object)
    if shift == 0.0:  # the planted problems
        vecs[100] = vecs[5] + 0.001 * rng.standard_normal(DIM)   # a near copy of row 5 ...
        paper[100] = grouped[100] = "test" if paper[5] == "train" else "train"  # ... in the other split
        given[100] = given[5]
        vecs[101], hashes[101] = vecs[6], hashes[6]              # an exact copy (same content hash) of row 6
        paper[101] = grouped[101] = "test"
        given[101] = given[6]
        groups[11] = groups[10]                                  # one lesion photographed twice ...
        paper[10], paper[11] = "train", "test"                   # ... split apart by the photo-level split
        grouped[10] = grouped[11] = "train"
        for i in FLIPPED:                                        # wrong labels
            given[i] = {"a": "b", "b": "c", "c": "a"}[labels[i]]
    via = np.where(given == "a", "follow_up", np.where(np.arange(N) % 2, "histo", "consensus"))
    rows = sample_table(ids, [f"seen via {v}" for v in via], given.tolist(), prompt=("paper", "Seen via {via}."),
                        image_refs=[f"/nowhere/{i}.jpg" for i in ids], image_hashes=hashes,
                        splits={"paper": paper.tolist(), "grouped": grouped.tolist()},
                        extra={"group_id": groups, "via": via.tolist()})
    store.write_samples(name, rows)
    model = toy_model(dim=DIM)
    store.write_embeddings(name, model, "image", ids, vecs.astype(np.float32), hashes)
    return model, ids


@pytest.fixture
def toy(store):
    model, ids = _write(store)
    return store, model, ids


def test_check_finds_each_planted_problem(toy):
    from embedstore.trainers.checks import check

    store, model, ids = toy
    rep = check(store, "toy", k=3)
    near = {(p["a"], p["b"]): p for p in rep.near_duplicates}
    assert ("toy-005", "toy-100") in near and near[("toy-005", "toy-100")]["leak_columns"]
    assert any(e["sample_ids"] == ["toy-006", "toy-101"] and e["leak_columns"] for e in rep.exact_duplicates)
    assert [(g["split_column"], g["group"]) for g in rep.group_leaks] == [("split_paper", "g10")]
    top = {r["sample_id"] for r in rep.label_ranking[:len(FLIPPED)]}
    assert {ids[i] for i in FLIPPED} <= top
    assert all(r["issue"] for r in rep.label_ranking[:len(FLIPPED)])
    via = next(s for s in rep.shortcuts if s["column"] == "via")
    assert via["shortcut"] and via["in_prompt"] and via["rule"]["value"] == "follow_up"
    assert rep.prompt_shortcuts == {"via": ["Seen via {via}."]}
    assert rep.counts["group_leaks"] == 1 and rep.counts["exact_duplicate_leaks"] == 1
    assert rep.table_versions == {"emb__image__" + model.key + f"__{DIM}": 1, "samples__toy": 1}


def test_a_second_check_with_nothing_changed_computes_nothing(toy):
    from embedstore.datacheck.check import run_checks
    from embedstore.datacheck.records import CHECKS
    from embedstore.trainers.oof import out_of_fold

    store, model, ids = toy
    calls = []

    def probe(*args, **kwargs):
        calls.append(1)
        return out_of_fold(*args, **kwargs)

    first = run_checks(store, "toy", probabilities=probe, probe={"k": 3})
    version = store.version(CHECKS)
    again = run_checks(store, "toy", probabilities=probe, probe={"k": 3})
    assert (first.cached, again.cached, len(calls)) == (False, True, 1)
    assert again.check_id == first.check_id and store.version(CHECKS) == version
    assert again.to_dict() == {**first.to_dict(), "cached": True}
    # a changed label is a new samples version: the check runs again, under a new key
    rows = store.samples("toy").to_pylist()
    rows[0]["label"] = "c"
    import pyarrow as pa

    store.write_samples("toy", pa.Table.from_pylist(rows, schema=store.samples("toy").schema))
    third = run_checks(store, "toy", probabilities=probe, probe={"k": 3})
    assert (third.cached, len(calls)) == (False, 2) and third.check_id != first.check_id
    # other settings are another check too
    assert run_checks(store, "toy", probabilities=probe, probe={"k": 4}).cached is False


def test_runs_trained_on_flagged_rows_are_named(toy):
    from embedstore.datacheck.records import flagged_runs
    from embedstore.trainers.checks import check
    from embedstore.trainers.train import train

    store, model, ids = toy
    run = train(store, "toy", image_model=model.key, fusion="linear", mode="paper", save_heads=False).runs[0]
    assert flagged_runs(store, "toy") == {}
    check(store, "toy", k=3)
    reasons = flagged_runs(store, "toy")[run.run_id][0]["reasons"]
    # a paper-split run reads the split_paper leaks and the wrong labels; the split_grouped-only findings are not its
    assert reasons["group leak"] == 2 and reasons["label issue"] >= len(FLIPPED)
    assert reasons["near-duplicate leak"] == 2 and reasons["exact duplicate leak"] == 2
    assert "shortcut in prompt" not in reasons  # an image-only run: the prompt's shortcut is not in its inputs
    text = invoke_cli(store.uri, "runs", "toy", "--each")
    assert text.exit_code == 0 and "group leak 2" in text.output and "label issue" in text.output
    listed = json.loads(invoke_cli(store.uri, "runs", "toy", "--json").output)
    assert listed[0]["check_flags"][0]["reasons"]["group leak"] == 2


def test_check_and_drift_commands_print_text_and_json(toy):
    store, model, ids = toy
    _write(store, "clinic2", shift=1.5, seed=0)
    res = invoke_cli(store.uri, "check", "toy", "--folds", "3", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["counts"]["group_leaks"] == 1 and data["cached"] is False
    again = invoke_cli(store.uri, "check", "toy", "--folds", "3")
    assert again.exit_code == 0 and "reused: nothing changed" in again.output
    assert "groups in two splits" in again.output and "WARNING: column 'via'" in again.output
    drift = invoke_cli(store.uri, "drift", "toy", "clinic2", "--permutations", "20", "--json")
    assert drift.exit_code == 0, drift.output
    found = json.loads(drift.output)["results"][0]
    assert found["drift"] and found["domain_classifier"]["auc_interval"][0] > 0.55
    same = invoke_cli(store.uri, "drift", "train", "test", "--dataset", "toy", "--by", "split_grouped",
                      "--permutations", "20")
    assert same.exit_code == 0 and "no" in same.output.split("\n")[4], same.output


def test_bad_input_is_one_line(toy):
    from embedstore.keys import sha256_text

    store, model, ids = toy
    one_line_error(invoke_cli(store.uri, "check", "nope"), "nope")
    one_line_error(invoke_cli(store.uri, "drift", "a", "b", "--by", "site"), "--dataset")
    other = toy_model(dim=DIM, name="hf:other")
    store.write_embeddings("toy", other, "image", ids, np.zeros((N, DIM), np.float32),
                           [sha256_text(f"toy-img-{i}") for i in range(N)])
    one_line_error(invoke_cli(store.uri, "check", "toy"), "2 models", "--image-model")


def test_explore_without_the_extra_names_it_in_one_line(toy):
    store, model, ids = toy
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'embedding_atlas':\n"
               "            raise ModuleNotFoundError(name)\n"
               "sys.meta_path.insert(0, Block())\n"
               "from embedstore.cli.main import cli\n"
               f"cli(['--store', {str(store.uri)!r}, 'explore', 'toy'], obj={{}})\n")
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0] == "Error: embedding-atlas is not installed: pip install 'embedstore[explore]'"


def test_the_report_has_a_data_checks_section(toy, tmp_path):
    from embedstore.report import write_report
    from embedstore.trainers.checks import check

    store, model, ids = toy
    before = write_report(store, "toy", tmp_path / "a.html", gap=False)
    assert "embedstore check toy" in open(before.path).read()
    check(store, "toy", k=3)
    page = open(write_report(store, "toy", tmp_path / "b.html", gap=False).path).read()
    assert "<h2>Data checks</h2>" in page and "Most suspect labels" in page and "Near-duplicates across splits" in page
    assert "Shortcut: column <code>via</code>" in page


def test_another_head_gives_the_probabilities_under_its_own_key(toy):
    from embedstore.trainers.checks import check

    store, model, ids = toy
    linear = check(store, "toy", k=3)
    mlp = check(store, "toy", k=3, head="image")
    assert mlp.check_id != linear.check_id and mlp.settings["labels"]["head"] == "image"
    assert len(mlp.label_ranking) == N and all(0.0 <= r["quality"] <= 1.0 for r in mlp.label_ranking)
    ranks = {r["sample_id"]: r["rank"] for r in mlp.label_ranking}
    assert np.median([ranks[ids[i]] for i in FLIPPED]) < N / 4  # the wrong labels rank among the suspects
