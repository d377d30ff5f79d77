"""BRSET adapter on a fixture in the exact PhysioNet labels.csv schema, with real fundus photos.

BRSET itself is credentialed; the photos here are real RetinaMNIST fundus
images (DeepDRiD, with their real DR grades) upsampled to 224x224.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from embedstore.datasets import brset

#: labels.csv columns of PhysioNet BRSET 1.0.0, in order.
COLUMNS = ["image_id", "patient_id", "camera", "patient_age", "comorbidities", "diabetes_time_y", "insuline",
           "patient_sex", "exam_eye", "diabetes", "nationality", "optic_disc", "vessels", "macula", "DR_SDRG",
           "DR_ICDR", "focus", "iluminaton", "image_field", "artifacts", "diabetic_retinopathy",
           "macular_edema", "scar", "nevus", "amd", "vascular_occlusion", "hypertensive_retinopathy", "drusens",
           "hemorrhage", "retinal_detachment", "myopic_fundus", "increased_cup_disc", "other", "quality"]
N_IMAGES = 60

#: Hand-written attributes of the first six rows (patients 1-3, both eyes each).
HAND = [
    dict(patient_age="57", comorbidities="diabetes1, SAH", diabetes_time_y="10", insuline="yes",
         patient_sex="2", exam_eye="1"),
    dict(patient_age="57", comorbidities="diabetes1, SAH", diabetes_time_y="10", insuline="yes",
         patient_sex="2", exam_eye="2", macula="2", macular_edema="1", hemorrhage="1"),
    dict(patient_age="", comorbidities="", diabetes_time_y="Não", insuline="", patient_sex="1", exam_eye="1"),
    dict(patient_age="", comorbidities="", diabetes_time_y="Não", insuline="no", patient_sex="1", exam_eye="2",
         optic_disc="2", drusens="1", other="1"),
    dict(patient_age="6O", comorbidities="", diabetes_time_y="2,5", insuline="no", patient_sex="", exam_eye=""),
    dict(patient_age="6O", comorbidities="SAH", diabetes_time_y="2,5", insuline="no", patient_sex="",
         exam_eye="2", vessels="2", increased_cup_disc="1"),
]
_ALL_ABSENT = ("Conditions include macular edema: absent, scar: absent, nevus: absent, amd: absent, vascular "
               "occlusion: absent, drusens: absent, hemorrhage: absent, retinal detachment: absent, myopic "
               "fundus: absent, increased cup disc ratio: absent, and other conditions: absent.")
EXPECTED_PAPER = [
    "An image from the right eye of a female patient, aged 57.0 years, with comorbidities: diabetes1, SAH, "
    "diabetes diagnosed for 10.0 years, using insulin. The optic disc is present, vessels are present, and the "
    "macula is present. " + _ALL_ABSENT,
    "An image from the left eye of a female patient, aged 57.0 years, with comorbidities: diabetes1, SAH, "
    "diabetes diagnosed for 10.0 years, using insulin. The optic disc is present, vessels are present, and the "
    "macula is absent. Conditions include macular edema: present, scar: absent, nevus: absent, amd: absent, "
    "vascular occlusion: absent, drusens: absent, hemorrhage: present, retinal detachment: absent, myopic "
    "fundus: absent, increased cup disc ratio: absent, and other conditions: absent.",
    "An image from the right eye of a male patient, aged no age reported years, with no comorbidities reported, "
    "with no diabetes duration reported, using insulin. The optic disc is present, vessels are present, and "
    "the macula is present. " + _ALL_ABSENT,
    "An image from the left eye of a male patient, aged no age reported years, with no comorbidities reported, "
    "with no diabetes duration reported, not using insulin. The optic disc is absent, vessels are present, and "
    "the macula is present. Conditions include macular edema: absent, scar: absent, nevus: absent, amd: "
    "absent, vascular occlusion: absent, drusens: present, hemorrhage: absent, retinal detachment: absent, "
    "myopic fundus: absent, increased cup disc ratio: absent, and other conditions: present.",
    "An image from the no eye reported eye of a no sex reported patient, aged 60.0 years, with no "
    "comorbidities reported, diabetes diagnosed for 2.5 years, not using insulin. The optic disc is present, "
    "vessels are present, and the macula is present. " + _ALL_ABSENT,
    "An image from the left eye of a no sex reported patient, aged 60.0 years, with comorbidities: SAH, "
    "diabetes diagnosed for 2.5 years, not using insulin. The optic disc is present, vessels are absent, and "
    "the macula is present. Conditions include macular edema: absent, scar: absent, nevus: absent, amd: "
    "absent, vascular occlusion: absent, drusens: absent, hemorrhage: absent, retinal detachment: absent, "
    "myopic fundus: absent, increased cup disc ratio: present, and other conditions: absent.",
]


def make_brset(shared_data: Path, root: Path, n: int = N_IMAGES) -> list[dict[str, str]]:
    """Write ``labels.csv`` + ``fundus_photos/`` under ``root``; returns the rows written."""
    from PIL import Image

    data = np.load(shared_data / "retinamnist" / "retinamnist.npz")
    images, grades = data["train_images"][:n], data["train_labels"][:n, 0]
    rng = np.random.default_rng(0)
    (root / "fundus_photos").mkdir(parents=True)
    rows = []
    for i in range(n):
        image_id = f"img{i + 1:05d}"
        Image.fromarray(images[i]).resize((224, 224), Image.BICUBIC).save(root / "fundus_photos" / f"{image_id}.jpg")
        row = {c: "0" for c in COLUMNS}
        row.update(image_id=image_id, patient_id=str(i // 2 + 1), camera="Canon CR", nationality="Brazil",
                   patient_age=str(int(rng.integers(20, 90))), comorbidities="", diabetes_time_y="",
                   insuline=str(rng.choice(["yes", "no"])), patient_sex=str(rng.integers(1, 3)),
                   exam_eye=str(i % 2 + 1), diabetes="yes", optic_disc="1", vessels="1", macula="1",
                   DR_SDRG=str(int(grades[i])), DR_ICDR=str(int(grades[i])), focus="1", iluminaton="1",
                   image_field="1", artifacts="1", diabetic_retinopathy=str(int(grades[i] > 0)),
                   quality="Adequate")
        if i < len(HAND):
            row.update(HAND[i])
        rows.append(row)
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)  # CRLF line ends, quoted commas
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture
def brset_root(shared_data, tmp_path):
    root = tmp_path / "brset"
    return root, make_brset(shared_data, root)


def test_paper_prompt_reproduces_the_quirks(brset_root):
    root, _ = brset_root
    built = brset.rows(root, prompt="paper", progress=False)
    text = dict(zip(built.table["sample_id"].to_pylist(), built.table["text"].to_pylist()))
    for i, expected in enumerate(EXPECTED_PAPER):
        assert text[f"img{i + 1:05d}"] == expected, i


def test_default_prompt_says_normal_abnormal_for_anatomy(brset_root):
    root, _ = brset_root
    built = brset.rows(root, progress=False)
    text = dict(zip(built.table["sample_id"].to_pylist(), built.table["text"].to_pylist()))
    assert "The optic disc is abnormal, vessels are normal, and the macula is normal." in text["img00004"]
    assert built.table["prompt_name"][0].as_py() == "default"
    for t in text.values():
        assert "DR_ICDR" not in t and "retinopathy" not in t


def test_labels_splits_and_patient_groups(brset_root):
    root, rows = brset_root
    built = brset.rows(root, progress=False)
    assert built.table.num_rows == N_IMAGES and not built.skipped
    got = {r["sample_id"]: r for r in built.table.to_pylist()}
    for row in rows:
        r, grade = got[row["image_id"]], int(row["DR_ICDR"])
        assert r["label"] == str(int(grade > 0))
        assert r["label_DR_ICDR"] == str(grade)
        assert r["label_DR_3"] == {0: "0", 1: "1", 2: "1", 3: "1", 4: "2"}[grade]
        assert r["group_id"] == row["patient_id"]
        assert r["image_ref"].endswith(f"fundus_photos/{row['image_id']}.jpg")
    assert got["img00005"]["patient_age"] == 60.0
    where: dict[str, set[str]] = {}
    for r in got.values():
        where.setdefault(r["group_id"], set()).add(r["split_grouped"])
    assert all(len(s) == 1 for s in where.values()), "a patient crosses splits"
    assert set(Counter(r["split_grouped"] for r in got.values())) == {"train", "val", "test"}
    assert Counter(r["split_paper"] for r in got.values()) == {"train": 48, "test": 12}
    again = brset.rows(root, progress=False).table
    assert again.equals(built.table), "rows are not deterministic"


def test_images_folder_and_bad_grades(brset_root):
    root, rows = brset_root
    (root / "fundus_photos").rename(root / "images")
    rows[6]["DR_ICDR"] = "7"
    rows[7]["DR_ICDR"] = ""
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    built = brset.rows(root, progress=False)
    assert built.table.num_rows == N_IMAGES - 2
    assert [s.sample_id for s in built.skipped] == ["img00007", "img00008"]
    assert all("not a grade" in s.reason for s in built.skipped)
    assert "/images/img00001.jpg" in built.table["image_ref"][0].as_py()


def test_default_prompt_drops_the_findings_and_ingest_warns_on_prompts_that_carry_them(brset_root, store):
    from embedstore.ingest import ingest

    root, _ = brset_root
    default = brset.rows(root, progress=False).table["text"].to_pylist()
    assert all("hemorrhage" not in t and "macular edema" not in t for t in default)
    findings = brset.rows(root, prompt="findings", progress=False).table["text"].to_pylist()
    assert all(t.startswith(d) and "hemorrhage: " in t for d, t in zip(default, findings))
    assert not any("label-related" in n for n in ingest(store, "brset", root, progress=False).notes)
    warned = ingest(store, "brset", root, name="brset_f", prompt="findings", progress=False).notes
    assert any("label-related field(s) ['macular_edema'" in n for n in warned)
