"""Re-ingest rules: what changed since the stored version, and splits that never move a group.

Ingesting a dataset name that is already stored compares the new source
rows with the stored ones (:func:`sample_diff`):

* **added** and **changed** rows are written (an upsert);
* **removed** rows (stored, but absent from the source or skipped now as
  unreadable) make :func:`embedstore.ingest.ingest` *refuse*, printing the
  diff, unless ``prune=True`` (``--prune``) is given; then the samples table
  becomes exactly the source, in one commit. ``keep_missing=True``
  (``--keep-missing``) keeps them instead: the source adds to the dataset. Nothing is lost either way:
  the previous version stays readable (``embedstore versions``), and runs
  pinned to it re-execute from it.

The grouped split keeps the invariant "one group, one split"
(:func:`check_group_splits`, run on every samples write and by ``doctor``).
On a re-ingest a group already stored keeps its stored ``split_grouped``
(:func:`keep_group_splits`): a test patient never becomes a training
patient because the folder was curated. Only new groups get the freshly
computed assignment. (``split_paper`` is the paper's per-image procedure and
is recomputed on the source as it is.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .errors import InputError
from .formats import ToDict

GROUP_COLUMN = "group_id"
GROUPED_SPLIT = "split_grouped"
_EXAMPLES = 3


@dataclass(frozen=True)
class SampleDiff(ToDict):
    """Stored rows against source rows, by ``sample_id``.

    Attributes
    ----------
    added, removed, changed, unchanged : int
    examples : dict
        ``{"added"|"removed"|"changed": [sample_id, ...]}`` (a few of each).
    """

    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        """One-line summary, e.g. ``"3 added, 40 removed (e.g. a, b), 0 changed"``.

        Examples
        --------
        >>> SampleDiff(1, 2, 0, 5, {"removed": ["x", "y"], "added": ["z"]}).describe()
        '1 added (e.g. z), 2 removed (e.g. x, y), 0 changed, 5 unchanged'
        """
        parts = []
        for name in ("added", "removed", "changed"):
            n, ex = getattr(self, name), self.examples.get(name) or []
            parts.append(f"{n} {name}" + (f" (e.g. {', '.join(ex)})" if n and ex else ""))
        return ", ".join(parts) + f", {self.unchanged} unchanged"


def sample_diff(stored: pa.Table | None, source: pa.Table, key: str = "sample_id") -> SampleDiff:
    """Compare stored sample rows with the rows about to be written.

    A row is *changed* when any column both tables share differs.

    Examples
    --------
    >>> old = pa.table({"sample_id": ["a", "b", "c"], "label": ["0", "1", "1"]})
    >>> new = pa.table({"sample_id": ["a", "b", "d"], "label": ["0", "0", "1"]})
    >>> d = sample_diff(old, new)
    >>> (d.added, d.removed, d.changed, d.unchanged, d.examples["removed"])
    (1, 1, 1, 1, ['c'])
    """
    import polars as pl

    if stored is None or stored.num_rows == 0:
        ids = source[key].to_pylist()
        return SampleDiff(added=len(ids), examples={"added": [str(i) for i in ids[:_EXAMPLES]]})
    cols = [c for c in source.column_names if c in stored.column_names]
    old, new = pl.from_arrow(stored.select(cols)), pl.from_arrow(source.select(cols))
    added = new.join(old.select(key), on=key, how="anti")[key].to_list()
    removed = old.join(new.select(key), on=key, how="anti")[key].to_list()
    both = new.join(old.select(key), on=key, how="semi")
    same = both.join(old, on=cols, how="semi", nulls_equal=True)
    changed = both.join(same.select(key), on=key, how="anti")[key].to_list()
    ex = {name: sorted(map(str, ids))[:_EXAMPLES] for name, ids in
          (("added", added), ("removed", removed), ("changed", changed)) if ids}
    return SampleDiff(len(added), len(removed), len(changed), same.height, ex)


def keep_group_splits(source: pa.Table, stored: pa.Table | None, *, kept: bool = False) -> tuple[pa.Table, int]:
    """``source`` with each already-stored group keeping its stored ``split_grouped``.

    A group's stored split is taken from its stored rows that are still in
    the source (all stored rows with ``kept``: those absent from the source
    stay too); a group whose stored rows disagree (a store written before
    this rule) gets the fresh assignment. Returns the table and the number
    of rows whose split differs from the fresh assignment.

    Examples
    --------
    >>> stored = pa.table({"sample_id": ["a", "b"], "group_id": ["p1", "p2"],
    ...                    "split_grouped": ["test", "train"]})
    >>> fresh = pa.table({"sample_id": ["a", "c"], "group_id": ["p1", "p1"],
    ...                   "split_grouped": ["train", "train"]})
    >>> t, moved = keep_group_splits(fresh, stored)
    >>> (t["split_grouped"].to_pylist(), moved)
    (['test', 'test'], 2)
    """
    need = {"sample_id", GROUP_COLUMN, GROUPED_SPLIT}
    if stored is None or stored.num_rows == 0 or not need <= set(stored.column_names) \
            or not need <= set(source.column_names):
        return source, 0
    import polars as pl

    old = pl.from_arrow(stored.select(["sample_id", GROUP_COLUMN, GROUPED_SPLIT]))
    if not kept:
        old = old.join(pl.from_arrow(source.select(["sample_id"])), on="sample_id", how="semi")
    per_group = old.group_by(GROUP_COLUMN).agg(pl.col(GROUPED_SPLIT).unique().alias("splits"))
    kept = {g: s[0] for g, s in zip(per_group[GROUP_COLUMN].to_list(), per_group["splits"].to_list())
            if len(s) == 1 and g is not None}
    fresh = source[GROUPED_SPLIT].to_pylist()
    final = [kept.get(g, f) for g, f in zip(source[GROUP_COLUMN].to_pylist(), fresh)]
    moved = sum(a != b for a, b in zip(final, fresh))
    idx = source.schema.get_field_index(GROUPED_SPLIT)
    return source.set_column(idx, source.schema.field(idx), pa.array(final, pa.string())), moved


def split_conflicts(rows: pa.Table) -> dict[str, list[str]]:
    """``{group_id: [splits]}`` of the groups found in more than one ``split_grouped`` value.

    Examples
    --------
    >>> t = pa.table({"group_id": ["p1", "p1", "p2"], "split_grouped": ["train", "test", "val"]})
    >>> split_conflicts(t)
    {'p1': ['test', 'train']}
    """
    if not {GROUP_COLUMN, GROUPED_SPLIT} <= set(rows.column_names) or rows.num_rows == 0:
        return {}
    import polars as pl

    frame = pl.from_arrow(rows.select([GROUP_COLUMN, GROUPED_SPLIT])).drop_nulls(GROUP_COLUMN)
    per = frame.group_by(GROUP_COLUMN).agg(pl.col(GROUPED_SPLIT).unique().sort().alias("s"))
    per = per.filter(pl.col("s").list.len() > 1).sort(GROUP_COLUMN)
    return dict(zip(per[GROUP_COLUMN].to_list(), per["s"].to_list()))


def check_group_splits(dataset: str, rows: pa.Table) -> None:
    """Raise :class:`InputError` when a group of ``rows`` sits in two splits.

    ``rows`` is the samples table as it would be after a write.

    Examples
    --------
    >>> check_group_splits("toy", pa.table({"group_id": ["p1", "p1"], "split_grouped": ["train", "test"]}))
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: samples for 'toy': 1 group(s) in more than one split_grouped value (e.g. p1 in test/train); one group must sit in one split: give its rows one split, or re-ingest the folder (ingest keeps each stored group's split)
    """
    bad = split_conflicts(rows)
    if bad:
        ex = ", ".join(f"{g} in {'/'.join(s)}" for g, s in list(bad.items())[:_EXAMPLES])
        raise InputError(f"samples for '{dataset}': {len(bad)} group(s) in more than one {GROUPED_SPLIT} value "
                         f"(e.g. {ex}); one group must sit in one split: give its rows one split, or re-ingest "
                         "the folder (ingest keeps each stored group's split)")


def after_write(stored: pa.Table | None, rows: pa.Table, *, prune: bool, key: str = "sample_id") -> pa.Table:
    """The ``group_id``/``split_grouped`` rows a samples table will hold after writing ``rows``."""
    cols = [c for c in (key, GROUP_COLUMN, GROUPED_SPLIT) if c in rows.column_names]
    new = rows.select(cols)
    if prune or stored is None or stored.num_rows == 0 or set(cols) - set(stored.column_names):
        return new
    import pyarrow.compute as pc

    keep = stored.select(cols).filter(pc.invert(pc.is_in(stored[key], value_set=new[key])))
    return pa.concat_tables([keep.cast(new.schema), new])


def column_change(stored: pa.Table | None, source: pa.Table) -> tuple[list[str], list[str]]:
    """``(new columns, gone columns)`` of the source against the stored table.

    Examples
    --------
    >>> column_change(pa.table({"a": [1], "b": [1]}), pa.table({"a": [1], "c": [1]}))
    (['c'], ['b'])
    """
    if stored is None:
        return [], []
    return ([c for c in source.column_names if c not in stored.column_names],
            [c for c in stored.column_names if c not in source.column_names])


def columns_message(dataset: str, root: Any, new: list[str], gone: list[str]) -> str:
    """The one-line refusal of a re-ingest whose columns changed, without ``--prune``."""
    return (f"ingest '{dataset}' from {root}: the source's columns differ from the stored samples table "
            f"(new {new}, gone {gone}), e.g. another text_template= or metadata column. Pass prune=True "
            "to rewrite the table with the new columns in one commit (the old version stays "
            "readable), or ingest under another name=; nothing was written")


def removed_message(dataset: str, root: Any, diff: SampleDiff, skipped_now: int) -> str:
    """The one-line refusal of a shrinking re-ingest without ``--prune``."""
    why = f" ({skipped_now} of them skipped now as unreadable or unlabeled)" if skipped_now else ""
    return (f"ingest '{dataset}' from {root}: {diff.removed} stored sample(s) are not in the source{why}; "
            f"diff: {diff.describe()}. Pass prune=True to make the stored samples equal the source "
            "(the old version stays readable), keep_missing=True to keep them (the source adds to the dataset), "
            "or ingest under another name=; nothing was written")
