"""embedstore: compute-once multimodal embeddings in LanceDB, for CPU-only labs.

The public API is imported lazily, so ``import embedstore`` (and the CLI's
``--help``) stays fast::

    >>> import embedstore
    >>> embedstore.Store.__name__
    'Store'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Store": "embedstore.store",
    "open_store": "embedstore.store",
    "WriteResult": "embedstore.store",
    "VersionInfo": "embedstore.versions",
    "default_uri": "embedstore.store",
    "new_run_tag": "embedstore.store",
    "ModelIdentity": "embedstore.identity",
    "EmbedstoreError": "embedstore.errors",
    "InputError": "embedstore.errors",
    "DimensionMismatchError": "embedstore.errors",
    "NotFoundError": "embedstore.errors",
    "AmbiguousModelError": "embedstore.errors",
    "ModelNotAvailableError": "embedstore.errors",
    "vectors_of": "embedstore.data",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embedstore' has no attribute {name!r}")
