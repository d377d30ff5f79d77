"""The id schemes (one registered :class:`Scheme` per prefix) and the known model ids with their defaults.

**Schemes.** Each loader module registers the prefix it serves, in the manner
of lancedb's embedding-function registry: ``@register("gguf") class
GGUFScheme(Scheme)``. :func:`~embedstore.extractors.resolve.canonical_id`,
:func:`~embedstore.extractors.resolve` and
:func:`~embedstore.extractors.load_extractor` look the scheme up with
:func:`lookup`; none of them lists the schemes. A new encoder family is one
subclass and one ``register`` call (see ``tests/test_extractors_registry.py``).
Registration imports nothing heavy: schemes import torch and friends only
when they resolve or load a model.

**Known ids** (``embedstore models`` lists them). Any other id of an accepted
form works too; this list documents the paper's models, common alternatives
and the offline built-ins, and carries per-id defaults (e.g. LLaMA-2-7B is
8-bit by default: in fp32 it does not fit in 23 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from ..errors import InputError

# The registry imports no other extractors module (they all import it): in the
# signatures below, Any stands for ResolvedModel (resolve.py) and Extractor (base.py).


class Scheme:
    """How the ids of one scheme are canonicalised, resolved and loaded; subclass and :func:`register`.

    Attributes
    ----------
    name : str
        The prefix before ``:`` (set by :func:`register`; one instance per name).
    bare_order : int or None
        Ids written without a prefix are offered to :meth:`claims` of the
        schemes that set this, lowest first (``gguf`` 0: a ``.gguf`` path;
        ``local`` 1: an existing path; ``hf`` 2: ``ORG/NAME``).
    runtime : str or None
        ``None``: the forward runs on torch or ONNX Runtime, chosen by
        :mod:`embedstore.extractors.backends`; else the one runtime this
        scheme runs on (``llama.cpp``), and ``backend`` must be left unset.
    """

    name: str = ""
    bare_order: int | None = None
    runtime: str | None = None

    def claims(self, rest: str) -> bool:
        """Whether the bare id ``rest`` (no scheme prefix) is one of this scheme's (see ``bare_order``)."""
        return False

    def canonical(self, rest: str) -> str:
        """The canonical id of ``<name>:<rest>`` (cheap: no download, no hashing)."""
        return f"{self.name}:{rest}"

    def resolve(self, model_id: str, rest: str) -> Any:
        """The :class:`~embedstore.extractors.resolve.ResolvedModel` (local weights, fingerprint) of the
        canonical ``model_id``; ``rest`` is the part after the prefix."""
        raise InputError(f"{model_id}: the {self.name}: scheme names no model by itself; "
                         "use the canonical id canonical_id() returns")

    def load(self, resolved: Any, *, quantize: str | None, pooling: str | None, **opts: Any) -> Any:
        """The :class:`~embedstore.extractors.base.Extractor` of ``resolved`` (its model loads on first use)."""
        raise InputError(f"{resolved.model_id}: the {self.name}: scheme has no loader")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


_S = TypeVar("_S", bound=type)
_SCHEMES: dict[str, Scheme] = {}


def register(*names: str) -> Callable[[_S], _S]:
    """Class decorator: serve ids ``<name>:...`` for each of ``names`` with an instance of the class.

    Registering a name again replaces its scheme (the last registration wins).

    Examples
    --------
    >>> @register("doc-example")
    ... class DocScheme(Scheme):
    ...     pass
    >>> lookup("doc-example").canonical("x")
    'doc-example:x'
    >>> unregister("doc-example")
    """
    def add(cls: _S) -> _S:
        for name in names:
            if not name or ":" in name:
                raise InputError(f"scheme name {name!r} must be non-empty and contain no ':'")
            scheme = cls()
            scheme.name = name
            _SCHEMES[name] = scheme
        return cls

    return add


def unregister(name: str) -> None:
    """Remove scheme ``name`` (a no-op when it is not registered)."""
    _SCHEMES.pop(name, None)


def lookup(name: str) -> Scheme:
    """The registered :class:`Scheme` of ``name``.

    Raises
    ------
    InputError
        When no scheme of that name is registered (the message lists them).
    """
    try:
        return _SCHEMES[name]
    except KeyError:
        raise InputError(f"unknown model id scheme {name!r}: use one of {', '.join(scheme_names())}") from None


def scheme_names() -> tuple[str, ...]:
    """The registered scheme names, in registration order."""
    return tuple(_SCHEMES)


def bare_scheme(rest: str) -> Scheme | None:
    """The scheme that claims an id written without a prefix, or ``None``."""
    for scheme in sorted((s for s in _SCHEMES.values() if s.bare_order is not None), key=lambda s: s.bare_order):
        if scheme.claims(rest):
            return scheme
    return None


@dataclass(frozen=True)
class KnownModel:
    """One known model id and its defaults.

    Attributes
    ----------
    model_id : str
    modalities : tuple of str
    dims : dict
        Output width per modality.
    pooling : str
        Default pooling.
    quantize : str or None
        Default ``quantize`` (``None`` = fp32).
    note : str
        Where it comes from / what it is for.
    options : dict
        Other defaults passed to the extractor.
    backend : str
        Default ``--backend``: ``auto`` (a runtime of the fp32 key, ONNX
        Runtime where the measured table has it >= 1.3x torch fp32 quiet and
        loaded, else torch; same key either way) for the builtin and paper
        encoders, else ``torch``.
    """

    model_id: str
    modalities: tuple[str, ...]
    dims: dict[str, int]
    pooling: str
    quantize: str | None
    note: str
    options: dict = field(default_factory=dict)
    backend: str = "torch"


_BOTH = ("image", "text")
KNOWN: tuple[KnownModel, ...] = (
    KnownModel("hf:facebook/dinov2-base", ("image",), {"image": 768}, "cls", None,
               "paper image encoder: DINOv2 ViT-B/14, CLS after final norm, squash 224 + ImageNet norm",
               backend="auto"),
    KnownModel("hf:facebook/dinov2-small", ("image",), {"image": 384}, "cls", None, "DINOv2 ViT-S/14"),
    KnownModel("hf:facebook/dinov2-large", ("image",), {"image": 1024}, "cls", None, "DINOv2 ViT-L/14"),
    KnownModel("hf:facebook/dinov2-giant", ("image",), {"image": 1536}, "cls", None, "DINOv2 ViT-g/14"),
    KnownModel("hf:meta-llama/Llama-2-7b-chat-hf", ("text",), {"text": 4096}, "last_token", "8bit",
               "paper text encoder, approximated: LLaMA-2-7B chat, last-token hidden state, 8-bit bitsandbytes "
               "(LLM.int8, not the paper's llama.cpp Q8_0: use the gguf: id for the paper's numerics), 512 tokens"),
    KnownModel("gguf:TheBloke/Llama-2-7b-Chat-GGUF/llama-2-7b-chat.Q8_0.gguf", ("text",), {"text": 4096},
               "last_token", None, "paper text encoder as the paper ran it: llama.cpp Q8_0, each text alone (batched, shared "
               "prefixes once), last-token state after the final norm, 512-token context", backend="auto"),
    KnownModel("hf-clip:openai/clip-vit-base-patch32", _BOTH, {"image": 512, "text": 512}, "clip_projection", None,
               "paper VLM: CLIP ViT-B/32 (transformers), L2-normalised, 77 tokens", backend="auto"),
    KnownModel("open_clip:ViT-B-32/openai", _BOTH, {"image": 512, "text": 512}, "clip_projection", None,
               "the same CLIP weights through open_clip"),
    KnownModel("open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", _BOTH,
               {"image": 512, "text": 512}, "clip_projection", None, "BiomedCLIP (medical CLIP, PubMedBERT text tower)"),
    KnownModel("builtin:minilm-l6", ("text",), {"text": 384}, "mean", None,
               "offline: all-MiniLM-L6-v2 from the embedstore[offline] extra (demo default)", backend="auto"),
    KnownModel("builtin:efficientnet-lite0", ("image",), {"image": 1280}, "mean", None,
               "offline: ImageNet EfficientNet-Lite0 from the embedstore[offline] extra (demo default)",
               backend="auto"),
)


def list_known() -> list[KnownModel]:
    """The known model ids, paper models first.

    Examples
    --------
    >>> [m.model_id for m in list_known()][0]
    'hf:facebook/dinov2-base'
    """
    return list(KNOWN)


def known(model_id: str) -> KnownModel | None:
    """The :class:`KnownModel` of ``model_id`` (canonical form), or ``None``.

    Examples
    --------
    >>> known("builtin:minilm-l6").dims
    {'text': 384}
    >>> known("hf:someone/else") is None
    True
    """
    for m in KNOWN:
        if m.model_id == model_id:
            return m
    return None
