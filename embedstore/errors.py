"""Exceptions raised by embedstore.

Every message is one line that names the offending file, row, field, table or
model, and says how to fix it. The CLI prints ``str(exc)`` and exits non-zero.
"""

from __future__ import annotations


class EmbedstoreError(Exception):
    """Base class of all embedstore errors (one-line, actionable message)."""


class InputError(EmbedstoreError, ValueError):
    """Bad user input: a missing column, a bad path, an invalid name."""


class DimensionMismatchError(EmbedstoreError, ValueError):
    """A vector's width does not match the table it is written to."""


class ModelNotAvailableError(EmbedstoreError):
    """A model id cannot be resolved or its weights are not available locally."""


class NotFoundError(EmbedstoreError, KeyError):
    """A dataset, table, model, version or tag does not exist in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def closest(name: str, candidates, n: int = 3) -> list[str]:
    """The ``n`` candidates most like ``name`` (a misspelling, a prefix), best first.

    Examples
    --------
    >>> closest("synthetic-dem", ["synthetic-demo-160", "ham10000-dev270"])
    ['synthetic-demo-160']
    >>> closest("zzz", ["synthetic-demo-160"])
    []
    """
    import difflib

    names = sorted({str(c) for c in candidates})
    found = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    prefixed = [c for c in names if name and (c.startswith(name) or name.startswith(c)) and c not in found]
    return (found + prefixed)[:n]


def did_you_mean(name: str, candidates) -> str:
    """``" (did you mean 'x'?)"`` (or ``'x' or 'y'``), or ``""`` when nothing is close.

    Examples
    --------
    >>> did_you_mean("late", ["early", "late2"])
    " (did you mean 'late2'?)"
    """
    near = closest(name, candidates)
    return f" (did you mean {' or '.join(repr(c) for c in near)}?)" if near else ""


def check_columns(table: str, columns, have) -> None:
    """Raise one line naming the first of ``columns`` that table ``table`` (with columns ``have``) lacks.

    Examples
    --------
    >>> check_columns("samples__toy", ["lable"], ["sample_id", "label"])
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: unknown column 'lable': table 'samples__toy' has no column 'lable' (did you mean 'label'?); it has sample_id, label
    """
    have = list(have)
    for col in columns or ():
        if col not in have:
            raise InputError(f"unknown column '{col}': table '{table}' has no column '{col}'"
                             f"{did_you_mean(col, have)}; it has {', '.join(have)}")


def missing_dataset(store, dataset: str) -> NotFoundError:
    """The one "no such dataset" error: names the store, the closest names, the datasets it has, and how to add one.

    Raise it where a dataset's samples table is missing (``raise missing_dataset(store, name)``).
    """
    known = store.datasets()
    return NotFoundError(f"unknown dataset '{dataset}': no dataset '{dataset}' in store {store.uri}"
                         f"{did_you_mean(dataset, known)}; known: {', '.join(known) or 'none'}. "
                         "Run 'embedstore ingest' first to add one")


class AmbiguousModelError(InputError):
    """A model id names several registered identities; pick one by ``model_key`` or ``ID@KEYPREFIX``."""


class StoreLockedError(EmbedstoreError, TimeoutError):
    """A table's maintenance lock (compact, cleanup, repair, index builds) could not be acquired in time."""


class KeyCollisionError(EmbedstoreError):
    """Two different identities hashed to the same short key (never expected)."""


class MissingDependencyError(EmbedstoreError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    ``extra`` is what to install, e.g. ``"embedstore[report]"``: the message
    becomes ``matplotlib is not installed: pip install 'embedstore[report]'``.

    Examples
    --------
    >>> np = require("numpy", "embedstore")
    >>> np.__name__
    'numpy'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise MissingDependencyError(
            f"{module} is not installed: pip install '{extra}'"
        ) from exc
