"""Fusion heads: the paper's exact parameter counts and model memory, configurable blocks."""

from __future__ import annotations

import pytest
import torch

from embedstore.errors import InputError
from embedstore.trainers.models import LateFusion, build_model, count_params, mlp_blocks, model_mib

# (image_dim, text_dim, outputs) -> (early, late) trainable parameters, protocol §3.1 / issue table
PAPER_COUNTS = [
    ((768, 4096, 1), (623_105, 311_809)),   # BRSET DINOv2 + LLaMA-2
    ((512, 512, 1), (131_585, 66_049)),     # BRSET CLIP
    ((768, 4096, 7), (623_879, 312_583)),   # HAM DINOv2 + LLaMA-2
    ((512, 512, 7), (132_359, 66_823)),     # HAM CLIP
    ((768, 4096, 2), (623_234, 311_938)),   # Satellite DINOv2 + LLaMA-2
    ((512, 512, 2), (131_714, 66_178)),     # Satellite CLIP
]


@pytest.mark.parametrize("dims,expected", PAPER_COUNTS)
def test_default_heads_match_the_papers_parameter_counts(dims, expected):
    image_dim, text_dim, out = dims
    early = build_model("early", image_dim=image_dim, text_dim=text_dim, output_size=out)
    late = build_model("late", image_dim=image_dim, text_dim=text_dim, output_size=out)
    assert (count_params(early), count_params(late)) == expected


@pytest.mark.parametrize("dims,mib", [((768, 4096), (2.38, 1.19)), ((512, 512), (0.50, 0.25))])
def test_model_memory_matches_the_papers_mib(dims, mib):
    early = build_model("early", image_dim=dims[0], text_dim=dims[1], output_size=1)
    late = build_model("late", image_dim=dims[0], text_dim=dims[1], output_size=1)
    assert (round(model_mib(early), 2), round(model_mib(late), 2)) == mib


def test_default_block_is_linear_relu_dropout_batchnorm_and_order_is_configurable():
    kinds = [type(m).__name__ for m in mlp_blocks(10, [4], dropout=0.2)]
    assert kinds == ["Linear", "ReLU", "Dropout", "BatchNorm1d"]
    other = [type(m).__name__ for m in mlp_blocks(10, [4, 3], block_order=("linear", "batchnorm", "relu"))]
    assert other == ["Linear", "BatchNorm1d", "ReLU"] * 2
    with pytest.raises(InputError, match="exactly once"):
        mlp_blocks(10, [4], block_order=("relu", "dropout"))
    with pytest.raises(InputError, match="dropout"):
        mlp_blocks(10, [4], dropout=1.5)


def test_hidden_sizes_and_dropout_are_configurable():
    m = build_model("early", image_dim=8, text_dim=4, output_size=3, hidden=[16, 8], dropout=0.3)
    linears = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(12, 16), (16, 8), (8, 3)]
    assert all(d.p == 0.3 for d in m.modules() if isinstance(d, torch.nn.Dropout))


def test_early_fusion_puts_text_first():
    m = build_model("early", image_dim=2, text_dim=3, output_size=1, hidden=[])
    with torch.no_grad():
        m.out.weight.zero_()
        m.out.weight[0, :3] = 1.0  # only the first 3 inputs count: they must be the text
        m.out.bias.zero_()
        out = m(torch.zeros(1, 2), torch.ones(1, 3))
    assert float(out) == 3.0


def test_late_fusion_returns_branch_outputs_and_separate_image_branch():
    m = LateFusion(image_dim=6, text_dim=5, output_size=2, hidden=[4], hidden_image=[4])
    m.eval()
    logits, h_t, h_i = m(torch.randn(3, 6), torch.randn(3, 5), return_branches=True)
    assert logits.shape == (3, 2) and h_t.shape == h_i.shape == (3, 4)


def test_single_modality_heads_use_only_their_input():
    img = build_model("image", image_dim=6, text_dim=None, output_size=2).eval()
    txt = build_model("text", image_dim=None, text_dim=5, output_size=2).eval()
    assert img(torch.randn(4, 6), None).shape == (4, 2)
    assert txt(None, torch.randn(4, 5)).shape == (4, 2)
    with pytest.raises(InputError, match="image width"):
        build_model("image", image_dim=None, text_dim=5, output_size=2)
    with pytest.raises(InputError, match="unknown fusion"):
        build_model("middle", image_dim=1, text_dim=1, output_size=1)
