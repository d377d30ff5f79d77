"""Known model ids with their defaults (``embedstore models`` lists them).

Any other id of an accepted form works too (see
:mod:`embedstore.extractors.resolve`); this list documents the paper's models,
common alternatives and the offline built-ins, and carries per-id defaults
(e.g. LLaMA-2-7B is 8-bit by default: in fp32 it does not fit in 23 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
        Default ``--backend``: ``auto`` (the fastest gated backend of the
        measured table) for the builtin and paper encoders, else ``torch``.
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
               "last_token", None, "paper text encoder as the paper ran it: llama.cpp Q8_0, one text per call, "
               "last-token state after the final norm, 512-token context", backend="auto"),
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
