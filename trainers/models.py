"""Fusion heads: early fusion, late fusion and single-modality baselines.

The architectures follow protocol §3.1. A *block* is, by default,
``Linear → ReLU → Dropout(p) → BatchNorm1d``; the order is configurable
(``block_order``), and so are the hidden sizes and the dropout.

* :class:`EarlyFusion`: concat(text, image) (text first) → blocks (default
  ``[128]``) → Linear to the outputs.
* :class:`LateFusion`: one stack of blocks per modality (default ``[64]``
  each) → concat(text, image) → Linear to the outputs.
* :class:`SingleModality`: one modality → blocks (default ``[128]``) → Linear.

Every head is called as ``model(x_image, x_text)`` (the unused input may be
``None`` for a single-modality head). With the defaults, the trainable
parameter counts equal the paper's exactly, e.g. 623,105 for early fusion of
DINOv2 (768) and LLaMA-2 (4096) with one output.

Examples
--------
>>> m = build_model("early", image_dim=768, text_dim=4096, output_size=1)
>>> count_params(m), round(model_mib(m), 2)
(623105, 2.38)
>>> count_params(build_model("late", image_dim=512, text_dim=512, output_size=7))
66823
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from embedstore.errors import InputError

#: Default block order (protocol §3.1).
BLOCK_ORDER = ("linear", "relu", "dropout", "batchnorm")
FUSIONS = ("early", "late", "image", "text")
DEFAULT_HIDDEN = {"early": (128,), "late": (64,), "image": (128,), "text": (128,)}


def _layer(kind: str, d_in: int, d_out: int, p: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    if kind == "relu":
        return nn.ReLU()
    if kind == "dropout":
        return nn.Dropout(p)
    if kind == "batchnorm":
        return nn.BatchNorm1d(d_out)
    raise InputError(f"unknown block layer {kind!r}: use linear, relu, dropout, batchnorm")


def mlp_blocks(d_in: int, hidden: Sequence[int], dropout: float = 0.0,
               block_order: Sequence[str] = BLOCK_ORDER) -> nn.Sequential:
    """A stack of blocks ``d_in → hidden[0] → ... → hidden[-1]``.

    Examples
    --------
    >>> [type(m).__name__ for m in mlp_blocks(8, [4])]
    ['Linear', 'ReLU', 'Dropout', 'BatchNorm1d']
    """
    order = tuple(block_order)
    if order.count("linear") != 1:
        raise InputError(f"block order {order}: it must contain 'linear' exactly once, "
                         "e.g. linear,relu,dropout,batchnorm")
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout {dropout}: use a probability in [0, 1)")
    layers: list[nn.Module] = []
    for h in hidden:
        if int(h) <= 0:
            raise InputError(f"hidden size {h}: use positive integers, e.g. 128")
        for kind in order:
            layers.append(_layer(kind, d_in, int(h), float(dropout)))
        d_in = int(h)
    return nn.Sequential(*layers)


class EarlyFusion(nn.Module):
    """concat(text, image) → blocks → Linear(outputs)."""

    def __init__(self, image_dim: int, text_dim: int, output_size: int,
                 hidden: Sequence[int] = DEFAULT_HIDDEN["early"], dropout: float = 0.0,
                 block_order: Sequence[str] = BLOCK_ORDER) -> None:
        super().__init__()
        self.body = mlp_blocks(text_dim + image_dim, hidden, dropout, block_order)
        self.out = nn.Linear(hidden[-1] if hidden else text_dim + image_dim, output_size)

    def forward(self, x_image: torch.Tensor, x_text: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(torch.cat((x_text, x_image), dim=1)))


class LateFusion(nn.Module):
    """A block stack per modality → concat(text, image) → Linear(outputs).

    ``forward(..., return_branches=True)`` also returns the two branch outputs
    ``(h_text, h_image)``, for the intra-modal alignment loss.
    """

    def __init__(self, image_dim: int, text_dim: int, output_size: int,
                 hidden: Sequence[int] = DEFAULT_HIDDEN["late"], dropout: float = 0.0,
                 block_order: Sequence[str] = BLOCK_ORDER,
                 hidden_image: Sequence[int] | None = None) -> None:
        super().__init__()
        hidden_image = hidden if hidden_image is None else hidden_image
        self.text = mlp_blocks(text_dim, hidden, dropout, block_order)
        self.image = mlp_blocks(image_dim, hidden_image, dropout, block_order)
        width = (hidden[-1] if hidden else text_dim) + (hidden_image[-1] if hidden_image else image_dim)
        self.out = nn.Linear(width, output_size)

    def forward(self, x_image: torch.Tensor, x_text: torch.Tensor, return_branches: bool = False):
        h_text, h_image = self.text(x_text), self.image(x_image)
        logits = self.out(torch.cat((h_text, h_image), dim=1))
        return (logits, h_text, h_image) if return_branches else logits


class SingleModality(nn.Module):
    """One modality → blocks → Linear(outputs); the other input is ignored."""

    def __init__(self, modality: str, dim: int, output_size: int,
                 hidden: Sequence[int] = DEFAULT_HIDDEN["image"], dropout: float = 0.0,
                 block_order: Sequence[str] = BLOCK_ORDER) -> None:
        super().__init__()
        if modality not in ("image", "text"):
            raise InputError(f"modality {modality!r}: use image or text")
        self.modality = modality
        self.body = mlp_blocks(dim, hidden, dropout, block_order)
        self.out = nn.Linear(hidden[-1] if hidden else dim, output_size)

    def forward(self, x_image: torch.Tensor | None, x_text: torch.Tensor | None) -> torch.Tensor:
        return self.out(self.body(x_image if self.modality == "image" else x_text))


def build_model(fusion: str, *, image_dim: int | None, text_dim: int | None, output_size: int,
                hidden: Sequence[int] | None = None, dropout: float = 0.0,
                block_order: Sequence[str] = BLOCK_ORDER,
                hidden_image: Sequence[int] | None = None) -> nn.Module:
    """The head for ``fusion`` (early, late, image, text) with these widths.

    ``hidden`` defaults to ``[128]`` (early, single-modality) or ``[64]`` per
    branch (late). For late fusion ``hidden`` is the text branch and
    ``hidden_image`` (default: same as ``hidden``) the image branch.

    Examples
    --------
    >>> count_params(build_model("image", image_dim=768, text_dim=None, output_size=2, hidden=[32]))
    24738
    """
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}: use one of {', '.join(FUSIONS)}")
    hidden = tuple(DEFAULT_HIDDEN[fusion] if hidden is None else hidden)
    if int(output_size) < 1:
        raise InputError(f"output size {output_size}: use 1 (single-logit BCE) or the number of classes")
    if fusion in ("early", "late") and (not image_dim or not text_dim):
        raise InputError(f"{fusion} fusion needs both an image and a text width")
    if fusion == "early":
        return EarlyFusion(int(image_dim), int(text_dim), int(output_size), hidden, dropout, block_order)
    if fusion == "late":
        return LateFusion(int(image_dim), int(text_dim), int(output_size), hidden, dropout, block_order,
                          None if hidden_image is None else tuple(hidden_image))
    dim = image_dim if fusion == "image" else text_dim
    if not dim:
        raise InputError(f"{fusion}-only head needs the {fusion} width")
    return SingleModality(fusion, int(dim), int(output_size), hidden, dropout, block_order)


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, as the paper prints them."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_mib(model: nn.Module) -> float:
    """Model memory as protocol §3.4: all parameters × 4 bytes / 2^20 ("MB" in the paper)."""
    return sum(p.numel() for p in model.parameters()) * 4 / 2**20
