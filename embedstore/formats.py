"""The two result protocols: ``to_arrow()/to_polars()/to_numpy()`` for rows, ``to_dict()`` for reports.

* :class:`Rows` wraps the Arrow table a read returns (in the manner of
  lancedb's query results): ``to_polars()`` is ``pl.from_arrow(to_arrow())``
  and ``to_numpy()`` is one ``{column: ndarray}`` dict, plus ``matrix()`` for
  the vector column. :meth:`embedstore.dataset.Dataset` methods return it.
* :class:`ToDict` gives a dataclass result one ``to_dict()`` (plain JSON-able
  values); every public result object of the package has it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from .errors import InputError

Format = Literal["arrow", "polars", "numpy"]


def plain(value: Any) -> Any:
    """``value`` with arrays, tuples and nested results turned into JSON-able lists and dicts.

    Examples
    --------
    >>> plain({"a": (1, 2), "b": np.arange(2)})
    {'a': [1, 2], 'b': [0, 1]}
    """
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class ToDict:
    """Mixin: ``to_dict()`` of a dataclass result, its fields as plain values.

    Examples
    --------
    >>> @dataclasses.dataclass
    ... class R(ToDict):
    ...     n: int
    ...     tags: tuple = ()
    >>> R(1, ("a",)).to_dict()
    {'n': 1, 'tags': ['a']}
    """

    def to_dict(self) -> dict[str, Any]:
        """The result's fields as a plain dict (lists for arrays and tuples)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


class Rows:
    """Rows read from the store, convertible to Arrow, polars or NumPy.

    Parameters
    ----------
    table : pyarrow.Table

    Examples
    --------
    >>> rows = Rows(pa.table({"sample_id": ["a", "b"], "x": [1, 2]}))
    >>> len(rows), rows.to_numpy()["x"].tolist(), rows.to_polars().shape
    (2, [1, 2], (2, 2))
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"Rows({self._table.num_rows} rows: {', '.join(self._table.column_names)})"

    @property
    def columns(self) -> list[str]:
        """Column names."""
        return list(self._table.column_names)

    def to_arrow(self) -> pa.Table:
        """The rows as a ``pyarrow.Table``."""
        return self._table

    def to_polars(self):
        """The rows as a ``polars.DataFrame``."""
        import polars as pl

        return pl.from_arrow(self._table)

    def to_numpy(self) -> dict[str, np.ndarray]:
        """``{column: ndarray}`` (a vector column becomes a 2-D float32 matrix)."""
        out = {}
        for name in self._table.column_names:
            col = self._table[name]
            out[name] = (self.matrix(name) if pa.types.is_fixed_size_list(col.type)
                         else col.to_numpy(zero_copy_only=False))
        return out

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as a list of dicts."""
        return self._table.to_pylist()

    def matrix(self, column: str = "vector") -> np.ndarray:
        """The fixed-width list column ``column`` as an ``(n, d)`` float32 matrix."""
        from .vectors import vectors_of

        return vectors_of(self._table, column)

    def to(self, as_: Format) -> Any:
        """The rows in format ``as_`` (``arrow``, ``polars`` or ``numpy``), as the ``as_=`` of the reads."""
        return convert(self._table, as_)


def convert(table: pa.Table, as_: Format) -> Any:
    """``table`` as Arrow, polars or a ``{column: ndarray}`` dict: the ``as_=`` of :meth:`Store.samples`."""
    if as_ == "arrow":
        return table
    if as_ == "polars":
        import polars as pl

        return pl.from_arrow(table)
    if as_ == "numpy":
        return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    raise InputError(f"unknown output format {as_!r}: use arrow, polars or numpy")
