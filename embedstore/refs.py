"""Model references at the edge: a user's spelling of a model, turned into what the store matches.

The store's registry (:class:`embedstore.model_registry.ModelRegistry`)
matches ``model_key`` values and canonical model ids only, and never imports
the extractors. Everything that takes a model reference from a user (the
pipelines, the CLI, the trainers) resolves it here, so a bare ``ORG/NAME``, a
local model directory or ``ID@KEYPREFIX`` keep naming what ``extract``
registered. Importing this module also installs :func:`canonical_ref` as the
registry's default spelling map (:func:`embedstore.model_registry.set_canonical`),
so the store's reads given a user's spelling (``Store.model``, ``Snapshot``)
behave as before.
"""

from __future__ import annotations

from .identity import ModelIdentity
from .model_registry import set_canonical


def canonical_ref(ref: str) -> str:
    """The canonical model id of ``ref`` (as ``extract`` registers it), or ``ref`` unchanged.

    Examples
    --------
    >>> canonical_ref("facebook/dinov2-base")
    'hf:facebook/dinov2-base'
    >>> canonical_ref("0123abcd")  # a model_key (or anything not a model id) passes through
    '0123abcd'
    """
    from .errors import EmbedstoreError
    from .extractors.resolve import canonical_id

    try:
        return canonical_id(ref)
    except EmbedstoreError:
        return ref


def lookup_model(store, ref: str | ModelIdentity, modality: str | None = None) -> ModelIdentity:
    """The registered identity a user's ``ref`` names, in ``store``.

    Parameters
    ----------
    store : Store
    ref : str or ModelIdentity
        A ``model_key``, a model id spelled as it was given to ``extract``
        (bare ``ORG/NAME`` and local paths are canonicalised the same way),
        or ``ID@KEYPREFIX``. An identity is returned as it is.
    modality : str, optional
        Only identities with this modality match.

    Raises
    ------
    NotFoundError, AmbiguousModelError
        As :meth:`ModelRegistry.get <embedstore.model_registry.ModelRegistry.get>`.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store, ModelIdentity
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> ident = ModelIdentity("hf:org/name", "abc", ("text",), {"text": 4})
    >>> _ = s.models.register(ident)
    >>> lookup_model(s, "org/name", "text") == ident
    True
    """
    if isinstance(ref, ModelIdentity):
        return ref
    return store.models.get(ref, modality, canonical=canonical_ref)


set_canonical(canonical_ref)
