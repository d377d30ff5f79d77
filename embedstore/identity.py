"""Model identity: what exactly produced an embedding.

A :class:`ModelIdentity` is the full description of an encoder as used: the
scheme-prefixed id, the resolved weights fingerprint, preprocessing, pooling,
dtype/quantisation, truncation and output width. Its :attr:`ModelIdentity.key`
(the ``model_key``) is a short hash of everything except ``library_versions``,
which are recorded in the registry for provenance but do not invalidate the
cache when a library is upgraded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .keys import stable_hash

MODALITIES = ("image", "text")


@dataclass(frozen=True)
class ModelIdentity:
    """Everything that determines an encoder's output vectors.

    Parameters
    ----------
    model_id : str
        Scheme-prefixed id, e.g. ``hf:facebook/dinov2-base`` or a local path.
    weights : str
        Resolved weights fingerprint (hub commit hash or file sha256).
    modalities : tuple of str
        ``("image",)``, ``("text",)`` or ``("image", "text")``.
    dims : dict
        Output width per modality, e.g. ``{"image": 768}``.
    preprocessing : dict
        Image/text preprocessing settings (resize, mean/std, template...).
    pooling : str
        e.g. ``cls``, ``mean``, ``last_token``, ``clip_projection``.
    dtype : str
        ``fp32``, ``bf16`` or ``8bit``.
    truncation : int or None
        Maximum text tokens, if any.
    backend : str
        What runs the forward: ``torch`` (eager), ``onnxruntime`` or
        ``llama.cpp`` (see :mod:`embedstore.extractors.backends`).
    backend_version : str
        Version of a non-torch backend's runtime (and of the exported graph's
        opset), e.g. ``onnxruntime 1.31/opset 17``. Keyed: another runtime
        version gives new keys.
    library_versions : dict
        Versions of torch/transformers/... (recorded, not part of the key).

    Examples
    --------
    >>> a = ModelIdentity("hf:x", "abc", ("text",), {"text": 4})
    >>> b = ModelIdentity("hf:x", "abc", ("text",), {"text": 4}, dtype="bf16")
    >>> a.key != b.key and len(a.key) == 16
    True
    >>> c = ModelIdentity("hf:x", "abc", ("text",), {"text": 4}, backend="onnxruntime",
    ...                   backend_version="onnxruntime 1.31/opset 17")
    >>> c.key not in (a.key, b.key)
    True
    """

    model_id: str
    weights: str
    modalities: tuple[str, ...]
    dims: dict[str, int]
    preprocessing: dict[str, Any] = field(default_factory=dict)
    pooling: str = ""
    dtype: str = "fp32"
    truncation: int | None = None
    backend: str = "torch"
    backend_version: str = ""
    library_versions: dict[str, str] = field(default_factory=dict, compare=False)

    def keyed_fields(self) -> dict[str, Any]:
        """The fields that define :attr:`key` (all but library versions)."""
        d = asdict(self)
        d.pop("library_versions")
        d["modalities"] = list(self.modalities)
        if self.backend == "torch" and not self.backend_version:
            # torch eager keys are those of embedstore 0.1 (torch's version is provenance,
            # as before), so stores made before backends existed keep their vectors
            del d["backend"], d["backend_version"]
        return d

    @property
    def key(self) -> str:
        """Short stable hash of :meth:`keyed_fields` (the ``model_key``)."""
        return stable_hash(self.keyed_fields())

    def dim(self, modality: str) -> int:
        """Output width for ``modality``."""
        return int(self.dims[modality])

    def to_json(self) -> str:
        """Serialise to JSON (round-trips through :meth:`from_json`)."""
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelIdentity":
        """Inverse of :meth:`to_json`.

        Examples
        --------
        >>> a = ModelIdentity("hf:x", "abc", ("text",), {"text": 4})
        >>> ModelIdentity.from_json(a.to_json()).key == a.key
        True
        """
        d = json.loads(text)
        d["modalities"] = tuple(d["modalities"])
        return cls(**d)
