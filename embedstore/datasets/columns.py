"""A manifest's columns as written: storage names for any header, and value types only where they are exact.

A manifest (:mod:`embedstore.datasets.manifest`) is read with every cell as
text (:func:`embedstore.datasets.base.read_csv`), so ids such as ``007`` and
``7`` stay two ids and a zip code keeps its leading zero in the prompt. Its
metadata columns are then stored

* under a **storage name** (:func:`storage_names`): the header itself,
  unless Lance cannot hold it as a column (a ``.``, a backtick, a control
  character, an empty cell) or it clashes with the samples table's own
  columns; the original header is kept in the column's Arrow field metadata
  (``original_name``) and templates may name a column either way;
* with a **type** (:func:`column_type`): the one the user declared
  (``column_types={"age": "int"}``, ``--column-type age=int``), else a number
  only when every value of the whole column reads back exactly as written
  (``41`` is an int, ``0.5`` a float; ``00042``, ``1.50`` or ``1e3`` keep the
  column text), else text. Nothing is guessed from the first rows, so a
  value late in a column never aborts an ingest.

A value that does not fit its declared type is refused in one line naming
the file, the data row, the column and the value.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import pyarrow as pa

from ..errors import InputError

#: Declarable column types -> Arrow type.
TYPES: dict[str, pa.DataType] = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
                                 "bool": pa.bool_()}
#: Field-metadata key holding a column's header as written.
ORIGINAL = "original_name"
_UNSAFE = re.compile(r"[.`\x00-\x1f\x7f]")
_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def storage_names(columns: Sequence[str], reserved: set[str], prefixes: tuple[str, ...] = ()) -> dict[str, str]:
    """``{header: storage name}``: the header unless Lance cannot store it or it clashes.

    ``.``, backticks and control characters become ``_``, an empty header
    ``column_<position>``, a name in ``reserved`` or starting with one of
    ``prefixes`` gets ``meta_`` in front, and a name already taken a
    ``_2``, ``_3``... suffix.

    Examples
    --------
    >>> storage_names(["Patient.Age", "site", "label", "Patient_Age"], {"label"}, ("split_",))
    {'Patient.Age': 'Patient_Age', 'site': 'site', 'label': 'meta_label', 'Patient_Age': 'Patient_Age_2'}
    """
    out: dict[str, str] = {}
    used = set(reserved)
    for i, col in enumerate(columns, start=1):
        name = _UNSAFE.sub("_", col) or f"column_{i}"
        if name in reserved or name.startswith(prefixes):
            name = f"meta_{name}"
        base, k = name, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out[col] = name
    return out


def parse_types(declared: Mapping[str, str] | Sequence[str] | None, columns: Sequence[str], path: Any) -> dict[str, str]:
    """``{column: type name}`` from ``{"age": "int"}`` or ``["age=int", ...]``, checked against the header.

    Examples
    --------
    >>> parse_types(["age=int", "zip=str"], ["id", "age", "zip"], "m.csv")
    {'age': 'int', 'zip': 'str'}
    """
    if not declared:
        return {}
    if not isinstance(declared, Mapping):
        pairs = {}
        for item in declared:
            name, eq, typ = str(item).rpartition("=")
            if not eq or not name:
                raise InputError(f"column type {item!r}: write NAME=TYPE, e.g. age=int (types: {', '.join(TYPES)})")
            pairs[name] = typ
        declared = pairs
    out = {}
    for name, typ in declared.items():
        if typ not in TYPES:
            raise InputError(f"column type {name}={typ}: use one of {', '.join(TYPES)}")
        if name not in columns:
            raise InputError(f"{path}: column_types names '{name}', which is not a column; columns: {list(columns)}")
        out[name] = typ
    return out


def _exact_number(value: str) -> str | None:
    """``int``/``float`` when ``value`` reads back exactly as written as that type, else ``None``."""
    if _INT.match(value):
        return "int" if -(2 ** 63) <= int(value) < 2 ** 63 else None
    try:
        number = float(value)
    except ValueError:
        return None
    return "float" if number == number and abs(number) != float("inf") and repr(number) == value else None


def column_type(values: Sequence[Any], declared: str | None = None) -> str:
    """The type name a column is stored with: ``declared``, or ``int``/``float`` when exact, else ``str``.

    Values already typed (a Parquet column) keep their type.

    Examples
    --------
    >>> column_type(["41", "7", None]), column_type(["0.5", "12"]), column_type(["00042", "7"])
    ('int', 'float', 'str')
    >>> column_type(["1.50"]), column_type(["1e3"]), column_type(["41"], declared="str")
    ('str', 'str', 'str')
    """
    if declared:
        return declared
    present = [v for v in values if v is not None]
    if not present:
        return "str"
    if not all(isinstance(v, str) for v in present):
        first = present[0]
        return "bool" if isinstance(first, bool) else "int" if isinstance(first, int) else \
            "float" if isinstance(first, float) else "str"
    kinds = {_exact_number(v) for v in present}
    if kinds == {"int"}:
        return "int"
    if kinds <= {"int", "float"}:
        return "float"
    return "str"


def convert(value: Any, typ: str, where: str) -> Any:
    """``value`` as ``typ`` (``None`` stays ``None``); ``where`` names the file, row and column in the error.

    Examples
    --------
    >>> convert("41", "int", "m.csv data row 1 column 'age'"), convert("yes", "bool", "")
    (41, True)
    >>> convert("n/a yet", "float", "m.csv data row 3 column 'age'")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: m.csv data row 3 column 'age': 'n/a yet' is not a float (the column is declared float); fix the value, leave it empty, or declare the column str
    """
    if value is None:
        return None
    if typ == "str":
        return str(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if typ == "int":
            return int(text)
        if typ == "float":
            return float(text)
        return _BOOL[text.lower()]
    except (ValueError, KeyError):
        raise InputError(f"{where}: {value!r} is not a{'n' if typ == 'int' else ''} {typ} (the column is declared "
                         f"{typ}); fix the value, leave it empty, or declare the column str") from None
