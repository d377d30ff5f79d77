"""embedstore: compute-once multimodal embeddings in LanceDB, for CPU-only labs.

The public API is imported lazily, so ``import embedstore`` (and the CLI's
``--help``) stays fast::

    >>> import embedstore
    >>> embedstore.Store.__name__
    'Store'

The pipelines (``ingest``, ``extract``, ``align``), the alignment estimator
``GapShift``, ``connect`` (the same as ``open_store``) and the handles
(``Dataset``, ``Rows``, ``Tags``) are exported here too.
"""

from __future__ import annotations

import importlib
import sys
import types
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

#: public name -> "module" (same name there) or "module:attribute"
_EXPORTS = {
    "Store": "embedstore.store",
    "open_store": "embedstore.store",
    "connect": "embedstore.store:open_store",
    "Dataset": "embedstore.dataset",
    "Rows": "embedstore.formats",
    "Tags": "embedstore.versions",
    "lookup_model": "embedstore.refs",
    "ingest": "embedstore.ingest",
    "extract": "embedstore.extract",
    "align": "embedstore.alignment",
    "GapShift": "embedstore.alignment",
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
        module, _, attr = _EXPORTS[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    raise AttributeError(f"module 'embedstore' has no attribute {name!r}")


class _Package(types.ModuleType):
    """The ``embedstore`` module: ``embedstore.ingest``/``embedstore.extract`` stay the pipelines.

    Those two share their names with their submodules, and importing a
    submodule sets the package attribute to the module. Data descriptors
    here win over that attribute, so the root names always give the
    functions (``from embedstore.extract import ExtractReport`` still reads
    the submodule through ``sys.modules``).
    """


def _pipeline(name: str) -> property:
    def get(self: types.ModuleType) -> Any:
        return getattr(importlib.import_module(f"embedstore.{name}"), name)

    def set_(self: types.ModuleType, value: Any) -> None:  # the import system binding the submodule
        pass

    return property(get, set_)


for _name in ("ingest", "extract"):
    setattr(_Package, _name, _pipeline(_name))
sys.modules[__name__].__class__ = _Package
