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
