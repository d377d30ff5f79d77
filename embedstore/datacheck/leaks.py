"""Leaks between splits: a group (patient, lesion) in two splits, and duplicate pairs across splits.

Every ``split_<name>`` column is checked: ``split_paper`` of HAM10000 is a
split over photos, so a lesion photographed twice can sit in train and test
(the paper's numbers carry that leak); ``split_grouped`` never should.
Rows without a split value, or of an unlabelled dataset (split ``predict``),
take part in no leak.

Examples
--------
>>> import pyarrow as pa
>>> rows = pa.table({"sample_id": ["a", "b", "c"], "group_id": ["g1", "g1", "g2"],
...                  "split_paper": ["train", "test", "test"], "split_grouped": ["train", "train", "test"]})
>>> [(l["split_column"], l["group"], l["splits"]) for l in group_leaks(rows)]
[('split_paper', 'g1', {'test': 1, 'train': 1})]
>>> crossing(rows, 0, 2)
['split_grouped', 'split_paper']
"""

from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from ..datasets.splits import PREDICT_ONLY


def split_columns(rows: pa.Table) -> list[str]:
    """The ``split_<name>`` columns of a samples table, sorted."""
    return sorted(c for c in rows.column_names if c.startswith("split_"))


def split_values(rows: pa.Table) -> dict[str, list[Any]]:
    """``{split column: values}`` of ``rows`` (pass it to :func:`crossing` when checking many pairs)."""
    return {c: rows[c].to_pylist() for c in split_columns(rows)}


def crossing(rows: pa.Table, i: int, j: int, splits: dict[str, list[Any]] | None = None) -> list[str]:
    """Split columns in which rows ``i`` and ``j`` sit in different (real) splits."""
    splits = splits if splits is not None else split_values(rows)
    out = []
    for col, values in splits.items():
        a, b = values[i], values[j]
        if a is None or b is None or PREDICT_ONLY in (a, b):
            continue
        if a != b:
            out.append(col)
    return out


def group_leaks(rows: pa.Table, group_columns: Sequence[str] = ("group_id",)) -> list[dict[str, Any]]:
    """Groups present in more than one split, per group column and split column.

    Returns
    -------
    list of dict
        ``group_column``, ``split_column``, ``group``, ``splits`` (``{split: rows}``)
        and ``sample_ids``, sorted by split column then group.
    """
    out = []
    ids = rows["sample_id"].to_pylist()
    splits = split_values(rows)
    for gcol in group_columns:
        if gcol not in rows.column_names:
            continue
        groups = rows[gcol].to_pylist()
        for scol, values in splits.items():
            seen: dict[Any, dict[str, list[int]]] = {}
            for i, (g, s) in enumerate(zip(groups, values)):
                if g is None or g == "" or s is None or s == PREDICT_ONLY:
                    continue
                seen.setdefault(g, {}).setdefault(s, []).append(i)
            for g, by_split in seen.items():
                if len(by_split) > 1:
                    members = sorted(i for rows_ in by_split.values() for i in rows_)
                    out.append({"group_column": gcol, "split_column": scol, "group": g,
                                "splits": {s: len(v) for s, v in sorted(by_split.items())},
                                "sample_ids": [ids[i] for i in members]})
    return sorted(out, key=lambda r: (r["group_column"], r["split_column"], str(r["group"])))
