"""embedstore: compute-once multimodal embeddings in LanceDB, for CPU-only labs.

The public API is imported lazily, so ``import embedstore`` (and the CLI's
``--help``) stays fast::

    >>> import embedstore
    >>> embedstore.Store.__name__
    'Store'
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

# A wheel ships the folders cli/ and trainers/ as embedstore.cli and
# embedstore.trainers (pyproject's package-dir). In a source checkout run
# without installing (python -m pytest from the repo root), they sit beside
# this package: let the embedstore namespace find them there.
_checkout = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "trainers").is_dir() and (_checkout / "pyproject.toml").is_file() \
        and (_checkout / "trainers" / "__init__.py").is_file():
    __path__.append(str(_checkout))  # type: ignore[name-defined]  # noqa: F821

_EXPORTS = {
    "Store": "embedstore.store",
    "open_store": "embedstore.store",
    "WriteResult": "embedstore.writes",
    "VersionInfo": "embedstore.versions",
    "default_uri": "embedstore.uris",
    "new_run_tag": "embedstore.store",
    "ModelIdentity": "embedstore.identity",
    "EmbedstoreError": "embedstore.errors",
    "InputError": "embedstore.errors",
    "DimensionMismatchError": "embedstore.errors",
    "NotFoundError": "embedstore.errors",
    "AmbiguousModelError": "embedstore.errors",
    "ModelNotAvailableError": "embedstore.errors",
    "vectors_of": "embedstore.vectors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embedstore' has no attribute {name!r}")
