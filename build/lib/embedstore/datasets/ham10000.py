"""HAM10000 (7-class ``dx``), as the ISIC archive / Harvard Dataverse distributes it.

Layout (protocol §1.2)::

    <root>/HAM10000_metadata.csv        lesion_id,image_id,dx,dx_type,age,sex,localization
    <root>/HAM10000_images_part_1/<image_id>.jpg   (and _part_2/)
    <root>/images/<image_id>.jpg                   (the paper's merged folder; also accepted)

The label is ``dx`` (akiec, bcc, bkl, df, mel, nv, vasc); the group of the
``grouped`` split is ``lesion_id`` (one lesion has several photos).

Prompt fields: ``dx_type``, ``age`` (``int(age)`` or "No data reported"),
``sex`` and ``localization`` (the value, or "No data reported" when
missing). The ``default`` prompt leaves out ``dx_type``: follow-up
confirmation is used only for nevi and histology for every melanoma, so the
field nearly gives the label away (protocol §7.2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import InputError
from .base import DatasetRows, Sample, Skipped, abspath, as_float, check_unique, finish, read_csv
from .prompts import resolve_prompt
from .splits import PREDICT_ONLY, grouped_split, paper_split

METADATA = "HAM10000_metadata.csv"
COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
IMAGE_DIRS = ("images", "HAM10000_images_part_1", "HAM10000_images_part_2")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
FIELDS = ("dx_type", "age", "sex", "localization")
#: Columns a metadata file must have; without ``dx`` (and ``lesion_id``/``dx_type``) it is predict-only.
UNLABELLED_COLUMNS = ("image_id", "age", "sex", "localization")
META_TYPES: dict[str, pa.DataType] = {
    "lesion_id": pa.string(), "image_id": pa.string(), "dx": pa.string(), "dx_type": pa.string(),
    "age": pa.float64(), "sex": pa.string(), "localization": pa.string(),
}
NO_DATA = "No data reported"


def read_metadata(path: str | Path):
    """``HAM10000_metadata.csv`` as a polars frame of text columns (ids checked unique; absent label columns null)."""
    import polars as pl

    frame = read_csv(path, required=UNLABELLED_COLUMNS, fix="expected the HAM10000 metadata columns "
                     "lesion_id,image_id,dx,dx_type,age,sex,localization (dx may be absent: predict-only)")
    for col in COLUMNS:
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(col))
    check_unique(frame["image_id"].to_list(), "image_id", path)
    return frame


def prompt_fields(row: dict[str, Any]) -> dict[str, str]:
    """The prompt fields of one metadata row, with the paper's fallbacks.

    Examples
    --------
    >>> prompt_fields({"dx_type": "histo", "age": "80.0", "sex": None, "localization": "scalp"})
    {'dx_type': 'histo', 'age': '80', 'sex': 'No data reported', 'localization': 'scalp'}
    """
    age = as_float(row.get("age"))
    return {
        "dx_type": str(row.get("dx_type")),
        "age": NO_DATA if age is None else str(int(age)),
        "sex": NO_DATA if row.get("sex") is None else str(row["sex"]),
        "localization": NO_DATA if row.get("localization") is None else str(row["localization"]),
    }


def image_index(root: Path) -> dict[str, Path]:
    """``image_id -> file`` for the images under the known image folders."""
    index: dict[str, Path] = {}
    for sub in IMAGE_DIRS:
        folder = root / sub
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.suffix.lower() in IMAGE_EXTS:
                index.setdefault(entry.stem, entry)
    return index


def rows(root: str | Path, *, prompt: str = "default", seed: int = 42, progress: bool = True) -> DatasetRows:
    """Build HAM10000 sample rows from ``root`` (no store involved).

    Parameters
    ----------
    root : path
        Folder with ``HAM10000_metadata.csv`` and the image folder(s).
    prompt : str
        ``paper``, ``default`` or a template file.
    seed : int
        Seed of both splits (the paper's is 42).
    progress : bool

    Returns
    -------
    DatasetRows

    Examples
    --------
    >>> r = rows("../shared/data/ham10000-sample70", progress=False)  # doctest: +SKIP
    >>> r.table.num_rows                                                # doctest: +SKIP
    70
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"HAM10000 root {root} is not a directory; pass the folder holding {METADATA}")
    frame = read_metadata(root / METADATA)
    template = resolve_prompt("ham10000", prompt, FIELDS)
    records = frame.to_dicts()
    notes: list[str] = []
    if all(r["dx"] is None for r in records):  # no labels at all: a predict-only dataset
        notes.append(f"no dx labels: a predict-only dataset (every row in split '{PREDICT_ONLY}')")
        skipped, split_p = [], [PREDICT_ONLY] * len(records)
        split_g = split_p
    else:
        skipped = [Skipped(r["image_id"], str(root / METADATA), "no dx label") for r in records if r["dx"] is None]
        records = [r for r in records if r["dx"] is not None]
        labels = [r["dx"] for r in records]
        split_p = paper_split(labels, seed=seed, notes=notes)
        split_g = grouped_split(labels, [r["lesion_id"] or r["image_id"] for r in records], seed=seed)
    index = image_index(root)
    samples = []
    for r, sp, sg in zip(records, split_p, split_g):
        image = index.get(r["image_id"], root / "images" / f"{r['image_id']}.jpg")
        meta = dict(r, age=as_float(r["age"]))
        samples.append(Sample(sample_id=r["image_id"], image_path=abspath(image),
                              text=template.render(prompt_fields(r)), label=r["dx"],
                              group_id=r["lesion_id"] or r["image_id"], split_paper=sp, split_grouped=sg,
                              meta=meta))
    return finish("ham10000", root, samples, prompt=template, meta_types=META_TYPES, skipped=skipped,
                  notes=notes, progress=progress)
