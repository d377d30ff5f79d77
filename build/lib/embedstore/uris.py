"""Where a store lives: the embedded per-user default, ``$EMBEDSTORE_URI``, object-store schemes."""

from __future__ import annotations

import os

_REMOTE_SCHEMES = ("s3://", "gs://", "az://", "abfs://", "db://", "memory://", "s3+ddb://")


def default_uri() -> str:
    """The embedded default store: ``$XDG_DATA_HOME/embedstore/store``.

    It is per user and shared by all of that user's experiments, so
    embeddings are computed once.

    Examples
    --------
    >>> default_uri().endswith("embedstore/store")
    True
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "embedstore", "store")


def resolve_uri(uri: str | os.PathLike | None = None) -> str:
    """``uri`` if given, else ``$EMBEDSTORE_URI``, else :func:`default_uri`.

    Examples
    --------
    >>> resolve_uri("s3://bucket/lab")
    's3://bucket/lab'
    """
    if uri is None or str(uri) == "":
        uri = os.environ.get("EMBEDSTORE_URI") or default_uri()
    return str(uri)
