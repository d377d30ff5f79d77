"""SQL filters: the one quoting helper, and user filters that cannot widen a scope.

Every filter embedstore builds itself is made from :func:`literal` (and the
small :func:`eq` / :func:`isin` / :func:`all_of` on top of it), so a value
such as ``it's`` is always one quoted SQL string literal.

A user's filter (``--where``) is never spliced into a filter of ours: a text
like ``1=1) OR (1=1`` would turn ``dataset = 'ham' AND (…)`` into a filter
that matches every dataset. Instead :func:`rows_matching` evaluates it *on
its own* and returns the matching row ids; the caller intersects them with
the row ids of the scope it set (:func:`within`). A filter can therefore only
narrow a scope, whatever its text.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np

from .errors import InputError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def literal(value: Any) -> str:
    """``value`` as a single-quoted SQL string literal (quotes doubled).

    Examples
    --------
    >>> literal("it's")
    "'it''s'"
    >>> literal("ham")
    "'ham'"
    """
    return "'" + str(value).replace("'", "''") + "'"


def _column(name: str) -> str:
    if not _IDENT.match(name):
        raise InputError(f"invalid column name {name!r}: use letters, digits and '_'")
    return name


def eq(column: str, value: Any) -> str:
    """``column = 'value'``.

    Examples
    --------
    >>> eq("sample_id", "a'b")
    "sample_id = 'a''b'"
    """
    return f"{_column(column)} = {literal(value)}"


def isin(column: str, values: Iterable[Any]) -> str:
    """``column IN ('v1', 'v2', ...)`` (an empty list matches nothing).

    Examples
    --------
    >>> isin("split_paper", ["train", "it's"])
    "split_paper IN ('train', 'it''s')"
    >>> isin("split_paper", [])
    'false'
    """
    values = list(values)
    if not values:
        return "false"
    return f"{_column(column)} IN ({', '.join(literal(v) for v in values)})"


def all_of(*clauses: str | None) -> str | None:
    """Join our own clauses with ``AND`` (``None`` entries are dropped; ``None`` when empty).

    Examples
    --------
    >>> all_of(eq("a", "x"), None, eq("b", "y"))
    "(a = 'x') AND (b = 'y')"
    >>> all_of() is None
    True
    """
    kept = [c for c in clauses if c]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else " AND ".join(f"({c})" for c in kept)


def rows_matching(ds, where: str, *, what: str = "where=") -> np.ndarray:
    """Sorted row ids of the Lance dataset ``ds`` that satisfy the user filter ``where``.

    The filter is evaluated alone, never joined to another clause; intersect
    the result with a scope using :func:`within`. It must be one complete
    expression: trailing text (``x = 1 junk``, ``x = 1; …``) is an error.

    Raises
    ------
    InputError
        When the filter does not parse or names an unknown column (one line,
        naming the filter and the table's columns).

    Examples
    --------
    >>> import lance, pyarrow as pa, tempfile
    >>> ds = lance.write_dataset(pa.table({"x": [1, 2, 3]}), tempfile.mkdtemp() + "/t.lance")
    >>> rows_matching(ds, "x >= 2").tolist()
    [1, 2]
    """
    try:
        # In parentheses, on lines of its own: Lance ignores text after a complete expression
        # ("x = 1 junk", "x = 1; ..."), which must be an error, not a silently shorter filter.
        ids = ds.to_table(columns=[], with_row_id=True, filter=f"(\n{where}\n)")["_rowid"].to_numpy()
    except Exception as exc:  # lance raises ValueError/OSError/RuntimeError for bad SQL
        detail = _lance_detail(exc)
        cols = ", ".join(f.name for f in ds.schema if f.name != "vector")
        raise InputError(f"bad {what} filter {where!r}: {detail}; write one SQL condition on the columns "
                         f"{cols}, e.g. \"sample_id != 'x'\"") from None
    return np.sort(ids.astype(np.uint64, copy=False))


def _lance_detail(exc: BaseException) -> str:
    """The useful part of a Lance/DataFusion filter error (no Rust source paths, no column dump)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r",?\s*/\S*\.rs:\d+:\d+", "", text)
    text = re.sub(r"\s*Valid fields are [^.]*\.", "", text)
    text = re.sub(r"(LanceError\(\w+\):|Invalid user input:|Invalid input,)\s*", "", text)
    text = text.replace("SELECT 1 FROM t WHERE ( ", "").replace("SELECT 1 FROM t WHERE ", "")
    return text[:200].rstrip(". ")


def within(scope: np.ndarray, rowids: np.ndarray) -> np.ndarray:
    """The row ids of ``rowids`` that also belong to ``scope`` (both need not be sorted).

    Examples
    --------
    >>> within(np.array([5, 1, 3], np.uint64), np.array([3, 4, 5, 9], np.uint64)).tolist()
    [3, 5]
    """
    return np.intersect1d(np.asarray(scope, np.uint64), np.asarray(rowids, np.uint64))
