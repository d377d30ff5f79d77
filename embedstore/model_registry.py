"""Model and alignment registries: the managers ``store.models`` and ``store.alignments``.

* ``models``: ``model_key`` → :class:`~embedstore.identity.ModelIdentity`.
  Registering the same identity twice is a no-op; a different identity with
  an existing key raises :class:`~embedstore.errors.KeyCollisionError`.
* ``alignments``: ``alignment_key`` → settings JSON and the fitted gap vector.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from .errors import AmbiguousModelError, KeyCollisionError, NotFoundError
from .formats import ToDict
from .identity import ModelIdentity
from .schema import ALIGNMENTS, ALIGNMENTS_SCHEMA, MODELS, MODELS_SCHEMA
from .sql import eq


@dataclass(frozen=True)
class AlignmentRecord(ToDict):
    """A registered alignment: its key, method, settings and gap vector."""

    alignment_key: str
    method: str
    settings: dict[str, Any]
    gap: np.ndarray


#: How a user's spelling of a model maps to its canonical id, installed by the edge (:mod:`embedstore.refs`).
_edge_canonical: Callable[[str], str] | None = None


def _as_given(ref: str) -> str:
    return ref


def set_canonical(fn: Callable[[str], str] | None) -> None:
    """Install ``fn`` (a spelling → canonical id map) as the registry's default for :meth:`ModelRegistry.get`.

    The store parses no model ids itself: the code that knows the id schemes
    (:func:`embedstore.refs.canonical_ref`) registers itself here, as a
    strategy, so the old ``Store.model(ref)`` and the reads that take a model
    reference keep accepting a bare ``ORG/NAME`` or a local path.
    """
    global _edge_canonical
    _edge_canonical = fn


class ModelRegistry:
    """The store's model registry, ``store.models``: register, get, list.

    It matches ``model_key`` values and model ids exactly as registered
    (canonical ids, e.g. ``hf:org/name``); turning a user's spelling (a bare
    ``ORG/NAME``, a local path) into a canonical id happens at the edge,
    :func:`embedstore.refs.lookup_model`. Calling the registry,
    ``store.models()``, lists it (the old ``Store.models()``).

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store, ModelIdentity
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> ident = ModelIdentity("hf:x", "abc", ("text",), {"text": 4})
    >>> s.models.register(ident) == ident.key and s.models.get("hf:x") == ident
    True
    >>> [m.model_id for m in s.models.list()] == [m.model_id for m in s.models()] == ["hf:x"]
    True
    """

    def __init__(self, store) -> None:
        self._store = store

    def __call__(self) -> list[ModelIdentity]:
        return self.list()

    def register(self, identity: ModelIdentity, *, tag: str | None = None) -> str:
        """Record ``identity``; returns its ``model_key`` (a no-op when registered already).

        Raises
        ------
        KeyCollisionError
            When the key already names a different identity.
        """
        key = identity.key
        existing = self._row(key)
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
        self._store.upsert(MODELS, row, key="model_key", schema=MODELS_SCHEMA, tag=tag)
        return key

    def _row(self, key: str) -> dict[str, Any] | None:
        if not self._store.has_table(MODELS):
            return None
        rows = self._store.read(MODELS, where=eq("model_key", key)).to_pylist()
        return rows[0] if rows else None

    def list(self) -> list[ModelIdentity]:
        """All registered model identities, oldest first."""
        if not self._store.has_table(MODELS):
            return []
        rows = sorted(self._store.read(MODELS).to_pylist(), key=lambda r: r["registered_at"])
        return [ModelIdentity.from_json(r["identity"]) for r in rows]

    def get(self, ref: str, modality: str | None = None, *,
            canonical: Callable[[str], str] | None = None) -> ModelIdentity:
        """The one registered identity that ``ref`` names.

        ``ref`` is a ``model_key`` (always unambiguous), a registered model
        id, or ``ID@KEYPREFIX`` (the identity of ``ID`` whose key starts with
        ``KEYPREFIX``). ``canonical`` maps a user's spelling to its canonical
        id, also tried; it defaults to the one the edge installed with
        :func:`set_canonical` (:mod:`embedstore.refs` does, when imported).
        The registry itself parses no model ids.

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
        >>> _ = s.models.register(cls)
        >>> s.models.get("hf:x") == cls
        True
        >>> _ = s.models.register(mean)
        >>> s.models.get(f"hf:x@{mean.key[:6]}") == mean and s.models.get(cls.key) == cls
        True
        """
        spell = canonical or _edge_canonical or _as_given
        everything = self.list()
        models = [m for m in everything if modality is None or modality in m.modalities]
        exact = [m for m in models if m.key == ref]
        if exact:
            return exact[0]
        refs = {ref, spell(ref)}
        matches = [m for m in models if m.model_id in refs]
        if not matches and "@" in ref:
            base, _, prefix = ref.rpartition("@")
            refs = {base, spell(base)}
            matches = [m for m in models if m.model_id in refs and prefix and m.key.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousModelError(_ambiguous(ref, modality, matches))
        known = ", ".join(sorted({f"{m.model_id} ({m.key})" for m in everything})) or "none"
        want = f" with modality '{modality}'" if modality else ""
        hint = ("" if spell is not _as_given or ":" in ref else
                " (the store matches canonical ids and keys; for a bare ORG/NAME or a path use "
                "embedstore.lookup_model(store, ref), which canonicalises it)")
        from .errors import did_you_mean

        near = did_you_mean(ref, [m.model_id for m in everything] + [m.key for m in everything])
        raise NotFoundError(
            f"no model '{ref}'{want} in store {self._store.uri}{near}; registered: {known}. "
            f"Run 'embedstore extract' with that model first{hint}"
        )

    def identity(self, model: "ModelIdentity | str", modality: str | None = None) -> ModelIdentity:
        """``model`` itself when it is an identity, else :meth:`get` of it."""
        return model if isinstance(model, ModelIdentity) else self.get(model, modality)


class AlignmentRegistry:
    """The store's alignment registry, ``store.alignments``: register, get, list.

    Calling it, ``store.alignments()``, lists it (the old ``Store.alignments()``).
    """

    def __init__(self, store) -> None:
        self._store = store

    def __call__(self) -> list[AlignmentRecord]:
        return self.list()

    def register(self, alignment_key: str, method: str, settings: dict[str, Any],
                 gap: Sequence[float] | np.ndarray, *, tag: str | None = None, replace: bool = False) -> str:
        """Record an alignment's settings and gap vector; returns the key.

        A no-op when ``alignment_key`` is registered, unless ``replace``
        (finishing an alignment interrupted by an earlier version, or
        converting one, :mod:`embedstore.upgrade`).
        """
        row = pa.table({
            "alignment_key": [alignment_key], "method": [method],
            "settings": [json.dumps(settings, sort_keys=True, default=str)],
            "gap": [np.asarray(gap, dtype=np.float32).tolist()],
            "registered_at": [time.strftime("%Y-%m-%dT%H:%M:%S")],
        }, schema=ALIGNMENTS_SCHEMA)
        if not replace and self._store.has_table(ALIGNMENTS) and self._store.read(
                ALIGNMENTS, where=eq("alignment_key", alignment_key)).num_rows:
            return alignment_key
        self._store.upsert(ALIGNMENTS, row, key="alignment_key", schema=ALIGNMENTS_SCHEMA, tag=tag)
        return alignment_key

    def list(self) -> list[AlignmentRecord]:
        """All registered alignments, then those this user keeps for a store they cannot write.

        The second kind lives in the user's cache
        (:class:`~embedstore.alignment_home.LocalAlignments`); a key
        registered in the store wins over the same key there.
        """
        out = []
        if self._store.has_table(ALIGNMENTS):
            out = [AlignmentRecord(r["alignment_key"], r["method"], json.loads(r["settings"]),
                                   np.asarray(r["gap"], dtype=np.float32))
                   for r in self._store.read(ALIGNMENTS).to_pylist()]
        from .alignment_home import LocalAlignments

        known = {r.alignment_key for r in out}
        return out + [AlignmentRecord(**r) for r in LocalAlignments(self._store).records()
                      if r["alignment_key"] not in known]

    def get(self, alignment_key: str) -> AlignmentRecord:
        """The registered alignment ``alignment_key``."""
        known = self.list()
        for rec in known:
            if rec.alignment_key == alignment_key:
                return rec
        from .errors import did_you_mean

        raise NotFoundError(f"unknown alignment: no alignment '{alignment_key}' in store {self._store.uri}"
                            f"{did_you_mean(alignment_key, [r.alignment_key for r in known])}: see 'embedstore info'")


def _ambiguous(ref: str, modality: str | None, matches: list[ModelIdentity]) -> str:
    """The one-line message of a model id naming several identities."""
    cands = "; ".join(f"{m.key} (pooling {m.pooling or '-'}, dtype {m.dtype}, weights {m.weights})"
                      for m in matches)
    want = f" {modality}" if modality else ""
    return (f"model '{ref}' names {len(matches)}{want} identities: {cands}. Pick one by its model_key "
            f"or as {matches[0].model_id}@KEYPREFIX, e.g. {matches[0].model_id}@{matches[-1].key[:8]}")
