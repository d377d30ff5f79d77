"""Ingest a dataset into the store: the Python side of ``embedstore ingest``.

:func:`ingest` reads a dataset root with its adapter
(:mod:`embedstore.datasets`), decode-checks every image, and upserts the
sample rows into ``samples__<name>``. Rows are deterministic (no
timestamps), so a second run over unchanged data writes nothing and makes no
new version; changed rows (other bytes, another prompt) are updated.
Samples with a missing, empty or corrupt image are skipped and listed in
:attr:`IngestReport.skipped`.

Re-ingest (see :mod:`embedstore.reingest`): when stored samples are absent
from the source (a curated, shrunk folder, or an image unreadable now), the
ingest **refuses** and prints the diff (added / removed / changed, with
examples) unless ``prune=True`` (``--prune``): then the stored samples
become exactly the source, in one commit. ``keep_missing=True``
(``--keep-missing``) makes the source add to the stored samples instead
(a dataset ingested in parts). A source with other columns
(another text template, a new metadata column) is refused the same way.
Groups already stored keep their
``split_grouped``. The previous version stays readable, and runs pinned to
it re-execute from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .datasets import build_rows
from .datasets.base import Skipped, class_counts
from .datasets.prompts import leak_warnings
from .errors import InputError
from .keys import check_name
from .modalities import row_modalities
from .reingest import column_change, columns_message, keep_group_splits, removed_message, sample_diff
from .schema import samples_table
from .store import Store, new_run_tag


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did.

    Attributes
    ----------
    dataset, kind, root, table : str
    rows_total : int
        Valid samples found in ``root`` (all of them are now in the store).
    rows_written : int
        Rows inserted or updated by this run (0 when nothing changed).
    inserted, updated, unchanged : int
    removed : int
        Stored samples deleted because absent from the source (``prune=True``).
    version : int
        Table version after the run.
    tag : str or None
        Tag of that version for this run.
    split : str
        Split scheme of :attr:`class_counts` (``paper`` or ``grouped``).
    class_counts : dict
        ``{split value: {label: n}}`` of the valid samples.
    split_counts : dict
        ``{scheme: {split value: n}}`` for every stored split column.
    skipped : list of Skipped
        ``(sample_id, path, reason)`` of every sample left out.
    prompt_name, prompt_template : str
    notes : list of str
    modalities : tuple of str
        ``("image", "text")``, ``("image",)`` or ``("text",)`` (:mod:`embedstore.modalities`).
    """

    dataset: str
    kind: str
    root: str
    table: str
    rows_total: int
    rows_written: int
    inserted: int
    updated: int
    unchanged: int
    version: int
    tag: str | None
    split: str
    class_counts: dict[str, dict[str, int]]
    split_counts: dict[str, dict[str, int]]
    skipped: list[Skipped] = field(default_factory=list)
    prompt_name: str = ""
    prompt_template: str = ""
    notes: list[str] = field(default_factory=list)
    removed: int = 0
    modalities: tuple[str, ...] = ("image", "text")

    @property
    def changed(self) -> bool:
        """True when the run created a new version."""
        return self.rows_written > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (skipped as a list of dicts)."""
        from dataclasses import asdict

        out = asdict(self)
        out["skipped"] = [s._asdict() for s in self.skipped]
        return out


def ingest(store: Store, kind: str, root: str | Path, *, name: str | None = None, prompt: str = "default",
           split: str = "grouped", seed: int = 42, progress: bool = True, prune: bool = False,
           keep_missing: bool = False, **options: Any) -> IngestReport:
    """Read a dataset and upsert its samples into ``store``.

    Parameters
    ----------
    store : Store
    kind : {"ham10000", "brset", "satellitebench", "manifest"}
    root : path
        The dataset folder in its publisher's layout (a manifest: the file or its folder).
    name : str, optional
        Dataset name in the store (default: ``kind``).
    prompt : str
        ``paper``, ``default`` or the path of a template file.
    split : {"grouped", "paper"}
        Scheme whose class counts the report shows. Both ``split_paper`` and
        ``split_grouped`` are always stored.
    seed : int
        Seed of both splits (the paper used 42).
    progress : bool
        Show a progress bar while images are checked.
    prune : bool
        Delete stored samples absent from the source (in the same commit).
        Without it, a re-ingest that would leave such rows behind raises
        :class:`InputError` with the diff and writes nothing.
    keep_missing : bool
        Keep stored samples absent from the source: the source *adds to*
        the dataset (ingesting it in parts, e.g. two halves from two
        machines). Exclusive with ``prune``.
    **options
        Kind-specific options, e.g. ``rgb="paper"`` (satellitebench) or
        ``id_column=..., text_template=...`` (manifest).

    Returns
    -------
    IngestReport

    Raises
    ------
    InputError
        Bad input (missing columns, duplicate ids, unreadable CSV), no valid
        sample at all, or stored samples missing from the source without ``prune``.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> from embedstore import Store
    >>> d = tempfile.mkdtemp()
    >>> for i in range(4):
    ...     Image.new("RGB", (8, 8), (i, 0, 0)).save(os.path.join(d, f"{i}.png"))
    >>> _ = open(os.path.join(d, "m.csv"), "w").write(
    ...     "id,image,label,text\\n" + "".join(f"s{i},{i}.png,{i % 2},photo {i}\\n" for i in range(4)))
    >>> store = Store(tempfile.mkdtemp() + "/s")
    >>> r = ingest(store, "manifest", d, name="toy", progress=False)
    >>> (r.rows_total, r.rows_written, r.version)
    (4, 4, 1)
    >>> ingest(store, "manifest", d, name="toy", progress=False).rows_written
    0
    """
    if split not in ("grouped", "paper"):
        raise InputError(f"split '{split}': use grouped or paper")
    if prune and keep_missing:
        raise InputError("ingest: prune=True removes stored samples absent from the source and keep_missing=True keeps "
                         "them; pass one of the two")
    dataset = check_name(name or kind)
    built = build_rows(kind, Path(root).expanduser(), prompt=prompt, seed=seed, progress=progress, **options)
    if built.table.num_rows == 0:
        first = built.skipped[0] if built.skipped else None
        detail = f"; e.g. {first.sample_id}: {first.reason}" if first else ""
        raise InputError(f"no valid samples in {built.root} for kind {kind}: "
                         f"{len(built.skipped)} skipped{detail}")
    stored = store.samples(dataset) if store.has_table(samples_table(dataset)) else None
    rows, kept = keep_group_splits(built.table, stored, kept=keep_missing)
    notes = list(built.notes)
    if kept:
        notes.append(f"split_grouped: {kept} row(s) of groups already stored keep their stored split "
                     "(a group never moves across splits on re-ingest; ingest under a new name= to re-split)")
    new_cols, gone_cols = column_change(stored, rows)
    if (new_cols or gone_cols) and not prune:
        raise InputError(columns_message(dataset, built.root, new_cols, gone_cols))
    diff = sample_diff(stored, rows)
    if diff.removed and not (prune or keep_missing):
        skipped_now = len({s.sample_id for s in built.skipped} & set(stored["sample_id"].to_pylist()))
        raise InputError(removed_message(dataset, built.root, diff, skipped_now))
    tag = new_run_tag("ingest")
    result = store.write_samples(dataset, rows, tag=tag, prune=prune)
    split_counts = {}
    for col in ("split_paper", "split_grouped"):
        counts: dict[str, int] = {}
        for v in rows[col].to_pylist():
            counts[v] = counts.get(v, 0) + 1
        split_counts[col[len("split_"):]] = {k: counts[k] for k in ("train", "val", "test") if k in counts}
    return IngestReport(
        dataset=dataset, kind=kind, root=built.root, table=samples_table(dataset),
        rows_total=rows.num_rows, rows_written=result.inserted + result.updated + result.deleted,
        inserted=result.inserted, updated=result.updated, unchanged=result.unchanged,
        version=result.version, tag=tag, split=split,
        class_counts=class_counts(rows, f"split_{split}"), split_counts=split_counts,
        skipped=list(built.skipped), prompt_name=built.prompt.name, prompt_template=built.prompt.template,
        notes=notes + leak_warnings(kind, built.prompt, options.get("label_column") or
                                    ("label" if kind == "manifest" else None)),
        removed=result.deleted, modalities=row_modalities(rows))
