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

from .formats import ToDict
from .keys import stable_hash

MODALITIES = ("image", "text")
#: Minimum per-row cosine against torch fp32, on the probe batch, for another runtime's fp32 vectors to be
#: keyed as torch fp32 (see "Backends and keys" in :class:`ModelIdentity`). Measured: 0.9999999 or closer.
FP32_SHARE_MIN_COS = 0.99999


@dataclass(frozen=True)
class ModelIdentity(ToDict):
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
        The numerics the key stands for: ``torch`` (torch fp32 eager, and
        every runtime that the key rule below lets share its key; also
        torch bf16/8-bit with their ``dtype``), ``onnxruntime`` (int8, and
        fp32 as keyed before the rule) or ``llama.cpp`` (see
        :mod:`embedstore.extractors.backends`).
    backend_version : str
        Version of a non-torch backend's runtime (and of the exported graph's
        opset), e.g. ``onnxruntime 1.31/opset 17``. Keyed: another runtime
        version gives new keys.
    code_version : int
        Version of embedstore's own preprocessing and pooling code that
        produced the vectors (see "Code versions" below).
    library_versions : dict
        Versions of torch/transformers/... (recorded, not part of the key);
        ``runtime`` among them when the forward ran on something other than
        what ``backend`` says, e.g. ``onnxruntime 1.32/opset 17`` under the
        shared fp32 key (see :attr:`runtime`).

    Backends and keys (one key per model across a lab)
    --------------------------------------------------
    A lab's machines differ (CPU flags, load), so which runtime is fastest
    differs too; vectors must not. The rule:

    * **fp32 paths share one key.** torch fp32 eager and ONNX Runtime fp32
      compute the same function in the same precision; they differ only in
      the order of float sums (about 1e-7 relative, like torch with another
      thread count). So ONNX Runtime fp32 is keyed as torch fp32 (``backend
      "torch"``, no ``backend_version``; the runtime is recorded in ``library_versions``),
      and every ONNX Runtime session is checked against torch fp32 on the
      probe batch before it writes: its minimum per-row cosine must be at
      least :data:`FP32_SHARE_MIN_COS` (100x tighter than the 0.999 parity
      gate), or the run is refused before anything is written. Two machines
      of a lab, one on torch and one on ONNX Runtime, fill and reuse the
      same rows.
    * **Lower precision keeps its own key.** bf16 (about 1e-5 off, and
      emulated at a loss on CPUs without native bf16), bitsandbytes 8-bit
      and ONNX Runtime int8 (lossy) change the vectors beyond that
      tolerance, so their ``dtype`` (and int8's runtime version) stay keyed.
      That is why ``--backend auto`` never picks them: its key would then
      depend on the machine (:func:`embedstore.extractors.backends.auto_choice`).
    * **Old stores stay valid.** Identities registered before this rule
      (ONNX Runtime fp32 keyed as ``backend "onnxruntime"`` with its
      version) keep exactly their key: :meth:`keyed_fields` of a given
      identity never changed, only what new runs register. Their vectors
      stay readable under that key and are not moved under the shared key.

    Code versions
    -------------
    The weights and declared settings do not cover embedstore's own code:
    a fix to its image preprocessing or pooling changes the vectors of an
    unchanged identity. The rule: **whoever changes the output of that code
    bumps its version in the same commit** —
    :data:`embedstore.extractors.base.SHARED_CODE_VERSION` for the shared
    image loading/preprocessing, or the extractor class's ``code_version``
    for its own pooling. ``code_version`` is their sum (both only ever grow,
    so a bump never repeats an older value) and enters :attr:`key`, so the
    next extract re-computes instead of serving the old vectors.
    ``code_version == 0`` (the code of release 0.1) is left out of the key,
    so every key, and every store, written by that release stays valid.

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
    >>> c.key  # an ONNX Runtime fp32 identity as registered before the shared fp32 key: unchanged
    'e4ca84360bfbca96'
    >>> d = ModelIdentity("hf:x", "abc", ("text",), {"text": 4},
    ...                   library_versions={"runtime": "onnxruntime 1.32/opset 17"})  # ONNX Runtime fp32 now
    >>> d.key == a.key, d.runtime
    (True, 'onnxruntime 1.32/opset 17')
    >>> a.key  # as in release 0.1
    'e5bf72c0d379c584'
    >>> ModelIdentity("hf:x", "abc", ("text",), {"text": 4}, code_version=1).key != a.key
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
    code_version: int = 0
    library_versions: dict[str, str] = field(default_factory=dict, compare=False)

    def keyed_fields(self) -> dict[str, Any]:
        """The fields that define :attr:`key` (all but library versions; ``code_version`` when nonzero)."""
        d = asdict(self)
        d.pop("library_versions")
        if not d["code_version"]:
            d.pop("code_version")  # release 0.1 keys stay valid
        d["modalities"] = list(self.modalities)
        if self.backend == "torch" and not self.backend_version:
            # torch eager keys are those of embedstore 0.1 (torch's version is provenance,
            # as before), so stores made before backends existed keep their vectors
            del d["backend"], d["backend_version"]
        return d

    @property
    def runtime(self) -> str:
        """What ran the forward: the recorded ``runtime`` (shared fp32 key), else ``backend_version`` or ``backend``.

        Examples
        --------
        >>> ModelIdentity("hf:x", "abc", ("text",), {"text": 4}).runtime
        'torch'
        """
        return self.library_versions.get("runtime") or self.backend_version or self.backend

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
        d.setdefault("code_version", 0)  # registered by release 0.1
        return cls(**d)
