"""transformers ``CLIPModel`` (``hf-clip:``): the paper's CLIP path, both modalities.

Images: the CLIP processor's settings (shortest side 224, bicubic, centre crop
224, CLIP mean/std), read from ``preprocessor_config.json``. Texts: the
model's tokenizer, padded, truncated to 77 tokens (the text tower's positions).
Both outputs are the projected embeddings, L2-normalised, as ``CLIPModel``
returns them in ``image_embeds``/``text_embeds`` (512-d for ViT-B/32).
"""

from __future__ import annotations

from typing import Any

from ..errors import require
from ..identity import ModelIdentity
from .base import (CLIP_MEAN, CLIP_STD, Extractor, ImagePreprocess, check_pooling, dtype_of, processor_preprocess,
                   token_lengths, unit_rows)
from .resolve import ResolvedModel


class HFClip(Extractor):
    """A transformers CLIP model: L2-normalised projected image and text embeddings."""

    modalities = ("image", "text")

    def __init__(self, resolved: ResolvedModel, config: dict[str, Any], *, quantize: str | None = None,
                 pooling: str | None = None, max_length: int | None = None) -> None:
        super().__init__(resolved, dtype=dtype_of(quantize, resolved.model_id))

        check_pooling(pooling, "clip_projection", ("clip_projection",), resolved.model_id)
        self.config = config
        vision = config.get("vision_config") or {}
        text = config.get("text_config") or {}
        pre = processor_preprocess(resolved.path, {"image_size": vision.get("image_size", 224)})
        if not (resolved.path / "preprocessor_config.json").is_file():
            side = int(vision.get("image_size", 224))
            pre = ImagePreprocess(size=side, resize="shortest", crop=side, mean=CLIP_MEAN, std=CLIP_STD,
                                  interpolation="bicubic")
        self.image_preprocess = pre
        positions = int(text.get("max_position_embeddings", 77))
        self.max_length = min(int(max_length or positions), positions)
        self.model: Any = None
        self.tokenizer: Any = None

    def _identity(self) -> ModelIdentity:
        width = int(self.config.get("projection_dim", 512))
        pre = {"image": self.image_preprocess.to_dict(), "text": {"tokenizer": "model", "padding": True},
               "normalize": "l2"}
        return self._make_identity({"image": width, "text": width}, pre, "clip_projection", self.max_length)

    def _load(self) -> None:
        import torch
        require("transformers", "embedstore[hf]")
        from transformers import AutoTokenizer, CLIPModel

        path = str(self.resolved.path)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = CLIPModel.from_pretrained(path, local_files_only=True, dtype=torch.float32).eval()

    def text_lengths(self, texts):
        """Tokens per text (what a batch pads to), for length-sorted batching."""
        self.ensure_loaded()
        return token_lengths(self.tokenizer, texts, self.max_length)

    def _prepare_texts(self, texts: list[str]):
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def _forward_images(self, batch):
        return unit_rows(_embeds(self.model.get_image_features(pixel_values=batch)))

    def _forward_texts(self, enc):
        return unit_rows(_embeds(self.model.get_text_features(input_ids=enc["input_ids"],
                                                                  attention_mask=enc["attention_mask"])))


def _embeds(out):
    """transformers 5 returns a model output whose ``pooler_output`` is the projection; 4.x a tensor."""
    return out if hasattr(out, "ndim") else out.pooler_output
