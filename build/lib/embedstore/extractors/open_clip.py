"""open_clip models (``open_clip:``), e.g. LAION CLIPs and medical CLIPs such as BiomedCLIP.

Forms:

* ``open_clip:ARCH/TAG`` — a pretrained tag (``open_clip:ViT-B-32/openai``),
  fetched from its hub repo through the local cache;
* ``open_clip:ARCH/CHECKPOINT`` — a local weights file for a known (or
  ``open_clip.add_model_config``-registered) architecture;
* ``open_clip:hf-hub:ORG/NAME`` — a hub repo with ``open_clip_config.json``
  (``open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``);
* ``open_clip:local-dir:/dir`` or just ``/dir`` — the same layout on disk.

Images use the model's preprocessing config (resize mode, size, mean/std,
interpolation) through :class:`~embedstore.extractors.base.ImagePreprocess`;
texts the model's tokenizer at its context length. Outputs are L2-normalised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError, require
from ..identity import ModelIdentity
from .base import CLIP_MEAN, CLIP_STD, Extractor, ImagePreprocess, check_pooling, dtype_of, unit_rows
from .resolve import (ResolvedModel, fingerprint, hf_snapshot, hub_offline, not_available,
                      offline_hub_if_needed, read_json)

_PATTERNS = ["open_clip_*", "*.json", "*.txt"]


def resolve_open_clip(model_id: str, rest: str) -> ResolvedModel:
    """Resolve the part after ``open_clip:`` to local weights and a fingerprint."""
    if rest.startswith("local-dir:"):
        path = Path(rest[len("local-dir:"):])
        cfg = read_json(path / "open_clip_config.json")
        return _with_tokenizer(ResolvedModel(model_id, "open_clip", path, fingerprint(path),
                                             {"config": cfg, "source": "dir"}), model_id)
    if rest.startswith("hf-hub:"):
        path, commit = hf_snapshot(rest[len("hf-hub:"):], model_id, patterns=_PATTERNS)
        cfg = read_json(path / "open_clip_config.json")
        return _with_tokenizer(ResolvedModel(model_id, "open_clip", path, commit,
                                             {"config": cfg, "source": "dir"}), model_id)
    arch, _, pretrained = rest.partition("/")
    open_clip = require("open_clip", "embedstore[open-clip]")
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise InputError(f"unknown open_clip architecture {arch!r} in {model_id}: see open_clip.list_models(), "
                         "or register a config with open_clip.add_model_config")
    if Path(pretrained).is_file():
        ckpt, weights, pcfg = Path(pretrained), fingerprint(pretrained), {}
    else:
        pcfg = open_clip.get_pretrained_cfg(arch, pretrained)
        if not pcfg:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            raise InputError(f"open_clip architecture {arch} has no pretrained tag {pretrained!r}: use one of "
                             f"{', '.join(tags) or '(none)'} or a checkpoint file path")
        ckpt, weights = _pretrained_file(open_clip, pcfg, model_id)
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": {k: pcfg[k] for k in
                                                      ("mean", "std", "interpolation", "resize_mode") if k in pcfg}}
    extra = {"config": cfg, "source": "arch", "arch": arch, "checkpoint": str(ckpt),
             "quick_gelu": bool(pcfg.get("quick_gelu", False))}
    return _with_tokenizer(ResolvedModel(model_id, "open_clip", ckpt, weights, extra), model_id)


def _pretrained_file(open_clip, pcfg: dict[str, Any], model_id: str) -> tuple[Path, str]:
    hub = pcfg.get("hf_hub")
    if hub:
        parts = hub.split("/")
        repo, filename = "/".join(parts[:2]), "/".join(p for p in parts[2:] if p)
        path, commit = hf_snapshot(repo, model_id, patterns=[filename] if filename else _PATTERNS)
        files = [path / filename] if filename else sorted(
            [p for p in path.iterdir() if p.name.startswith("open_clip_") and p.suffix in (".safetensors", ".bin", ".pth")],
            key=lambda p: p.suffix != ".safetensors")
        if not files or not files[0].is_file():
            raise not_available(model_id, f"no open_clip weights in the cached snapshot {path}")
        return files[0], commit
    url = pcfg.get("url")
    if not url:
        raise not_available(model_id, "the tag names no download source")
    cached = Path.home() / ".cache" / "clip" / Path(url).name
    if not cached.is_file():
        if hub_offline():
            raise not_available(model_id, f"{cached} is not downloaded and the network is offline")
        cached = Path(open_clip.pretrained.download_pretrained_from_url(url))
    return cached, fingerprint(cached)


def _with_tokenizer(res: ResolvedModel, model_id: str) -> ResolvedModel:
    """Resolve a hub tokenizer / text tower config (BiomedCLIP's PubMedBERT) up front, failing fast."""
    text_cfg = res.extra["config"].get("model_cfg", {}).get("text_cfg", {})
    names = {text_cfg.get("hf_tokenizer_name"), text_cfg.get("hf_model_name")} - {None, ""}
    weights, extra = res.weights, dict(res.extra)
    for name in sorted(names):
        if res.path is not None and res.path.is_dir() and (res.path / "tokenizer_config.json").is_file():
            extra.setdefault("tokenizer_dir", str(res.path))
            continue
        path, commit = hf_snapshot(name, model_id, patterns=["*.json", "*.txt", "*.model"], need_weights=False)
        if name == text_cfg.get("hf_tokenizer_name"):
            extra["tokenizer_dir"] = str(path)
        weights += f"+{name}@{commit}"
    return ResolvedModel(res.model_id, res.scheme, res.path, weights, extra)


class OpenClip(Extractor):
    """An open_clip CLIP: L2-normalised image and text embeddings."""

    modalities = ("image", "text")

    def __init__(self, resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None,
                 **opts: Any) -> None:
        super().__init__(resolved, dtype=dtype_of(quantize, resolved.model_id))

        if opts:
            raise InputError(f"unknown options for {resolved.model_id}: {', '.join(opts)}")
        check_pooling(pooling, "clip_projection", ("clip_projection",), resolved.model_id)
        cfg = resolved.extra["config"]
        self.model_cfg = cfg.get("model_cfg", cfg)
        pre = cfg.get("preprocess_cfg", {})
        size = self.model_cfg.get("vision_cfg", {}).get("image_size", 224)
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        mode = pre.get("resize_mode", "shortest")
        if mode not in ("shortest", "squash"):
            raise InputError(f"{resolved.model_id}: open_clip resize_mode {mode!r} is not supported; "
                             "embedstore supports 'shortest' and 'squash'")
        self.image_preprocess = ImagePreprocess(
            size=size, resize=mode, crop=size if mode == "shortest" else None,
            mean=tuple(pre.get("mean", CLIP_MEAN)), std=tuple(pre.get("std", CLIP_STD)),
            interpolation=pre.get("interpolation", "bicubic"))
        self.context_length = int(self.model_cfg.get("text_cfg", {}).get("context_length", 77))
        self.model: Any = None
        self.tokenizer: Any = None

    def _identity(self) -> ModelIdentity:
        width = int(self.model_cfg["embed_dim"])
        pre = {"image": self.image_preprocess.to_dict(), "text": {"tokenizer": "open_clip"}, "normalize": "l2"}
        return self._make_identity({"image": width, "text": width}, pre, "clip_projection", self.context_length)

    def _load(self) -> None:
        open_clip = require("open_clip", "embedstore[open-clip]")
        res = self.resolved
        with offline_hub_if_needed():
            if res.extra["source"] == "dir":
                name = f"local-dir:{res.path}"
                self.model = open_clip.create_model(name, pretrained_text=False, require_pretrained=True)
            else:
                name = res.extra["arch"]
                self.model = open_clip.create_model(name, pretrained=res.extra["checkpoint"], pretrained_text=False,
                                                    force_quick_gelu=res.extra["quick_gelu"], require_pretrained=True)
            self.model.eval()
            tok_dir = res.extra.get("tokenizer_dir")
            if tok_dir:
                from open_clip.tokenizer import HFTokenizer

                text_cfg = self.model_cfg.get("text_cfg", {})
                self.tokenizer = HFTokenizer(tok_dir, context_length=self.context_length,
                                             tokenizer_mode=text_cfg.get("tokenizer_mode"),
                                             **text_cfg.get("tokenizer_kwargs", {}))
            else:
                self.tokenizer = open_clip.get_tokenizer(name, context_length=self.context_length)

    def _prepare_texts(self, texts: list[str]):
        return self.tokenizer(texts)

    def _forward_images(self, batch):
        return unit_rows(self.model.encode_image(batch))

    def _forward_texts(self, tokens):
        return unit_rows(self.model.encode_text(tokens))
