"""HAM10000 adapter: real metadata and photos, the paper's prompt, defects reported."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from embedstore.datasets import ham10000
from embedstore.datasets.prompts import TEMPLATES, resolve_prompt
from embedstore.keys import sha256_file, sha256_text

PAPER = {
    "ISIC_0027419": "Patient diagnosed via histo. Age: 80 years. Sex: male. Localization: scalp.",
    "ISIC_0024693": "Patient diagnosed via follow_up. Age: 45 years. Sex: female. Localization: upper extremity.",
    "ISIC_0031825": "Patient diagnosed via confocal. Age: 65 years. Sex: female. Localization: face.",
    "ISIC_0025906": "Patient diagnosed via histo. Age: 0 years. Sex: female. Localization: back.",
    "ISIC_0033391": "Patient diagnosed via consensus. Age: No data reported years. Sex: unknown. "
                    "Localization: unknown.",
}


@pytest.fixture
def full_rows(shared_data):
    frame = ham10000.read_metadata(shared_data / "ham10000" / "HAM10000_metadata.csv")
    return {r["image_id"]: r for r in frame.to_dicts()}


def _render(name: str, row: dict) -> str:
    return resolve_prompt("ham10000", name, ham10000.FIELDS).render(ham10000.prompt_fields(row))


def test_paper_prompt_matches_hand_written_sentences(full_rows):
    for image_id, expected in PAPER.items():
        assert _render("paper", full_rows[image_id]) == expected


def test_default_prompt_never_contains_dx_type(full_rows):
    assert len(full_rows) == 10015
    for row in full_rows.values():
        text = _render("default", row)
        assert row["dx_type"] not in text
        assert "diagnosed" not in text
    assert _render("default", full_rows["ISIC_0033391"]) == (
        "Dermatoscopic image of a skin lesion. Age: No data reported years. Sex: unknown. Localization: unknown.")


def test_sample70_rows_have_labels_hashes_and_groups(shared_data):
    root = shared_data / "ham10000-sample70"
    meta = {r["image_id"]: r for r in ham10000.read_metadata(root / ham10000.METADATA).to_dicts()}
    built = ham10000.rows(root, prompt="paper", progress=False)
    rows = built.table.to_pylist()
    assert len(rows) == 70 and not built.skipped
    assert {r["sample_id"] for r in rows} == set(meta)
    for r in rows:
        m = meta[r["sample_id"]]
        assert r["label"] == m["dx"] and r["group_id"] == m["lesion_id"]
        assert os.path.isabs(r["image_ref"]) and Path(r["image_ref"]).is_file()
        assert r["image_sha256"] == sha256_file(r["image_ref"])
        assert r["text_sha256"] == sha256_text(r["text"])
        assert r["prompt_name"] == "paper" and r["prompt_template"] == TEMPLATES["ham10000"]["paper"]
        assert r["split_paper"] in ("train", "test") and r["split_grouped"] in ("train", "val", "test")
    by_id = {r["sample_id"]: r for r in rows}
    assert by_id["ISIC_0025554"]["text"] == "Patient diagnosed via histo. Age: 75 years. Sex: male. Localization: ear."
    assert by_id["ISIC_0025554"]["age"] == 75.0
    assert sorted({r["label"] for r in rows}) == list(ham10000.CLASSES)


def link_ham_copy(src: Path, dst: Path, folders=("images",)) -> list[str]:
    """Symlink the photos of ``src`` into ``dst`` (split over ``folders``); returns the ids."""
    shutil.copy(src / ham10000.METADATA, dst / ham10000.METADATA)
    photos = sorted((src / "images").iterdir())
    for i, photo in enumerate(photos):
        folder = dst / folders[i % len(folders)]
        folder.mkdir(exist_ok=True)
        (folder / photo.name).symlink_to(photo)
    return [p.stem for p in photos]


def test_distributed_part_folders_are_found(shared_data, tmp_path):
    link_ham_copy(shared_data / "ham10000-sample70", tmp_path, ("HAM10000_images_part_1", "HAM10000_images_part_2"))
    built = ham10000.rows(tmp_path, progress=False)
    assert built.table.num_rows == 70 and not built.skipped
    assert any("HAM10000_images_part_2" in ref for ref in built.table["image_ref"].to_pylist())


def test_corrupt_empty_and_missing_images_are_skipped_and_reported(shared_data, tmp_path):
    ids = link_ham_copy(shared_data / "ham10000-sample70", tmp_path)
    corrupt, empty, missing = ids[0], ids[1], ids[2]
    real = (tmp_path / "images" / f"{corrupt}.jpg").resolve().read_bytes()
    (tmp_path / "images" / f"{corrupt}.jpg").unlink()
    (tmp_path / "images" / f"{corrupt}.jpg").write_bytes(real[: len(real) * 2 // 5])  # truncated copy
    (tmp_path / "images" / f"{empty}.jpg").unlink()
    (tmp_path / "images" / f"{empty}.jpg").write_bytes(b"")
    (tmp_path / "images" / f"{missing}.jpg").unlink()
    built = ham10000.rows(tmp_path, progress=False)
    assert built.table.num_rows == 67
    assert set(built.table["sample_id"].to_pylist()) == set(ids[3:])
    reasons = {s.sample_id: s.reason for s in built.skipped}
    assert set(reasons) == {corrupt, empty, missing}
    assert "truncated" in reasons[corrupt] or "corrupt" in reasons[corrupt]
    assert "0 bytes" in reasons[empty]
    assert "not found" in reasons[missing]
    assert all(s.path.endswith(f"{s.sample_id}.jpg") for s in built.skipped)
