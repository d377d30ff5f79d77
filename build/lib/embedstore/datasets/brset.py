"""BRSET (binary diabetic retinopathy), in the PhysioNet layout.

Layout (protocol §1.1)::

    <root>/labels.csv                   the original PhysioNet labels file
    <root>/fundus_photos/<image_id>.jpg (or images/, the paper's renamed folder)

Labels: ``label`` = ``DR_2`` = 1 if ``DR_ICDR`` > 0 else 0 (the paper's task);
``label_DR_ICDR`` (0-4) and ``label_DR_3`` (ICDR 4 -> 2, 1-3 -> 1, 0 -> 0) are
kept as extra labels. The group of the ``grouped`` split is ``patient_id``;
the ``paper`` split is stratified on ``DR_ICDR`` over images.

Prompt fields, with the paper's quirks (protocol §1.1):

* ``eye`` (exam_eye 1 right, 2 left, else "no eye reported"), ``sex``
  (patient_sex 1 male, 2 female, else "no sex reported");
* ``age``: 'O' replaced by '0' and ',' by '.', then printed as a float
  ("48.0"), or "no age reported";
* ``comorbidities``: "with comorbidities: <raw text>" or "with no
  comorbidities reported";
* ``diabetes_time``: "diabetes diagnosed for <float> years", or "with no
  diabetes duration reported" when missing or 'Não';
* ``insulin``: "not using insulin" only when ``insuline`` is exactly 'no';
  missing values read "using insulin";
* ``optic_disc``, ``vessels``, ``macula`` and the eleven findings
  (``macular_edema`` ... ``other``): 'present' when the value is 1, else
  'absent'. BRSET codes anatomy 1 = normal, so for the anatomy fields
  "present" means "normal"; the ``default`` prompt says ``normal`` /
  ``abnormal`` / ``not reported`` instead (fields ``*_state``).

The co-annotated findings (hemorrhage, macular edema, ...) are in the
``paper`` prompt and in the explicit ``findings`` prompt, not in
``default``: they nearly determine DR (protocol §7.2), so a text model
that reads them partly reads the label (the ingest report warns). ``DR_ICDR``,
``DR_SDRG``, ``diabetic_retinopathy`` and ``hypertensive_retinopathy`` are
never in the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import InputError
from .base import (DatasetRows, Sample, Skipped, abspath, as_float, check_unique, finish, read_csv)
from .prompts import resolve_prompt
from .splits import grouped_split, paper_split

LABELS = "labels.csv"
IMAGE_DIRS = ("fundus_photos", "images")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
ANATOMY = ("optic_disc", "vessels", "macula")
FINDINGS = ("macular_edema", "scar", "nevus", "amd", "vascular_occlusion", "drusens", "hemorrhage",
            "retinal_detachment", "myopic_fundus", "increased_cup_disc", "other")
REQUIRED = ("image_id", "patient_id", "DR_ICDR", "exam_eye", "patient_sex", "patient_age", "comorbidities",
            "diabetes_time_y", "insuline") + ANATOMY + FINDINGS
FIELDS = ("eye", "sex", "age", "comorbidities", "diabetes_time", "insulin") + ANATOMY + FINDINGS \
    + tuple(f"{a}_state" for a in ANATOMY)
#: Metadata columns stored as numbers (the rest of labels.csv is kept as text).
NUMERIC = ("patient_sex", "exam_eye", "optic_disc", "vessels", "macula", "DR_SDRG", "DR_ICDR", "focus",
           "iluminaton", "image_field", "artifacts", "diabetic_retinopathy", "hypertensive_retinopathy") + FINDINGS


def _paper_number(value: Any) -> float | None:
    """The paper's parse: 'O' -> '0', ',' -> '.', then float."""
    if value is None:
        return None
    return as_float(str(value).replace("O", "0").replace(",", "."))


def presence(value: Any) -> str:
    """'present' when the value is 1, else 'absent' (the paper's rule)."""
    return "present" if as_float(value) == 1.0 else "absent"


def prompt_fields(row: dict[str, Any]) -> dict[str, str]:
    """Prompt fields of one ``labels.csv`` row (text cells, ``None`` when missing).

    Examples
    --------
    >>> f = prompt_fields({"exam_eye": "1", "patient_sex": "2", "patient_age": "5O",
    ...     "comorbidities": None, "diabetes_time_y": "Não", "insuline": None, "optic_disc": "1"})
    >>> f["eye"], f["sex"], f["age"], f["comorbidities"], f["diabetes_time"], f["insulin"]
    ('right', 'female', '50.0', 'with no comorbidities reported', 'with no diabetes duration reported', 'using insulin')
    >>> f["optic_disc"], f["optic_disc_state"], f["vessels_state"]
    ('present', 'normal', 'not reported')
    """
    eye = {1.0: "right", 2.0: "left"}.get(as_float(row.get("exam_eye")), "no eye reported")
    sex = {1.0: "male", 2.0: "female"}.get(as_float(row.get("patient_sex")), "no sex reported")
    age = _paper_number(row.get("patient_age"))
    como = row.get("comorbidities")
    dtime = row.get("diabetes_time_y")
    years = None if dtime is None or dtime == "Não" else _paper_number(dtime)
    out = {
        "eye": eye, "sex": sex,
        "age": "no age reported" if age is None else str(age),
        "comorbidities": "with no comorbidities reported" if como is None else f"with comorbidities: {como}",
        "diabetes_time": ("with no diabetes duration reported" if years is None
                          else f"diabetes diagnosed for {years} years"),
        "insulin": "not using insulin" if row.get("insuline") == "no" else "using insulin",
    }
    for name in ANATOMY + FINDINGS:
        out[name] = presence(row.get(name))
    for name in ANATOMY:
        out[f"{name}_state"] = {1.0: "normal", 2.0: "abnormal"}.get(as_float(row.get(name)), "not reported")
    return out


def dr_labels(icdr: int) -> dict[str, str]:
    """The binary, 3-class and ICDR labels of an ICDR grade.

    Examples
    --------
    >>> [dr_labels(g)["DR_3"] for g in range(5)]
    ['0', '1', '1', '1', '2']
    """
    return {"DR_2": str(int(icdr > 0)), "DR_3": str(2 if icdr == 4 else 1 if icdr in (1, 2, 3) else 0),
            "DR_ICDR": str(icdr)}


def find_images(root: Path) -> dict[str, Path]:
    """``image_id -> file`` under ``fundus_photos/`` or ``images/``."""
    index: dict[str, Path] = {}
    for sub in IMAGE_DIRS:
        folder = root / sub
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.suffix.lower() in IMAGE_EXTS:
                    index.setdefault(entry.stem, entry)
                    index.setdefault(entry.name, entry)
    return index


def rows(root: str | Path, *, prompt: str = "default", seed: int = 42, progress: bool = True) -> DatasetRows:
    """Build BRSET sample rows from a PhysioNet-layout ``root`` (no store involved).

    Rows whose ``DR_ICDR`` is missing or not an integer 0-4 are skipped and
    reported. See the module docstring for labels and prompt fields.

    Examples
    --------
    >>> r = rows("data/brset", prompt="paper")       # doctest: +SKIP
    >>> r.table["label_DR_ICDR"][0].as_py()          # doctest: +SKIP
    '0'
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"BRSET root {root} is not a directory; pass the folder holding {LABELS}")
    path = root / LABELS
    frame = read_csv(path, required=REQUIRED, fix="expected the PhysioNet BRSET labels.csv")
    check_unique(frame["image_id"].to_list(), "image_id", path)
    template = resolve_prompt("brset", prompt, FIELDS)
    records, skipped = [], []
    for r in frame.to_dicts():
        grade = as_float(r["DR_ICDR"])
        if grade is None or grade not in (0.0, 1.0, 2.0, 3.0, 4.0):
            skipped.append(Skipped(r["image_id"], str(path), f"DR_ICDR {r['DR_ICDR']!r} is not a grade 0-4"))
            continue
        records.append((r, dr_labels(int(grade))))
    notes: list[str] = []
    split_p = paper_split([lab["DR_ICDR"] for _, lab in records], seed=seed, notes=notes)
    groups = [r["patient_id"] or r["image_id"] for r, _ in records]
    split_g = grouped_split([lab["DR_2"] for _, lab in records], groups, seed=seed)
    index = find_images(root)
    meta_types = {c: (pa.float64() if c in NUMERIC else pa.string()) for c in frame.columns
                  if c not in ("text",) and not c.startswith(("label", "split_"))}
    meta_types["patient_age"] = pa.float64()
    samples = []
    for (r, lab), sp, sg, group in zip(records, split_p, split_g, groups):
        image = index.get(r["image_id"], root / IMAGE_DIRS[0] / f"{r['image_id']}.jpg")
        meta = {c: (as_float(r[c]) if meta_types[c] == pa.float64() else r[c]) for c in meta_types}
        meta["patient_age"] = _paper_number(r["patient_age"])
        samples.append(Sample(sample_id=r["image_id"], image_path=abspath(image),
                              text=template.render(prompt_fields(r)), label=lab["DR_2"],
                              labels={"DR_ICDR": lab["DR_ICDR"], "DR_3": lab["DR_3"]}, group_id=group,
                              split_paper=sp, split_grouped=sg, meta=meta))
    return finish("brset", root, samples, prompt=template, meta_types=meta_types,
                  label_names=("DR_ICDR", "DR_3"), skipped=skipped, notes=notes, progress=progress)
