"""Frozen encoders chosen by a scheme-prefixed id: :func:`load_extractor`.

========================================  ==========  =====================================
id                                        modalities  output
========================================  ==========  =====================================
``hf:facebook/dinov2-base``               image       CLS after final norm, 768-d, raw
``hf:<vision model>``                     image       cls / mean / pooler
``hf:meta-llama/Llama-2-7b-chat-hf``      text        last-token hidden state (8-bit)
``hf:<causal LM>``                        text        last_token / mean
``hf:<BERT-family encoder>``              text        masked mean (sentence-transformers)
``hf-clip:openai/clip-vit-base-patch32``  both        projected, L2-normalised, 77 tokens
``open_clip:ARCH/PRETRAINED``             both        projected, L2-normalised
``open_clip:hf-hub:ORG/NAME``             both        e.g. BiomedCLIP
``builtin:minilm-l6``                     text        384-d, offline (``[offline]`` extra)
``builtin:efficientnet-lite0``            image       1280-d, offline (``[offline]`` extra)
``gguf:FILE.gguf``, ``gguf:ORG/REPO/F``  text        llama.cpp, last token, each text alone
a local directory / ``local:``            by config   as its family above
========================================  ==========  =====================================

Creating an extractor resolves the weights (local path, the Hugging Face
cache, or a download when online) and computes its identity; the model is
loaded on first use only. See :mod:`embedstore.extractors.resolve` for the
offline behaviour and :mod:`embedstore.extractors.registry` for defaults.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
# Each loader module registers its scheme(s) when imported (none imports torch at import time).
from . import builtin, gguf, hf, open_clip  # noqa: F401
from .base import Extractor, ImagePreprocess
from .registry import KnownModel, Scheme, known, list_known, lookup, register
from .resolve import ResolvedModel, canonical_id, fingerprint, hub_offline, split_scheme

__all__ = ["Extractor", "ImagePreprocess", "KnownModel", "ResolvedModel", "Scheme", "canonical_id", "fingerprint",
           "hub_offline", "known", "list_known", "load_extractor", "lookup", "register", "resolve"]


def resolve(model_id: str) -> ResolvedModel:
    """Resolve ``model_id`` to local weights and a fingerprint (downloads only when online).

    The canonical id's scheme does it (:meth:`Scheme.resolve`, looked up in
    :mod:`~embedstore.extractors.registry`).

    Raises
    ------
    InputError
        For a malformed id (the message lists the accepted forms).
    ModelNotAvailableError
        When the weights are not available locally and cannot be fetched.
    """
    cid = canonical_id(model_id)
    scheme, rest = split_scheme(cid)
    return lookup(str(scheme)).resolve(cid, rest)


def load_extractor(model_id: str, *, quantize: str | None = None, pooling: str | None = None,
                   backend: str | None = None, parity_gate: bool = True, **opts: Any) -> Extractor:
    """The extractor for ``model_id``; its identity is ready, the model loads on first use.

    Parameters
    ----------
    model_id : str
        A scheme-prefixed id or a local model directory (see the module table).
    quantize : {None, "none", "fp32", "bf16", "8bit"}
        ``None`` takes the id's default (see :func:`list_known`), else fp32.
        ``bf16`` runs under bfloat16 autocast, with linear/convolution
        weights stored in bfloat16 where that gives the same vectors
        (:mod:`embedstore.extractors.bf16`; bfloat16 weights for causal
        LMs); ``8bit`` (bitsandbytes, CPU) is for ``hf:`` text models.
    pooling : str, optional
        Override the default pooling (``cls``/``mean``/``pooler`` for vision,
        ``last_token``/``mean`` for causal LMs, ``mean``/``cls`` for encoders).
    backend : {None, "torch", "onnx", "auto"}
        What runs the forward (see :mod:`embedstore.extractors.backends`).
        ``None`` takes the id's default: ``auto`` for the catalog's builtin
        and paper encoders, else ``torch``. With ``onnx``, ``quantize="8bit"``
        means ONNX Runtime dynamic int8.
    parity_gate : bool
        Refuse a path whose vectors differ from torch fp32 on the probe
        batch: ONNX Runtime fp32 (keyed as torch fp32) below a min per-row
        cosine of 0.99999, bf16 below 0.999. Benchmarks turn it off to
        measure; leave it on.
    **opts
        ``max_length`` for text models (the truncation length); for ``gguf:``
        files also ``batching`` and ``batch_tokens`` (see :mod:`.gguf`).

    Returns
    -------
    Extractor
        With ``.identity`` (its ``.key`` is the model_key), ``.modalities``,
        ``.encode_images``, ``.encode_texts`` and ``.forward_calls``.

    Examples
    --------
    >>> ext = load_extractor("builtin:minilm-l6")  # doctest: +SKIP
    >>> ext.encode_texts(["a lesion on the back"]).shape  # doctest: +SKIP
    (1, 384)
    """
    from .backends import choose

    resolved = resolve(model_id)
    scheme = lookup(resolved.scheme)
    default = known(resolved.model_id)
    if default is not None:
        opts = {**default.options, **opts}
    if scheme.runtime is not None:  # one runtime of its own (llama.cpp): no backend choice
        if backend not in (None, "auto"):
            raise InputError(f"{resolved.model_id} runs on {scheme.runtime} only: drop backend='{backend}'")
        return scheme.load(resolved, quantize=quantize, pooling=pooling, **opts)
    choice = choose(resolved.model_id, backend, quantize, default.backend if default else "torch",
                    default.quantize if default else None)
    ext = scheme.load(resolved, quantize=choice.quantize, pooling=pooling, **opts)
    ext.parity_gate = parity_gate
    ext.use_backend(choice)
    return ext
