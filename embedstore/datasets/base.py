"""What every adapter shares: reading tables, checking images, building rows.

An adapter turns a dataset root into :class:`Sample` objects (id, image
path, rendered text, label, splits, metadata) and hands them to
:func:`finish`, which decode-checks every image with
:func:`embedstore.images.read_image`, hashes the bytes it decoded, and assembles the Arrow
table that :meth:`embedstore.store.Store.write_samples` stores. A sample
whose image is missing, empty or unreadable is left out and listed in
:attr:`DatasetRows.skipped`; nothing is dropped silently.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import pyarrow as pa

from ..errors import InputError
from ..images import join_ref, read_image
from ..keys import sha256_text
from .prompts import PromptTemplate

#: Cells read as missing, as pandas ``read_csv`` does (the paper's code used pandas).
NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_OTHER_DELIMITERS = (";", "\t", "|")


class Skipped(NamedTuple):
    """A sample left out of the ingest, and why."""

    sample_id: str
    path: str
    reason: str


@dataclass
class Sample:
    """One sample row before its image is checked."""

    sample_id: str
    image_path: str | None
    text: str | None
    label: str
    group_id: str
    split_paper: str
    split_grouped: str
    fragment: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def image_ref(self) -> str:
        """The path plus its ``#bands=...`` fragment, as :func:`load_image` reads it (``None``: no image)."""
        return None if self.image_path is None else join_ref(self.image_path, self.fragment)


@dataclass(frozen=True)
class DatasetRows:
    """Sample rows built from a dataset root (no store involved).

    Attributes
    ----------
    kind : str
        Adapter kind (``ham10000``, ``brset``, ``satellitebench``, ``manifest``).
    root : str
        Absolute dataset root.
    table : pyarrow.Table
        Rows ready for :meth:`~embedstore.store.Store.write_samples`.
    skipped : tuple of Skipped
        Samples left out (missing/empty/corrupt image, no label...).
    prompt : PromptTemplate
    candidates : int
        Samples found in ``root`` (``table.num_rows + len(skipped)``).
    notes : tuple of str
        Non-fatal remarks (e.g. a split that could not be stratified).
    """

    kind: str
    root: str
    table: pa.Table
    skipped: tuple[Skipped, ...]
    prompt: PromptTemplate
    candidates: int
    notes: tuple[str, ...] = ()


# -- reading tables -------------------------------------------------------
def read_csv(path: str | Path, *, required: Sequence[str] = (), delimiter: str = ",", fix: str = ""):
    """Read a CSV into polars as written: every cell is text, exactly as in the file (no type guessing).

    Cells in :data:`NA_VALUES` are missing (``None``), as pandas reads them.
    CRLF line endings, a UTF-8 byte-order mark and quoted fields holding the
    delimiter or line breaks are read. ``delimiter="auto"`` reads a header
    without commas as ``;``-, tab- or ``|``-separated when exactly one of
    them is in it (Excel's export in many locales). Problems raise a
    one-line :class:`InputError` naming the file and the row: not found, not
    UTF-8, another delimiter, a row with more or fewer fields than the
    header, a quote never closed, a column name used twice, missing
    ``required`` columns (listing the columns found; ``fix`` is appended). A
    header cell left empty is named ``column_<position>``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(p, "wb").write(b"\\xef\\xbb\\xbfid,age\\r\\n007,NaN\\r\\n")
    >>> read_csv(p, required=["id"]).rows()
    [('007', None)]
    >>> read_csv(p, required=["id", "dx"])
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: ...m.csv: missing required column(s) ['dx']; found ['id', 'age']
    """
    import csv

    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; check root= and the file name")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}: not valid UTF-8 (line {line}, byte {exc.start}); re-save it as UTF-8, "
                         f"e.g. iconv -f latin1 -t utf-8 {path.name} > fixed.csv") from None
    text = text.replace("\r\n", "\n")
    header = text.split("\n", 1)[0]
    if not header.strip():
        raise InputError(f"{path}: empty file or empty header line; the first line must name the columns")
    delimiter = detect_delimiter(path, header, delimiter)
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # a long free-text cell is still a cell
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[str]] = []
    start = 1
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row) or len(row) > 1:
                rows.append(row if rows else [c.strip() for c in row])
                if len(rows) > 1 and len(row) != len(rows[0]):
                    raise InputError(f"{path}: data row {len(rows) - 1} (line {start}) has {len(row)} fields, "
                                     f"the header has {len(rows[0])}; quote the fields that contain "
                                     f"'{delimiter_name(delimiter)}' or line breaks, or fix that row")
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputError(f"{path}: data row {len(rows)} (line {start}) is not valid CSV ({exc}); a field with "
                         f"'\"' must be quoted whole, with inner quotes doubled (\"\")") from None
    names = [c or f"column_{i}" for i, c in enumerate(rows[0], start=1)]
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise InputError(f"{path}: column '{name}' appears twice in the header (columns {seen[name]} and {i}); "
                             "rename one")
        seen[name] = i
    na = set(NA_VALUES)
    columns = {name: [None if r[j] in na else r[j] for r in rows[1:]] for j, name in enumerate(names)}
    frame = pl.DataFrame(columns, schema={name: pl.Utf8 for name in names})
    check_columns(frame.columns, required, path, fix)
    return frame


def delimiter_name(delimiter: str) -> str:
    """How a delimiter is shown in a message (a tab as ``\\t``)."""
    return "\\t" if delimiter == "\t" else delimiter


def detect_delimiter(path: str | Path, header: str | None = None, delimiter: str = "auto") -> str:
    """The delimiter to read ``path`` with: ``delimiter``, or for ``"auto"`` the one its header line uses.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> _ = open(p, "w").write("id;image;label\\na;a.png;x\\n")
    >>> detect_delimiter(p)
    ';'
    """
    if header is None:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            header = fh.readline()
    others = [d for d in _OTHER_DELIMITERS if d in header]
    if delimiter == "auto":
        if "," in header or not others:
            return ","
        if len(others) == 1:
            return others[0]
        raise InputError(f"{path}: the header has no ',' but several of {[delimiter_name(d) for d in others]}: name the "
                         "separator with delimiter=")
    if delimiter not in header and others:
        shown = delimiter_name(others[0])
        raise InputError(f"{path}: the header has no '{delimiter_name(delimiter)}' but '{shown}': the file looks "
                         f"'{shown}'-separated; re-save it comma-separated (manifests: pass delimiter=)")
    return delimiter


def check_columns(found: Sequence[str], required: Sequence[str], path: str | Path, fix: str = "") -> None:
    """Raise :class:`InputError` listing ``required`` columns absent from ``found``."""
    missing = [c for c in required if c not in found]
    if missing:
        raise InputError(f"{path}: missing required column(s) {missing}; found {list(found)}"
                         + (f"; {fix}" if fix else ""))


def check_unique(values: Sequence[Any], column: str, path: str | Path) -> None:
    """Raise :class:`InputError` with examples when ``values`` has duplicates or blanks.

    Examples
    --------
    >>> check_unique(["a", "b", "a"], "image_id", "m.csv")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: m.csv: 1 duplicate value(s) in id column 'image_id', e.g. 'a' (data rows 1, 3); each sample needs a unique id: remove or rename the duplicates
    """
    seen: dict[Any, list[int]] = {}
    for i, v in enumerate(values, start=1):
        if v is None or str(v).strip() == "":
            raise InputError(f"{path}: id column '{column}' is empty in data row {i}; every sample needs an id")
        seen.setdefault(v, []).append(i)
    dups = {k: rows for k, rows in seen.items() if len(rows) > 1}
    if dups:
        examples = "; ".join(f"'{k}' (data rows {', '.join(map(str, rows[:3]))})"
                             for k, rows in list(dups.items())[:3])
        raise InputError(f"{path}: {len(dups)} duplicate value(s) in id column '{column}', e.g. {examples}; "
                         "each sample needs a unique id: remove or rename the duplicates")


def as_float(value: Any) -> float | None:
    """``value`` as a float, ``None`` when missing or not a number.

    Examples
    --------
    >>> as_float("75"), as_float(None), as_float("x")
    (75.0, None, None)
    """
    if value is None:
        return None
    try:
        out = float(str(value).strip())
    except ValueError:
        return None
    return None if out != out else out


def abspath(path: str | Path) -> str:
    """Absolute, normalised path (symlinks kept, unlike ``resolve``)."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


# -- images and the table --------------------------------------------------
def _reason(message: str) -> str:
    return message.split(": ", 1)[1] if message.startswith("image ") and ": " in message else message


def check_image(sample: Sample) -> tuple[str | None, str | None]:
    """``(image_sha256, None)`` when the image decodes, else ``(None, reason)``; ``(None, None)``: no image.

    The file is read once, and the hash is of the bytes that decoded
    (:func:`embedstore.images.read_image`); for a derived image (a
    ``#bands=...`` fragment) the conversion options are hashed in, so another
    conversion is other content.
    """
    if sample.image_path is None:  # a text-only dataset
        return None, None
    try:
        _, digest = read_image(sample.image_ref)
    except InputError as exc:
        return None, _reason(str(exc))
    except OSError as exc:
        return None, f"cannot read ({exc.strerror or exc})"
    return digest, None


def finish(kind: str, root: str | Path, samples: Sequence[Sample], *, prompt: PromptTemplate,
           meta_types: dict[str, pa.DataType], label_names: Sequence[str] = (),
           skipped: Sequence[Skipped] = (), notes: Sequence[str] = (), progress: bool = True,
           workers: int | None = None, meta_fields: Sequence[pa.Field] = ()) -> DatasetRows:
    """Decode-check and hash every image, then build the samples table.

    Parameters
    ----------
    kind, root : str
    samples : sequence of Sample
    prompt : PromptTemplate
        Stored as ``prompt_name`` / ``prompt_template``.
    meta_types : dict
        Metadata column -> Arrow type, in column order.
    label_names : sequence of str
        Extra labels, stored as ``label_<name>`` columns.
    meta_fields : sequence of pyarrow.Field, optional
        The metadata columns' fields when they carry field metadata (e.g. a
        manifest column's header as written); else built from ``meta_types``.
    skipped : sequence of Skipped
        Samples the adapter already left out (e.g. no label).
    progress : bool
        Show progress (rows, rows/s, ETA): a bar on a terminal, a line every few seconds in a log.
    """
    from ..progress import progress as progress_bar

    from ..cpu import cores

    from ..images import max_pixels

    if any(s.image_path is not None for s in samples):
        max_pixels()  # a bad decoded-size setting is one error for the run, not one per image
    workers = workers or min(4, cores())
    results: list[tuple[str | None, str | None]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            progress_bar(total=len(samples), desc=f"checking {kind} images", unit="img",
                         disable=not progress) as bar:
        for res in pool.map(check_image, samples):
            results.append(res)
            bar.update(1)
    kept: list[tuple[Sample, str]] = []
    out_skipped = list(skipped)
    for sample, (digest, reason) in zip(samples, results):
        if digest is None and reason is not None:
            out_skipped.append(Skipped(sample.sample_id, sample.image_path, reason or "unreadable"))
        else:
            kept.append((sample, digest))
    table = build_table(kept, prompt, meta_types, label_names, meta_fields)
    return DatasetRows(kind, abspath(root), table, tuple(out_skipped), prompt,
                       len(samples) + len(skipped), tuple(notes))


def samples_schema(meta_types: dict[str, pa.DataType], label_names: Sequence[str] = (),
                   meta_fields: Sequence[pa.Field] = ()) -> pa.Schema:
    """Arrow schema of a samples table: core, extra labels, splits, group, metadata (``meta_fields`` if given)."""
    s = pa.string()
    fields = [pa.field(c, s) for c in ("sample_id", "text", "text_sha256", "prompt_name", "prompt_template",
                                       "image_ref", "image_sha256", "label")]
    fields += [pa.field(f"label_{n}", s) for n in label_names]
    fields += [pa.field("split_paper", s), pa.field("split_grouped", s), pa.field("group_id", s)]
    fields += list(meta_fields) or [pa.field(name, typ) for name, typ in meta_types.items()]
    return pa.schema(fields)


def build_table(kept: Sequence[tuple[Sample, str]], prompt: PromptTemplate,
                meta_types: dict[str, pa.DataType], label_names: Sequence[str] = (),
                meta_fields: Sequence[pa.Field] = ()) -> pa.Table:
    """Arrow table of checked samples (``(sample, image_sha256)`` pairs), in order."""
    schema = samples_schema(meta_types, label_names, meta_fields)
    cols: dict[str, list[Any]] = {
        "sample_id": [s.sample_id for s, _ in kept],
        "text": [s.text for s, _ in kept],
        "text_sha256": [None if s.text is None else sha256_text(s.text) for s, _ in kept],
        "prompt_name": [prompt.name] * len(kept),
        "prompt_template": [prompt.template] * len(kept),
        "image_ref": [s.image_ref for s, _ in kept],
        "image_sha256": [d for _, d in kept],
        "label": [s.label for s, _ in kept],
    }
    for n in label_names:
        cols[f"label_{n}"] = [s.labels.get(n) for s, _ in kept]
    cols["split_paper"] = [s.split_paper for s, _ in kept]
    cols["split_grouped"] = [s.split_grouped for s, _ in kept]
    cols["group_id"] = [s.group_id for s, _ in kept]
    for name in meta_types:
        cols[name] = [s.meta.get(name) for s, _ in kept]
    return pa.table(cols, schema=schema)


def class_counts(table: pa.Table, split_column: str = "split_grouped") -> dict[str, dict[str, int]]:
    """``{split: {label: n}}`` of a samples table, splits in train/val/test order.

    Examples
    --------
    >>> t = pa.table({"label": ["a", "b", "a"], "split_grouped": ["train", "test", "train"]})
    >>> class_counts(t)
    {'train': {'a': 2}, 'test': {'b': 1}}
    """
    counts: dict[str, dict[str, int]] = {}
    for split, label in zip(table[split_column].to_pylist(), table["label"].to_pylist()):
        counts.setdefault(split, {})
        counts[split][label] = counts[split].get(label, 0) + 1
    order = {"train": 0, "val": 1, "test": 2}
    return {k: dict(sorted(v.items())) for k, v in sorted(counts.items(), key=lambda kv: (order.get(kv[0], 9), kv[0]))}
