"""User files at the boundary: a query vector read from a file, an output file about to be written."""

from __future__ import annotations

import os

import numpy as np

from .errors import InputError


def read_vector(path: str | os.PathLike) -> np.ndarray:
    """The query vector stored in ``path``: a ``.npy`` array, or numbers separated by spaces/commas/newlines.

    Raises
    ------
    InputError
        Naming the file and what is wrong with it (missing, not a NumPy
        file, a non-numeric token and its position, no numbers at all).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "q.txt")
    >>> _ = open(p, "w").write("1, 2.5\\n3")
    >>> read_vector(p).tolist()
    [1.0, 2.5, 3.0]
    >>> _ = open(p, "w").write("1 two 3")
    >>> read_vector(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: vector file ... token 2 is 'two', not a number: write numbers separated by spaces, commas or newlines (or save a .npy array)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"vector file {path}: not found; pass an existing .npy or text file")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"vector file {path}: not a readable .npy array ({type(exc).__name__}); save it with "
                             "numpy.save, or write the numbers as text in a file not named .npy") from None
        if not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"vector file {path}: holds {arr.dtype} values, not numbers; save a numeric array")
        return arr.astype(np.float32).reshape(-1)
    try:
        with open(path, encoding="utf-8") as fh:
            tokens = fh.read().replace(",", " ").split()
    except UnicodeDecodeError:
        raise InputError(f"vector file {path}: not UTF-8 text; write numbers as text or save a .npy array") from None
    values = []
    for i, tok in enumerate(tokens, 1):
        try:
            values.append(float(tok))
        except ValueError:
            raise InputError(f"vector file {path}: token {i} is {tok[:40]!r}, not a number: write numbers "
                             "separated by spaces, commas or newlines (or save a .npy array)") from None
    if not values:
        raise InputError(f"vector file {path}: holds no numbers; write the query vector's values")
    return np.array(values, dtype=np.float32)


def output_file(path: str | os.PathLike, suffixes: tuple[str, ...], what: str = "output") -> str:
    """Check an output file name's suffix and create its missing parent folders.

    Raises
    ------
    InputError
        When the suffix is not one of ``suffixes``, or the parent folder
        cannot be created (named, with the reason).

    Examples
    --------
    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "new", "dir", "f.csv")
    >>> output_file(out, (".csv",)) == out and os.path.isdir(os.path.dirname(out))
    True
    >>> output_file("f.txt", (".parquet", ".csv"), "export target")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: export target f.txt: the file name must end in .parquet or .csv
    """
    path = os.fspath(path)
    if not path.endswith(suffixes):
        raise InputError(f"{what} {path}: the file name must end in {' or '.join(suffixes)}")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot create the folder {parent} ({exc.strerror}); "
                         "pass a writable path") from None
    if not os.access(parent, os.W_OK):
        raise InputError(f"{what} {path}: the folder {parent} is not writable; pass a writable path")
    return path
