"""Any image-text-label dataset described by a CSV or Parquet manifest.

One row per sample. Options name the columns: ``id_column`` (default ``id``,
or ``sample_id`` when the manifest has that and no ``id``: the layout the
demo's synthetic data and exported samples tables use),
``image_column`` (paths, relative ones resolved against ``image_root`` or the
manifest's folder), ``label_column``, and the text: ``text_column`` (used
as is) or ``text_template``, a format string over the manifest's columns
(e.g. ``"Age: {age}. Site: {site}."``) given inline or as a file path.
Missing values render as "No data reported". Without either, a ``text``
column is used when present; with no text at all the dataset is
**image-only**, and a manifest without an ``image`` column (and no
``image_column`` given) is **text-only** (see :mod:`embedstore.modalities`).

Splits: ``paper`` is a stratified 80/20 over rows, or, with
``split_column``, the manifest's own split (values train/val/test;
training/valid/validation/dev/testing are understood), as the paper did for
benchmarks with official splits. ``grouped`` is 70/10/20 with groups from
``group_column`` (default: every row its own group).

Every value is read as written (a CSV's cells are text: ids ``007`` and ``7``
stay distinct, a zip code keeps its leading zero in the prompt). Other columns
are kept as metadata under a storage name Lance can hold (``Patient.Age`` is
stored as ``Patient_Age``; the header as written stays in the field's
metadata, and a template may use either), as text unless every value is an
exact number or the type is declared with ``column_types=`` (see
:mod:`embedstore.datasets.columns`); names that clash with the samples
table's own columns get a ``meta_`` prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa

from ..errors import InputError
from ..modalities import NO_TEXT_PROMPT
from ..schema import SAMPLE_CORE
from .base import (DatasetRows, Sample, Skipped, abspath, check_columns, check_unique, delimiter_name,
                   detect_delimiter, finish, read_csv)
from .columns import ORIGINAL, TYPES, column_type, convert, parse_types, storage_names
from .prompts import PromptTemplate, read_template_file
from .splits import PREDICT_ONLY, grouped_split, paper_split

NO_DATA = "No data reported"
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}
_RESERVED = set(SAMPLE_CORE) | {"group_id"}
_TYPE_NAMES = {t: n for n, t in TYPES.items()}
#: The prompt of an image-only dataset: no text rendered (``text`` stays null).
NO_TEXT = PromptTemplate(NO_TEXT_PROMPT, "")


def find_manifest(root: Path, manifest: str | None) -> Path:
    """The manifest file: ``root`` itself, ``manifest`` (relative to ``root``), or the only CSV/Parquet in ``root``."""
    if root.is_file():
        return root
    if not root.is_dir():
        raise InputError(f"manifest root {root} does not exist; pass a folder or the manifest file as root=")
    if manifest:
        path = Path(manifest) if Path(manifest).is_absolute() else root / manifest
        if not path.is_file():
            raise InputError(f"manifest {path}: file not found; check manifest=")
        return path
    found = sorted(p for p in root.iterdir() if p.suffix.lower() in (".csv", ".parquet"))
    if len(found) != 1:
        names = [p.name for p in found] or "none"
        raise InputError(f"manifest root {root}: found {names} CSV/Parquet files; name one with manifest=")
    return found[0]


def read_manifest(path: Path, delimiter: str = "auto"):
    """A manifest as a polars frame: a CSV as written (every cell text), a Parquet file as typed by its writer."""
    import polars as pl

    if path.suffix.lower() == ".parquet":
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars/arrow raise several types
            raise InputError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]}); re-export it") from None
    return read_csv(path, delimiter=delimiter)


def _cell(value: Any) -> str:
    return NO_DATA if value is None else str(value)


def _fields(record: dict[str, Any], names: dict[str, str]) -> dict[str, str]:
    """A row's prompt fields, under each column's header as written and under its storage name.

    A header as written wins over another column's storage name (``a_b`` is the
    column ``a_b``, not ``a.b`` stored as ``a_b_2``... nor the reverse).
    """
    out = {k: _cell(v) for k, v in record.items()}
    out.update({names[k]: out[k] for k in record if k in names and names[k] not in record})
    return out


def _text_source(prompt: str, text_column: str | None, text_template: str | None,
                 columns: list[str], path: Path, has_image: bool = True,
                 aliases: Sequence[str] = ()) -> tuple[str | None, PromptTemplate | None]:
    """``(text column or None, template)``; the template renders when the column is None.

    ``(None, None)``: no text at all, an image-only dataset (when ``has_image``).
    """
    if prompt == "paper":
        raise InputError("a manifest has no 'paper' prompt: pass text_column= or text_template= "
                         "(or prompt=FILE with a template)")
    if prompt != "default":
        text_template = prompt
    if text_column and text_template:
        raise InputError("give either text_column= or text_template=, not both")
    if text_template:
        if Path(text_template).is_file():
            tmpl = PromptTemplate(f"file:{Path(text_template).name}", read_template_file(text_template))
        else:
            tmpl = PromptTemplate("template", text_template)
        return None, tmpl.check(list(columns) + [a for a in aliases if a not in columns],
                                f" (columns of {path.name})")
    column = text_column or ("text" if "text" in columns else None)
    if column is None:
        if has_image:
            return None, None  # an image-only dataset (see embedstore.modalities)
        raise InputError(f"{path}: no image column and no text: pass image_column=COLUMN, text_column="
                         f"COLUMN or text_template='format string' (columns: {columns})")
    return column, PromptTemplate(f"column:{column}", "{" + column + "}")


def rows(root: str | Path, *, prompt: str = "default", seed: int = 42, progress: bool = True,
         manifest: str | None = None, id_column: str | None = None, image_column: str = "image",
         label_column: str = "label", text_column: str | None = None, text_template: str | None = None,
         group_column: str | None = None, split_column: str | None = None, delimiter: str = "auto",
         image_root: str | None = None, column_types: Mapping[str, str] | Sequence[str] | None = None
         ) -> DatasetRows:
    """Build sample rows from a CSV/Parquet manifest (no store involved).

    ``delimiter="auto"`` reads a ``;``-, tab- or ``|``-separated file whose
    header has no comma. ``column_types`` declares metadata column types
    (``{"age": "int"}`` or ``["age=int"]``; ``str``, ``int``, ``float``,
    ``bool``); see :mod:`embedstore.datasets.columns` for the others.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> d = tempfile.mkdtemp()
    >>> Image.new("RGB", (8, 8)).save(os.path.join(d, "a.png"))
    >>> _ = open(os.path.join(d, "m.csv"), "w").write("id,image,label,age\\na,a.png,yes,41\\n")
    >>> r = rows(d, text_template="Age: {age}.", progress=False)
    >>> r.table["text"].to_pylist(), r.table["label"].to_pylist(), r.table["age"].to_pylist()
    (['Age: 41.'], ['yes'], [41])
    >>> _ = open(os.path.join(d, "m.csv"), "w").write("id,image,label,Patient.Zip\\n007,a.png,yes,02139\\n")
    >>> r = rows(d, text_template="Zip: {Patient.Zip}.", progress=False)
    >>> r.table["sample_id"].to_pylist(), r.table["text"].to_pylist(), r.table["Patient_Zip"].to_pylist()
    (['007'], ['Zip: 02139.'], ['02139'])
    """
    root = Path(root)
    path = find_manifest(root, manifest)
    notes: list[str] = []
    if delimiter == "auto" and path.suffix.lower() != ".parquet" and path.is_file():
        delimiter = detect_delimiter(path)
        if delimiter != ",":
            notes.append(f"{path.name}: read as '{delimiter_name(delimiter)}'-separated (its header has no ','); "
                         "pass delimiter= to choose")
    frame = read_manifest(path, delimiter)
    if id_column is None:
        id_column = "sample_id" if "id" not in frame.columns and "sample_id" in frame.columns else "id"
    unlabelled = label_column == "label" and "label" not in frame.columns  # predict-only dataset
    no_image = image_column == "image" and "image" not in frame.columns  # a text-only dataset
    used = [id_column] + ([] if no_image else [image_column]) + ([] if unlabelled else [label_column]) \
        + [c for c in (group_column, split_column, text_column) if c]
    check_columns(frame.columns, used, path, "name them with id_column=, image_column=, label_column=, "
                  "text_column=, group_column= or split_column=")
    skip_cols = {id_column, image_column, label_column, text_column}
    meta_cols = [c for c in frame.columns if c not in skip_cols]
    names = storage_names(meta_cols, _RESERVED, ("split_", "label_", "meta_"))
    text_col, template = _text_source(prompt, text_column, text_template, frame.columns, path, not no_image,
                                      aliases=list(names.values()))
    records = frame.to_dicts()
    ids = [None if r[id_column] is None else str(r[id_column]) for r in records]
    check_unique(ids, id_column, path)
    base = Path(image_root) if image_root else path.parent
    skipped, kept = [], []
    for sid, r in zip(ids, records):
        if not unlabelled and r[label_column] is None:
            skipped.append(Skipped(sid, str(path), f"no value in label column '{label_column}'"))
        elif not no_image and r[image_column] is None:
            skipped.append(Skipped(sid, str(path), f"no value in image column '{image_column}'"))
        elif text_col and (r[text_col] is None or str(r[text_col]).strip() == ""):
            skipped.append(Skipped(sid, str(path), f"no text in column '{text_col}'"))
        else:
            kept.append((sid, r))
    labels = [None if unlabelled else str(r[label_column]) for _, r in kept]
    if template is None:
        notes.append("no text column or template: an image-only dataset (text heads and fusion do not apply)")
    if no_image:
        notes.append(f"no '{image_column}' column: a text-only dataset (image heads and fusion do not apply)")
    if unlabelled:
        notes.append(f"no '{label_column}' column: a predict-only dataset (every row in split '{PREDICT_ONLY}')")
        split_p = split_g = [PREDICT_ONLY] * len(kept)
    elif split_column:
        split_p = []
        for sid, r in kept:
            value = SPLIT_NAMES.get(str(r[split_column]).strip().lower())
            if value is None:
                raise InputError(f"{path}: split column '{split_column}' has {r[split_column]!r} for id {sid}; "
                                 "use train, val or test")
            split_p.append(value)
    else:
        split_p = paper_split(labels, seed=seed, notes=notes)
    groups = [str(r[group_column]) if group_column and r[group_column] is not None else sid for sid, r in kept]
    if not unlabelled:
        split_g = grouped_split(labels, groups, seed=seed)
    declared = parse_types(column_types, meta_cols, path)
    meta_types, meta_fields = {}, []
    for col in meta_cols:
        if col == text_col:
            continue
        typ = column_type(frame.get_column(col).to_list(), declared.get(col))
        meta_types[names[col]] = TYPES[typ]
        meta_fields.append(pa.field(names[col], TYPES[typ], metadata={ORIGINAL: col}))
    samples = []
    sid_row = {sid: i for i, sid in enumerate(ids, start=1)}
    for (sid, r), label, sp, sg, group in zip(kept, labels, split_p, split_g, groups):
        image = None if no_image else Path(str(r[image_column]))
        image = image if image is None or image.is_absolute() else base / image
        text = str(r[text_col]) if text_col else template.render(_fields(r, names)) \
            if template is not None else None
        meta = {}
        for field in meta_fields:
            col = field.metadata[ORIGINAL.encode()].decode()
            meta[field.name] = convert(r[col], _TYPE_NAMES[field.type], f"{path} data row {sid_row[sid]} "
                                                                        f"(id {sid}) column '{col}'")
        samples.append(Sample(sample_id=sid, image_path=None if image is None else abspath(image), text=text,
                              label=label,
                              group_id=group, split_paper=sp, split_grouped=sg, meta=meta))
    return finish("manifest", path.parent, samples, prompt=template or NO_TEXT, meta_types=meta_types,
                  skipped=skipped, notes=notes, progress=progress, meta_fields=meta_fields)
