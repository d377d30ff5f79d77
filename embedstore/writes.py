"""Pieces of the store's keyed write path: its result, one row per key, and only the rows that changed."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from .formats import ToDict


@dataclass(frozen=True)
class WriteResult(ToDict):
    """Outcome of one keyed write.

    Attributes
    ----------
    table : str
    version : int
        Table version after the write (unchanged when nothing was written).
    inserted, updated, unchanged : int
        Rows inserted, overwritten, and skipped because identical.
    deleted : int
        Rows removed because absent from the data (``prune=True``).
    retries : int
        Commit attempts beyond the first: conflicts with concurrent writers
        that Lance or embedstore retried.
    attempts : int
        Commit attempts in all (0 when nothing was written).
    deduplicated : int
        Rows dropped from the batch because a later row had the same key.
    tag : str or None
        Tag placed on ``version``, if any.
    """

    table: str
    version: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    retries: int = 0
    attempts: int = 0
    deduplicated: int = 0
    tag: str | None = None
    deleted: int = 0

    @property
    def changed(self) -> bool:
        """True when the write created a new version."""
        return (self.inserted + self.updated + self.deleted) > 0


def last_row_per_key(data: pa.Table, key: str) -> pa.Table:
    """``data`` with one row per ``key``: the last one (Lance leaves duplicate source keys undefined).

    Examples
    --------
    >>> last_row_per_key(pa.table({"k": ["a", "b", "a"], "x": [1, 2, 3]}), "k").to_pylist()
    [{'k': 'b', 'x': 2}, {'k': 'a', 'x': 3}]
    """
    import pyarrow.compute as pc

    if pc.count_distinct(data.column(key)).as_py() == data.num_rows:
        return data
    index = pa.array(range(data.num_rows), pa.int64())
    last = pa.table({"k": data.column(key), "i": index}).group_by("k", use_threads=False).aggregate([("i", "max")])
    rows = last.column("i_max").combine_chunks()
    return data.take(pc.take(rows, pc.sort_indices(rows)))


def drop_identical(existing: pa.Table, new: pa.Table, key: str) -> pa.Table:
    """Rows of ``new`` that are absent from ``existing`` or differ from it."""
    import polars as pl

    cols = [c for c in new.column_names if c in existing.column_names]
    if set(cols) != set(new.column_names):
        return new  # schema change: write everything
    old = pl.from_arrow(existing.select(cols))
    cur = pl.from_arrow(new)
    same = cur.join(old, on=cols, how="semi", nulls_equal=True)
    if same.height == 0:
        return new
    keep = cur.join(same.select(key), on=key, how="anti")
    return keep.to_arrow().cast(new.schema)
