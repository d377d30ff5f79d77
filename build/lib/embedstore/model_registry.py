"""Model and alignment registries (mixed into :class:`embedstore.store.Store`).

* ``models``: ``model_key`` → :class:`~embedstore.identity.ModelIdentity`.
  Registering the same identity twice is a no-op; a different identity with
  an existing key raises :class:`~embedstore.errors.KeyCollisionError`.
* ``alignments``: ``alignment_key`` → settings JSON and the fitted gap vector.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .errors import AmbiguousModelError, KeyCollisionError, NotFoundError
from .identity import ModelIdentity
from .schema import ALIGNMENTS, ALIGNMENTS_SCHEMA, MODELS, MODELS_SCHEMA
from .sql import eq


@dataclass(frozen=True)
class AlignmentRecord:
    """A registered alignment: its key, method, settings and gap vector."""

    alignment_key: str
    method: str
    settings: dict[str, Any]
    gap: np.ndarray


class RegistryMixin:
    """Registry methods of :class:`~embedstore.store.Store`."""

    # -- models -----------------------------------------------------------
    def register_model(self, identity: ModelIdentity, *, tag: str | None = None) -> str:
        """Record ``identity`` in the model registry; returns its ``model_key``.

        Examples
        --------
        >>> import tempfile
        >>> from embedstore import Store, ModelIdentity
        >>> s = Store(tempfile.mkdtemp() + "/s")
        >>> ident = ModelIdentity("hf:x", "abc", ("text",), {"text": 4})
        >>> s.register_model(ident) == ident.key
        True
        """
        key = identity.key
        existing = self._model_row(key)
        if existing is not None:
            stored = ModelIdentity.from_json(existing["identity"])
            if stored.keyed_fields() != identity.keyed_fields():
                raise KeyCollisionError(f"model_key {key} already names a different identity ({stored.model_id})")
            return key
        row = pa.table({
            "model_key": [key], "model_id": [identity.model_id],
            "modalities": [",".join(identity.modalities)],
            "dims": [json.dumps(identity.dims, sort_keys=True)],
            "identity": [identity.to_json()],
            "registered_at": [time.strftime("%Y-%m-%dT%H:%M:%S")],
        }, schema=MODELS_SCHEMA)
        self.upsert(MODELS, row, key="model_key", schema=MODELS_SCHEMA, tag=tag)
        return key

    def _model_row(self, key: str) -> dict[str, Any] | None:
        if not self.has_table(MODELS):
            return None
        rows = self.read(MODELS, where=eq("model_key", key)).to_pylist()
        return rows[0] if rows else None

    def models(self) -> list[ModelIdentity]:
        """All registered model identities, oldest first."""
        if not self.has_table(MODELS):
            return []
        rows = sorted(self.read(MODELS).to_pylist(), key=lambda r: r["registered_at"])
        return [ModelIdentity.from_json(r["identity"]) for r in rows]

    def model(self, ref: str, modality: str | None = None) -> ModelIdentity:
        """Resolve a model reference to its one registered identity.

        ``ref`` is a ``model_key`` (always unambiguous), a model id spelled as
        it was given to ``extract`` (a bare ``ORG/NAME`` or a local path is
        canonicalised the same way), or ``ID@KEYPREFIX`` (the identity of
        ``ID`` whose key starts with ``KEYPREFIX``).

        Raises
        ------
        NotFoundError
            When nothing matches; the message lists what is registered.
        AmbiguousModelError
            When an id names several identities (e.g. pooling ``cls`` and
            ``mean``, fp32 and 8-bit); the message lists the candidates with
            their key, pooling, dtype and weights, and how to pick one.

        Examples
        --------
        >>> import tempfile
        >>> from embedstore import Store, ModelIdentity
        >>> s = Store(tempfile.mkdtemp() + "/s")
        >>> cls = ModelIdentity("hf:x", "abc", ("text",), {"text": 4}, pooling="cls")
        >>> mean = ModelIdentity("hf:x", "abc", ("text",), {"text": 4}, pooling="mean")
        >>> _ = s.register_model(cls)
        >>> s.model("hf:x") == cls
        True
        >>> _ = s.register_model(mean)
        >>> s.model(f"hf:x@{mean.key[:6]}") == mean and s.model(cls.key) == cls
        True
        """
        models = [m for m in self.models() if modality is None or modality in m.modalities]
        exact = [m for m in models if m.key == ref]
        if exact:
            return exact[0]
        refs = {ref, _canonical(ref)}
        matches = [m for m in models if m.model_id in refs]
        if not matches and "@" in ref:
            base, _, prefix = ref.rpartition("@")
            refs = {base, _canonical(base)}
            matches = [m for m in models if m.model_id in refs and prefix and m.key.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousModelError(_ambiguous(ref, modality, matches))
        known = ", ".join(sorted({f"{m.model_id} ({m.key})" for m in self.models()})) or "none"
        want = f" with modality '{modality}'" if modality else ""
        raise NotFoundError(
            f"no model '{ref}'{want} in store {self.uri}; registered: {known}. "
            "Run 'embedstore extract' with that model first"
        )

    # -- alignments -------------------------------------------------------
    def register_alignment(self, alignment_key: str, method: str, settings: dict[str, Any],
                           gap: Sequence[float] | np.ndarray, *, tag: str | None = None) -> str:
        """Record an alignment's settings and gap vector; returns the key."""
        row = pa.table({
            "alignment_key": [alignment_key], "method": [method],
            "settings": [json.dumps(settings, sort_keys=True, default=str)],
            "gap": [np.asarray(gap, dtype=np.float32).tolist()],
            "registered_at": [time.strftime("%Y-%m-%dT%H:%M:%S")],
        }, schema=ALIGNMENTS_SCHEMA)
        if self.has_table(ALIGNMENTS) and self.read(
                ALIGNMENTS, where=eq("alignment_key", alignment_key)).num_rows:
            return alignment_key
        self.upsert(ALIGNMENTS, row, key="alignment_key", schema=ALIGNMENTS_SCHEMA, tag=tag)
        return alignment_key

    def alignments(self) -> list[AlignmentRecord]:
        """All registered alignments."""
        if not self.has_table(ALIGNMENTS):
            return []
        return [AlignmentRecord(r["alignment_key"], r["method"], json.loads(r["settings"]),
                                np.asarray(r["gap"], dtype=np.float32))
                for r in self.read(ALIGNMENTS).to_pylist()]

    def alignment(self, alignment_key: str) -> AlignmentRecord:
        """The registered alignment ``alignment_key``."""
        for rec in self.alignments():
            if rec.alignment_key == alignment_key:
                return rec
        raise NotFoundError(f"no alignment '{alignment_key}' in store {self.uri}: see 'embedstore info'")


def _ambiguous(ref: str, modality: str | None, matches: list[ModelIdentity]) -> str:
    """The one-line message of a model id naming several identities."""
    cands = "; ".join(f"{m.key} (pooling {m.pooling or '-'}, dtype {m.dtype}, weights {m.weights})"
                      for m in matches)
    want = f" {modality}" if modality else ""
    return (f"model '{ref}' names {len(matches)}{want} identities: {cands}. Pick one by its model_key "
            f"or as {matches[0].model_id}@KEYPREFIX, e.g. --model {matches[0].model_id}@{matches[-1].key[:8]}")


def _canonical(ref: str) -> str:
    """The canonical model id of ``ref`` (as ``extract`` registers it), or ``ref``."""
    from .errors import EmbedstoreError
    from .extractors.resolve import canonical_id

    try:
        return canonical_id(ref)
    except EmbedstoreError:
        return ref
