"""Re-ingest: a curated (shrunk) source never leaves ghost rows, and a group never sits in two splits."""

from __future__ import annotations

import pyarrow as pa
import pytest

from embedstore.errors import InputError
from embedstore.ingest import ingest
from embedstore.maintenance import doctor
from embedstore.reingest import split_conflicts
from tests.helpers import sample_rows
from tests.test_datasets_ham10000 import link_ham_copy


@pytest.fixture(scope="module")
def synthetic60(tmp_path_factory):
    """A 60-row manifest, 2 rows per patient (column ``group``), and a 45-row curated copy."""
    from embedstore.synthetic import make_synthetic

    data = make_synthetic(tmp_path_factory.mktemp("syn"), n=60)
    lines = data.manifest.read_text().splitlines(keepends=True)
    curated = data.manifest.with_name("curated.csv")
    curated.write_text(lines[0] + "".join(lines[1:46]))  # drops rows 45..59: patient 22 keeps one of two rows
    return data.manifest, curated


def _ingest(store, manifest, **kw):
    return ingest(store, "manifest", manifest.parent, name="syn", manifest=manifest.name, id_column="sample_id",
                  group_column="group",
                  progress=False, **kw)


def test_shrinking_ham_reingest_refuses_with_the_diff_then_prunes_in_one_commit(store, shared_data, tmp_path):
    full, curated = tmp_path / "full", tmp_path / "curated"
    full.mkdir(), curated.mkdir()
    ids = link_ham_copy(shared_data / "ham10000-sample70", full)
    link_ham_copy(shared_data / "ham10000-sample70", curated)
    for sid in ids[:20]:
        (curated / "images" / f"{sid}.jpg").unlink()
    first = ingest(store, "ham10000", full, progress=False)
    with pytest.raises(InputError, match=r"20 stored sample\(s\) are not in the source .*0 added, 20 removed "
                                         r"\(e\.g\. ISIC_.*Pass prune=True"):
        ingest(store, "ham10000", curated, progress=False)
    assert store.samples("ham10000").num_rows == 70 and store.version("samples__ham10000") == first.version

    pruned = ingest(store, "ham10000", curated, progress=False, prune=True)
    assert (pruned.removed, pruned.version, pruned.rows_total) == (20, first.version + 1, 50)
    assert sorted(store.samples("ham10000")["sample_id"].to_pylist()) == sorted(ids[20:])
    assert store.samples("ham10000", version=first.version).num_rows == 70  # the old version stays readable
    again = ingest(store, "ham10000", curated, progress=False, prune=True)
    assert (again.rows_written, again.version) == (0, pruned.version)


def test_curated_manifest_keeps_every_patient_in_one_split(store, synthetic60):
    full, curated = synthetic60
    _ingest(store, full)
    before = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    with pytest.raises(InputError, match="15 stored sample"):
        _ingest(store, curated)
    report = _ingest(store, curated, prune=True)
    rows = store.samples("syn")
    assert rows.num_rows == 45 and report.removed == 15
    assert split_conflicts(rows) == {}
    for r in rows.to_pylist():  # a stored patient keeps its split
        assert r["split_grouped"] == before[r["sample_id"]]["split_grouped"]
    assert doctor(store).ok


def test_write_samples_refuses_a_group_in_two_splits(store):
    rows = sample_rows(["a", "b", "c"]).append_column("split_grouped", pa.array(["train", "train", "test"]))
    rows = rows.append_column("group_id", pa.array(["p1", "p1", "p2"]))
    store.write_samples("ds", rows)
    moved = rows.slice(1, 1).set_column(rows.schema.get_field_index("split_grouped"), "split_grouped",
                                        pa.array(["test"]))
    with pytest.raises(InputError, match=r"1 group\(s\) in more than one split_grouped value \(e\.g\. p1 in "
                                         r"test/train\)"):
        store.write_samples("ds", moved)
    assert store.samples("ds")["split_grouped"].to_pylist() == ["train", "train", "test"]
    assert store.write_samples("ds", moved.slice(0, 1), prune=True).deleted == 2  # alone, 'b' may move


def test_patient_moved_to_another_group_takes_that_groups_split(store, synthetic60, tmp_path):
    full, _ = synthetic60
    _ingest(store, full)
    stored = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    a, b = next((x, y) for x in stored.values() for y in stored.values()
                if x["split_grouped"] != y["split_grouped"])
    lines = [ln if not ln.startswith(a["sample_id"] + ",") else ln.replace(a["group_id"], b["group_id"])
             for ln in full.read_text().splitlines()]
    moved = full.with_name("moved.csv")
    moved.write_text("\n".join(lines) + "\n")
    report = _ingest(store, moved)
    now = {r["sample_id"]: r for r in store.samples("syn").to_pylist()}
    assert report.updated == 1 and now[a["sample_id"]]["group_id"] == b["group_id"]
    assert now[a["sample_id"]]["split_grouped"] == b["split_grouped"]
    assert all(now[s]["split_grouped"] == r["split_grouped"] for s, r in stored.items() if s != a["sample_id"])
    assert split_conflicts(store.samples("syn")) == {}


@pytest.mark.slow
def test_a_run_pinned_before_a_prune_and_a_prompt_change_reexecutes_exactly(store):
    from embedstore.pairs import toy_pairs
    from tests.test_snapshot import rewrite_texts
    from embedstore.trainers.train import rerun, train

    img, txt = toy_pairs(store, "toy", n=60)
    first = train(store, "toy", image_model=img, text_model=txt, mode="paper", epochs=3).runs[0]
    rows = store.samples("toy")
    store.write_samples("toy", rows.slice(0, 40), prune=True)
    rewrite_texts(store, n=10)
    assert store.samples("toy").num_rows == 40
    again = rerun(store, first.run_id)
    assert again.metrics == first.metrics and again.table_versions == first.table_versions


def test_keep_missing_adds_a_part_to_the_dataset(store, synthetic60):
    full, curated = synthetic60
    _ingest(store, curated)
    part = full.with_name("rest.csv")
    lines = full.read_text().splitlines(keepends=True)
    part.write_text(lines[0] + "".join(lines[46:]))
    with pytest.raises(InputError, match="keep_missing=True to keep them"):
        _ingest(store, part)
    with pytest.raises(InputError, match="pass one of the two"):
        _ingest(store, part, prune=True, keep_missing=True)
    _ingest(store, part, keep_missing=True)
    assert store.samples("syn").num_rows == 60 and split_conflicts(store.samples("syn")) == {}
