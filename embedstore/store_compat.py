"""The :class:`~embedstore.store.Store` methods from before the managers, each a one-line delegation.

Old spelling → new home:

* ``store.register_model(i)`` → ``store.models.register(i)``;
  ``store.model(ref, m)`` → ``store.models.get(ref, m)`` (keys and canonical
  ids; a user's bare ``ORG/NAME`` or local path: :func:`embedstore.refs.lookup_model`);
  ``store.models()`` → ``store.models.list()``.
* ``store.register_alignment(...)`` → ``store.alignments.register(...)``;
  ``store.alignment(k)`` → ``store.alignments.get(k)``;
  ``store.alignments()`` → ``store.alignments.list()``.
* ``store.tag(t, tag, v)`` → ``store.tags(t).create(tag, v)``;
  ``store.tags(t)`` is the :class:`~embedstore.versions.Tags` manager, still a ``{tag: version}`` dict.
* ``store.versions(t)`` → :func:`embedstore.versions.table_versions`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .identity import ModelIdentity
from .model_registry import AlignmentRecord
from .versions import Tags, VersionInfo, table_versions


class StoreCompat:
    """The old registry, tag and version methods of :class:`~embedstore.store.Store`."""

    def register_model(self, identity: ModelIdentity, *, tag: str | None = None) -> str:
        """Record ``identity``; see :meth:`ModelRegistry.register <embedstore.model_registry.ModelRegistry.register>`."""
        return self.models.register(identity, tag=tag)  # type: ignore[attr-defined]

    def model(self, ref: str, modality: str | None = None) -> ModelIdentity:
        """The identity ``ref`` names; see :meth:`ModelRegistry.get <embedstore.model_registry.ModelRegistry.get>`."""
        return self.models.get(ref, modality)  # type: ignore[attr-defined]

    def register_alignment(self, alignment_key: str, method: str, settings: dict[str, Any],
                           gap: Sequence[float] | np.ndarray, *, tag: str | None = None) -> str:
        """Record an alignment; see :meth:`AlignmentRegistry.register <embedstore.model_registry.AlignmentRegistry.register>`."""
        return self.alignments.register(alignment_key, method, settings, gap, tag=tag)  # type: ignore[attr-defined]

    def alignment(self, alignment_key: str) -> AlignmentRecord:
        """The registered alignment ``alignment_key``."""
        return self.alignments.get(alignment_key)  # type: ignore[attr-defined]

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of table ``name`` with their tags, oldest first."""
        return table_versions(self, name)

    def tag(self, name: str, tag: str, version: int | None = None) -> int:
        """Create (or move) ``tag`` on ``version`` (default latest) of table ``name``; returns it.

        The same as ``store.tags(name).create(tag, version)`` (:class:`~embedstore.versions.Tags`).
        """
        return Tags(self, name, read=False).create(tag, version)  # as before: no listing of the other tags
