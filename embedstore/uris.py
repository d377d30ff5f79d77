"""Where a store lives: the embedded per-user default, ``$EMBEDSTORE_URI``, object-store schemes."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError, NotFoundError

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


def check_local_path(path: Path, create: bool) -> None:
    """Check (and with ``create``, make) the local store directory ``path``; one-line errors name the fix."""
    if path.exists():
        if not path.is_dir():
            raise InputError(f"store path {path} is a file: pass a directory as uri=")
        if not os.access(path, os.R_OK | os.X_OK):
            raise InputError(f"store path {path} is not readable: fix its permissions or pass another uri=")
        return
    if not path.parent.exists():
        raise InputError(
            f"store path {path}: parent directory {path.parent} does not exist; "
            "create it first or pass another uri="
        )
    if not create:
        raise NotFoundError(f"no store at {path}: run embedstore.ingest() first or pass another uri=")
    try:
        path.mkdir(exist_ok=True)  # another process may create it at the same moment
    except PermissionError:
        raise InputError(f"store path {path}: cannot create it (permission denied); pass a writable uri=") from None


def committed_locally(path: Path) -> bool:
    """False for the leftover directory of a table creation killed before its first commit."""
    try:
        return any(e.name.endswith(".manifest") for e in os.scandir(path / "_versions"))
    except OSError:
        return False
