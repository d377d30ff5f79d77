"""Backbones of the raw-data baseline: loading, the paper's raw model, its memory formulas.

See :mod:`embedstore.trainers.raw` for the trainer. Text: a BERT-family encoder, CLS
vector of the last layer, ``max_length`` 50. Image: a ViT, ``pooler_output``
(the CLS vector when the checkpoint has no trained pooler), squash resize and
ImageNet normalisation as in the paper (protocol §4).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from embedstore.errors import InputError

from .metrics import data_mib
from .models import build_model, model_mib

DEFAULT_TEXT_MODEL = "hf:bert-base-uncased"
DEFAULT_IMAGE_MODEL = "hf:google/vit-base-patch16-224-in21k"
MAX_LENGTH = 50
FEATURE_DROPOUT = 0.2
BACKBONE_MODES = ("frozen", "finetune")
IMAGE_NORMS = ("imagenet", "model")
#: Bytes of one tokenised text as the paper's loader produced it: int64 ids + mask.
_TOKEN_BYTES = 2 * 8


@dataclass
class Backbones:
    """A text and an image backbone with their tokenizer and image preprocessing.

    Attributes
    ----------
    text, image : torch.nn.Module
        A BERT-family encoder and a ViT (transformers models).
    tokenizer : transformers tokenizer
    preprocess : embedstore.extractors.base.ImagePreprocess
    max_length : int
    info : dict
        Model ids, weights fingerprints, pooling and preprocessing (recorded in runs).
    """

    text: nn.Module
    image: nn.Module
    tokenizer: Any
    preprocess: Any
    max_length: int = MAX_LENGTH
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def text_dim(self) -> int:
        return int(self.text.config.hidden_size)

    @property
    def image_dim(self) -> int:
        return int(self.image.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Pad/truncate to ``max_length`` word-pieces, as the paper's loader did."""
        return dict(self.tokenizer(list(texts), max_length=self.max_length, padding="max_length",
                                   truncation=True, return_tensors="pt"))

    def features(self, pixels: torch.Tensor, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(image feature, text feature): ViT pooler output (or CLS), BERT CLS of the last layer."""
        out = self.image(pixel_values=pixels)
        fi = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state[:, 0]
        ft = self.text(**tokens).last_hidden_state[:, 0]
        return fi, ft

    def modules(self) -> list[nn.Module]:
        return [self.image, self.text]

    def set_trainable(self, flag: bool) -> None:
        for m in self.modules():
            m.requires_grad_(flag)

    def train(self, flag: bool) -> None:
        for m in self.modules():
            m.train(flag)


class RawFusion(nn.Module):
    """Backbones → Dropout(0.2) on each feature → fusion head: the paper's raw model.

    Used to count the paper's model memory and by the efficiency benchmark.

    Examples
    --------
    >>> round(paper_model_mib("early"), 2), round(paper_model_mib("late"), 2)  # doctest: +SKIP
    (747.94, 747.57)
    """

    def __init__(self, backbones: Backbones, head: nn.Module, feature_dropout: float = FEATURE_DROPOUT) -> None:
        super().__init__()
        self.image_backbone, self.text_backbone = backbones.image, backbones.text
        self.backbones = backbones
        self.drop = nn.Dropout(feature_dropout)
        self.head = head

    def forward(self, pixels: torch.Tensor, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        fi, ft = self.backbones.features(pixels, tokens)
        return self.head(self.drop(fi.float()), self.drop(ft.float()))


# -- loading -------------------------------------------------------------------
def _resolve(model_id: str) -> tuple[str, Path, str]:
    """(canonical id, local directory, weights fingerprint) of a Hugging Face model id or directory."""
    from embedstore.extractors.resolve import canonical_id, fingerprint, hf_snapshot, split_scheme

    cid = canonical_id(model_id)
    scheme, rest = split_scheme(cid)
    if scheme not in ("hf", None):
        raise InputError(f"raw backbone '{model_id}': use a Hugging Face id (hf:ORG/NAME) or a saved "
                         "transformers model directory")
    if rest.startswith("/"):
        return cid, Path(rest), fingerprint(rest)
    path, weights = hf_snapshot(rest, cid)
    return cid, path, weights


def _load_hf(path: Path, what: str) -> tuple[nn.Module, str]:
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the missing-pooler load report is handled below
    hf_logging.disable_progress_bar()
    try:
        model, info = AutoModel.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} backbone at {path} cannot be loaded ({str(exc).splitlines()[0][:160]}): "
                         "pass a saved transformers model directory") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    pooling = "pooler"
    if any(k.startswith("pooler") for k in info.get("missing_keys", [])) and hasattr(model, "pooler"):
        model.pooler = None  # no trained pooler in the checkpoint: never use (or count) a random one
        pooling = "cls"
    return model, pooling


def load_backbones(text_model: str = DEFAULT_TEXT_MODEL, image_model: str = DEFAULT_IMAGE_MODEL, *,
                   max_length: int = MAX_LENGTH, image_norm: str = "imagenet") -> Backbones:
    """Load the text and image backbones from ids or local directories (offline: fail fast).

    Parameters
    ----------
    text_model, image_model : str
        ``hf:ORG/NAME`` or a saved transformers model directory.
    max_length : int
        Text truncation/padding length in word-pieces.
    image_norm : {"imagenet", "model"}
        ImageNet mean/std (the paper) or the checkpoint's ``preprocessor_config.json``.
    """
    from transformers import AutoTokenizer

    from embedstore.extractors.base import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
    from embedstore.extractors.resolve import read_json

    if image_norm not in IMAGE_NORMS:
        raise InputError(f"unknown image normalisation {image_norm!r}: use imagenet or model")
    t_id, t_path, t_weights = _resolve(text_model)
    i_id, i_path, i_weights = _resolve(image_model)
    text, t_pool = _load_hf(t_path, "text")
    image, i_pool = _load_hf(i_path, "image")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(t_path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise InputError(f"text backbone {t_path} has no usable tokenizer ({str(exc).splitlines()[0][:120]}): "
                         "save the tokenizer next to the model") from None
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    proc = i_path / "preprocessor_config.json"
    if image_norm == "model" and proc.is_file():
        cfg = read_json(proc)
        mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
    size = int(getattr(image.config, "image_size", 224))
    pre = ImagePreprocess(size=size, resize="squash", mean=mean, std=std)
    info = {"text_model": t_id, "text_weights": t_weights, "text_pooling": "cls",
            "image_model": i_id, "image_weights": i_weights, "image_pooling": i_pool,
            "max_length": int(max_length), "image_preprocess": pre.to_dict(), "text_pooler_loaded": t_pool}
    return Backbones(text.eval(), image.eval(), tokenizer, pre, int(max_length), info)


def random_backbones(vocab_texts: Sequence[str] = (), *, seed: int = 0, workdir: str | None = None,
                     device: str | None = None) -> Backbones:
    """Random-init BERT-base and ViT-base from their default configs (same cost as the pretrained ones).

    The tokenizer is a WordPiece vocabulary built from ``vocab_texts``; texts
    are padded to ``max_length`` anyway, so the compute per text is the same
    as with the real vocabulary. For benchmarks and parameter counts only;
    ``device="meta"`` builds the real classes without allocating weights
    (enough to count parameters).
    """
    import tempfile

    from transformers import BertConfig, BertModel, BertTokenizer, ViTConfig, ViTModel

    from embedstore.extractors.base import ImagePreprocess

    torch.manual_seed(seed)
    words = sorted({w.strip(".,:;()%").lower() for t in vocab_texts for w in str(t).split()} - {""})
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;%-()")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [w for w in words if w not in chars]
    vocab += ["##" + c for c in chars]
    folder = Path(workdir or tempfile.mkdtemp(prefix="embedstore-vocab-"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    with torch.device(device) if device else contextlib.nullcontext():
        text, image = BertModel(BertConfig()).eval(), ViTModel(ViTConfig()).eval()
    info = {"text_model": "random:bert-base (BertConfig())", "image_model": "random:vit-base (ViTConfig())",
            "text_pooling": "cls", "image_pooling": "pooler", "max_length": MAX_LENGTH}
    return Backbones(text, image, tokenizer, ImagePreprocess(size=224), MAX_LENGTH, info)


def paper_model_mib(fusion: str, output_size: int = 1, backbones: Backbones | None = None) -> float:
    """All parameters of BERT-base + ViT-base + the ``fusion`` head, × 4 bytes / 2^20 (paper Table 2).

    Examples
    --------
    >>> round(paper_model_mib("late"), 2)
    747.57
    """
    bb = backbones or random_backbones(device="meta")
    head = build_model(fusion, image_dim=bb.image_dim, text_dim=bb.text_dim, output_size=output_size)
    return model_mib(RawFusion(bb, head))


def raw_data_mib(n_train: int, n_test: int, *, image_size: int = 224, label_width: int = 1,
                 max_length: int = MAX_LENGTH, batch_size: int = 64) -> dict[str, float]:
    """Raw input memory per epoch, MiB: the paper's formulas and the corrected ones.

    The paper counted the float32 image tensors and float32 labels only (its
    texts reached the model as strings); ``test_paper`` keeps its
    train-batch-count bug. ``train``/``test`` add the int64 token ids and
    attention masks and use the right denominator.

    Examples
    --------
    BRSET (protocol §6.2: 7471.78 train, 467.13 "test"):

    >>> d = raw_data_mib(13012, 3254)
    >>> round(d["train_paper"], 2), round(d["test_paper"], 2)
    (7471.78, 467.13)
    """
    pixels = 3 * image_size * image_size
    paper = data_mib(n_train, n_test, pixels, label_width, batch_size)
    full = data_mib(n_train, n_test, pixels + max_length * _TOKEN_BYTES // 4, label_width, batch_size)
    return {"train_paper": paper["train"], "test_paper": paper["test_paper"], "train": full["train"],
            "test": full["test"]}
