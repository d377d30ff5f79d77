"""Hugging Face transformers encoders: vision models, BERT-family encoders, causal LMs.

The family is read from the model's ``config.json`` (:func:`hf_family`):

* **vision** (DINOv2, ViT, ConvNeXt, ...): pooling ``cls`` (token 0 after the
  final norm), ``mean`` (of the patch tokens) or ``pooler``. ``facebook/dinov2-*``
  use the paper's preprocessing: squash-resize to 224, ImageNet mean/std;
  other models follow their ``preprocessor_config.json``.
* **text encoders** (BERT family): mean pooling over the attention mask, as
  sentence-transformers does; its ``1_Pooling``/``Normalize``/``max_seq_length``
  settings are honoured when present.
* **causal LMs** (Llama, Mistral, GPT-2, ...): the paper's pooling is the final
  hidden state of the last real token (``last_token``, after the final norm,
  unnormalised); ``mean`` is an option. Newlines become spaces and the
  tokenizer's BOS is kept, as llama.cpp did. ``quantize="8bit"`` loads the
  weights with bitsandbytes (needs accelerate), ``bf16`` in bfloat16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError, require
from ..identity import ModelIdentity
from .base import (Extractor, ImagePreprocess, check_pooling, dtype_of, processor_preprocess, token_lengths,
                   unit_rows)
from .registry import Scheme, register
from .resolve import ResolvedModel, canonical_local, fingerprint, hf_snapshot, is_local, read_json

#: Vision model types whose token 0 is a CLS token.
CLS_TYPES = {"vit", "deit", "beit", "dinov2", "dinov2_with_registers", "data2vec-vision", "vit_msn",
             "vit_mae", "ijepa", "dinov3_vit"}
CAUSAL_TYPES = {"llama", "mistral", "mixtral", "gpt2", "gpt_neox", "qwen2", "qwen3", "gemma", "gemma2",
                "phi", "phi3", "falcon", "opt", "bloom", "gptj"}
LLM_MAX_LENGTH = 512  # llama.cpp's default n_ctx in the paper's code


def hf_family(config: dict[str, Any], where: str) -> str:
    """``clip``, ``causal``, ``vision`` or ``text`` for a transformers ``config.json``.

    Examples
    --------
    >>> hf_family({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "x")
    'causal'
    >>> hf_family({"model_type": "bert", "vocab_size": 30522}, "x")
    'text'
    """
    mt = config.get("model_type", "")
    if mt == "clip":
        return "clip"
    archs = config.get("architectures") or []
    if mt in CAUSAL_TYPES or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal"
    if "num_channels" in config or mt in CLS_TYPES:
        return "vision"
    if "vocab_size" in config:
        return "text"
    raise InputError(f"{where}: model type {mt!r} is neither a vision model nor a text encoder/causal LM "
                     "that embedstore can pool; pass a DINOv2/ViT, BERT-family, causal LM or CLIP model")


def load_hf(resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None,
            **opts: Any) -> Extractor:
    """Build the right extractor for a resolved ``hf:`` model directory."""
    assert resolved.path is not None
    config = read_json(resolved.path / "config.json")
    family = hf_family(config, resolved.model_id)
    if family == "clip":
        from .clip_hf import HFClip

        return HFClip(resolved, config, quantize=quantize, pooling=pooling, **opts)
    cls = {"causal": HFCausalLM, "vision": HFVision, "text": HFTextEncoder}[family]
    return cls(resolved, config, quantize=quantize, pooling=pooling, **opts)


@register("hf")
class HFScheme(Scheme):
    """``hf:ORG/NAME`` (hub, through its cache), ``hf:/local/dir``, or a bare ``ORG/NAME``.

    :func:`load_hf` picks the family from ``config.json`` (a CLIP config
    becomes :class:`~embedstore.extractors.clip_hf.HFClip`).
    """

    bare_order = 2

    def claims(self, rest: str) -> bool:
        return rest.count("/") == 1 and not rest.startswith(("/", ".")) and " " not in rest

    def canonical(self, rest: str) -> str:
        return canonical_local(rest, self.name) if is_local(rest) else f"{self.name}:{rest}"

    def resolve(self, model_id: str, rest: str) -> ResolvedModel:
        if rest.startswith("/"):
            return ResolvedModel(model_id, self.name, Path(rest), fingerprint(rest))
        path, commit = hf_snapshot(rest, model_id)
        return ResolvedModel(model_id, self.name, path, commit)

    def load(self, resolved: ResolvedModel, *, quantize: str | None, pooling: str | None, **opts: Any) -> Extractor:
        return load_hf(resolved, quantize=quantize, pooling=pooling, **opts)


@register("hf-clip")
class HFClipScheme(HFScheme):
    """``hf-clip:ORG/NAME`` or ``hf-clip:/local/dir``: transformers ``CLIPModel``, loaded as :class:`HFScheme` does."""

    bare_order = None


class _HFModel(Extractor):
    """Shared loading of a transformers ``AutoModel`` (fp32/bf16/8-bit)."""

    def __init__(self, resolved: ResolvedModel, config: dict[str, Any], *, dtype: str) -> None:
        super().__init__(resolved, dtype=dtype)
        self.config = config
        self.model: Any = None
        self.tokenizer: Any = None

    def _load_model(self, weights_in_bf16: bool = False) -> None:
        import torch
        require("transformers", "embedstore[hf]")
        from transformers import AutoModel

        kwargs: dict[str, Any] = {"local_files_only": True}
        if self.dtype == "8bit":
            require("accelerate", "embedstore[8bit]")
            require("bitsandbytes", "embedstore[8bit]")
            from transformers import BitsAndBytesConfig

            kwargs.update(quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu")
        else:
            kwargs["dtype"] = torch.bfloat16 if (self.dtype == "bf16" and weights_in_bf16) else torch.float32
        self.model = AutoModel.from_pretrained(str(self.resolved.path), **kwargs).eval()

    def _load_tokenizer(self) -> None:
        require("transformers", "embedstore[hf]")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(self.resolved.path), local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.unk_token or self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"

    def text_lengths(self, texts):
        """Tokens per text (what a batch pads to), for length-sorted batching."""
        self.ensure_loaded()
        return token_lengths(self.tokenizer, texts, self.max_length)

    def _tokenize(self, texts: list[str], max_length: int):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


class HFVision(_HFModel):
    """A transformers vision backbone (DINOv2, ViT, ConvNeXt, ...)."""

    modalities = ("image",)

    def __init__(self, resolved: ResolvedModel, config: dict[str, Any], *, quantize: str | None = None,
                 pooling: str | None = None) -> None:
        super().__init__(resolved, config, dtype=dtype_of(quantize, resolved.model_id))
        mt = config.get("model_type", "")
        self.has_cls = mt in CLS_TYPES
        self.pooling = check_pooling(pooling, "cls" if self.has_cls else "pooler",
                                ("cls", "mean", "pooler") if self.has_cls else ("mean", "pooler"), resolved.model_id)
        self.registers = int(config.get("num_register_tokens", 0) or 0)
        if mt.startswith("dinov2"):  # the paper: Resize((224, 224)) + ImageNet normalisation, no crop
            self.image_preprocess = ImagePreprocess(size=224, resize="squash")
        else:
            self.image_preprocess = processor_preprocess(resolved.path, config)

    def _identity(self) -> ModelIdentity:
        c = self.config
        width = c.get("hidden_size")
        if self.pooling != "cls" and c.get("hidden_sizes"):
            width = c["hidden_sizes"][-1]
        if not width:
            raise InputError(f"{self.resolved.model_id}: cannot tell the output width from config.json")
        return self._make_identity({"image": int(width)}, self.image_preprocess.to_dict(), self.pooling)

    def _load(self) -> None:
        self._load_model()

    def _forward_images(self, batch):
        out = self.model(pixel_values=batch)
        if self.pooling == "pooler":
            return out.pooler_output.flatten(1)
        h = out.last_hidden_state
        if self.pooling == "cls":
            return h[:, 0]
        if h.ndim == 4:  # convnets: (n, C, H, W)
            return h.mean(dim=(2, 3))
        start = 1 + self.registers if self.has_cls else 0
        return h[:, start:].mean(dim=1)


def _sentence_transformers(path: Path) -> dict[str, Any]:
    """Pooling mode, normalisation and max length from sentence-transformers files, if any."""
    out: dict[str, Any] = {}
    pool = path / "1_Pooling" / "config.json"
    if pool.is_file():
        p = read_json(pool)
        out["pooling"] = "cls" if p.get("pooling_mode_cls_token") else "mean"
    modules = path / "modules.json"
    if modules.is_file():
        out["normalize"] = any(m.get("type", "").endswith("Normalize") for m in read_json(modules))
    st = path / "sentence_bert_config.json"
    if st.is_file() and read_json(st).get("max_seq_length"):
        out["max_length"] = int(read_json(st)["max_seq_length"])
    return out


def _max_length(path: Path, config: dict[str, Any], cap: int) -> int:
    limits = [cap]
    if config.get("max_position_embeddings"):
        limits.append(int(config["max_position_embeddings"]))
    tc = path / "tokenizer_config.json"
    if tc.is_file():
        m = read_json(tc).get("model_max_length")
        if isinstance(m, (int, float)) and 0 < m < 1_000_000:
            limits.append(int(m))
    return min(limits)


class HFTextEncoder(_HFModel):
    """A BERT-family encoder with masked mean pooling (sentence-transformers style)."""

    modalities = ("text",)

    def __init__(self, resolved: ResolvedModel, config: dict[str, Any], *, quantize: str | None = None,
                 pooling: str | None = None, max_length: int | None = None) -> None:
        super().__init__(resolved, config, dtype=dtype_of(quantize, resolved.model_id, ("fp32", "bf16", "8bit")))
        st = _sentence_transformers(resolved.path)
        self.pooling = check_pooling(pooling, st.get("pooling", "mean"), ("mean", "cls"), resolved.model_id)
        self.normalize = bool(st.get("normalize", False))
        self.max_length = int(max_length or st.get("max_length") or _max_length(resolved.path, config, 512))

    def _identity(self) -> ModelIdentity:
        width = int(self.config["hidden_size"])
        pre = {"tokenizer": "model", "padding": "right", "normalize": self.normalize}
        return self._make_identity({"text": width}, pre, self.pooling, self.max_length)

    def _load(self) -> None:
        self._load_tokenizer()
        self._load_model()

    def _prepare_texts(self, texts: list[str]):
        return self._tokenize(texts, self.max_length)

    def _forward_texts(self, enc):
        h = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                       **({"token_type_ids": enc["token_type_ids"]} if "token_type_ids" in enc else {})
                       ).last_hidden_state.float()
        if self.pooling == "cls":
            out = h[:, 0]
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            out = (h * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return unit_rows(out) if self.normalize else out


class HFCausalLM(_HFModel):
    """A decoder-only LM pooled at the last real token (the paper's LLaMA-2 setting)."""

    modalities = ("text",)

    def __init__(self, resolved: ResolvedModel, config: dict[str, Any], *, quantize: str | None = None,
                 pooling: str | None = None, max_length: int | None = None) -> None:
        super().__init__(resolved, config, dtype=dtype_of(quantize, resolved.model_id, ("fp32", "bf16", "8bit")))
        self.pooling = check_pooling(pooling, "last_token", ("last_token", "mean"), resolved.model_id)
        self.max_length = int(max_length or _max_length(resolved.path, config, LLM_MAX_LENGTH))
        self.autocast_bf16 = False  # bf16 means bf16 weights here

    def _identity(self) -> ModelIdentity:
        c = self.config
        width = c.get("hidden_size") or c.get("n_embd") or c.get("d_model")
        if not width:
            raise InputError(f"{self.resolved.model_id}: cannot tell the hidden size from config.json")
        pre = {"tokenizer": "model", "bos": "tokenizer default", "newlines": "space", "padding": "right"}
        return self._make_identity({"text": int(width)}, pre, self.pooling, self.max_length)

    def _load(self) -> None:
        self._load_tokenizer()
        self._load_model(weights_in_bf16=True)

    def _prepare_texts(self, texts: list[str]):
        return self._tokenize([t.replace("\r\n", " ").replace("\n", " ") for t in texts], self.max_length)

    def _forward_texts(self, enc):
        import torch

        mask = enc["attention_mask"]
        h = self.model(input_ids=enc["input_ids"], attention_mask=mask).last_hidden_state.float()
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)
            return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        last = mask.sum(dim=1) - 1
        return h[torch.arange(h.shape[0]), last]
