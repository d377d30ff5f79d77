"""ingest(): real HAM10000 photos into a real on-disk store; idempotent; defects reported."""

from __future__ import annotations

import json

import pytest

from embedstore.datasets import ham10000
from embedstore.errors import InputError
from embedstore.ingest import IngestReport, ingest
from tests.test_datasets_ham10000 import link_ham_copy


def _labels(root):
    return {r["image_id"]: r["dx"] for r in ham10000.read_metadata(root / ham10000.METADATA).to_dicts()}


def test_ingest_sample70_then_rerun_writes_nothing(store, shared_data):
    root = shared_data / "ham10000-sample70"
    report = ingest(store, "ham10000", root, progress=False)
    assert isinstance(report, IngestReport)
    assert (report.dataset, report.table, report.rows_total, report.rows_written) == \
        ("ham10000", "samples__ham10000", 70, 70)
    assert report.version == 1 and report.tag.startswith("ingest-") and store.tags(report.table)[report.tag] == 1
    stored = store.samples("ham10000").to_pylist()
    assert {r["sample_id"]: r["label"] for r in stored} == _labels(root)
    assert sum(sum(c.values()) for c in report.class_counts.values()) == 70
    assert list(report.class_counts) == ["train", "val", "test"]
    assert report.split_counts["paper"] == {"train": 56, "test": 14}
    versions = len(store.versions(report.table))

    again = ingest(store, "ham10000", root, progress=False)
    assert (again.rows_written, again.unchanged, again.version) == (0, 70, 1)
    assert not again.changed and len(store.versions(report.table)) == versions
    json.dumps(again.to_dict())


def test_prompt_change_updates_rows_and_makes_a_version(store, shared_data):
    root = shared_data / "ham10000-sample70"
    first = ingest(store, "ham10000", root, name="ham", progress=False)
    paper = ingest(store, "ham10000", root, name="ham", prompt="paper", progress=False)
    assert (paper.updated, paper.version) == (70, first.version + 1)
    old = store.samples("ham", version=first.version).to_pylist()
    new = store.samples("ham").to_pylist()
    assert {r["prompt_name"] for r in new} == {"paper"}
    assert all(a["text_sha256"] != b["text_sha256"] for a, b in zip(
        sorted(old, key=lambda r: r["sample_id"]), sorted(new, key=lambda r: r["sample_id"])))
    assert all(a["image_sha256"] == b["image_sha256"] for a, b in zip(
        sorted(old, key=lambda r: r["sample_id"]), sorted(new, key=lambda r: r["sample_id"])))


def test_dev270_ingests_all_with_right_labels(store, shared_data):
    root = shared_data / "ham10000-dev270"
    report = ingest(store, "ham10000", root, name="ham-dev270", progress=False)
    assert report.rows_total == report.rows_written == 270 and not report.skipped
    assert {r["sample_id"]: r["label"] for r in store.samples("ham-dev270").to_pylist()} == _labels(root)


def test_defective_images_are_skipped_and_listed(store, shared_data, tmp_path):
    ids = link_ham_copy(shared_data / "ham10000-sample70", tmp_path)
    bad = tmp_path / "images" / f"{ids[0]}.jpg"
    data = bad.resolve().read_bytes()
    bad.unlink()
    bad.write_bytes(data[:3000])
    (tmp_path / "images" / f"{ids[1]}.jpg").unlink()
    (tmp_path / "images" / f"{ids[1]}.jpg").write_bytes(b"")
    (tmp_path / "images" / f"{ids[2]}.jpg").unlink()
    report = ingest(store, "ham10000", tmp_path, progress=False)
    assert report.rows_written == 67
    assert sorted(s.sample_id for s in report.skipped) == sorted(ids[:3])
    assert sorted(store.samples("ham10000")["sample_id"].to_pylist()) == sorted(ids[3:])
    assert [s["sample_id"] for s in report.to_dict()["skipped"]] == [s.sample_id for s in report.skipped]


def test_nothing_valid_is_an_error(store, tmp_path, shared_data):
    (tmp_path / ham10000.METADATA).write_bytes((shared_data / "ham10000-sample70" / ham10000.METADATA).read_bytes())
    with pytest.raises(InputError, match=r"no valid samples .* 70 skipped; e.g. ISIC_\d+: file not found"):
        ingest(store, "ham10000", tmp_path, progress=False)
    assert store.datasets() == []
    with pytest.raises(InputError, match="split 'random'"):
        ingest(store, "ham10000", tmp_path, split="random", progress=False)
