"""Every extractor scheme, offline, on tiny random-init models saved to disk and loaded by id/path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embedstore.errors import InputError
from embedstore.extractors import load_extractor
from tests import tiny_models as tm

TEXTS = ["Patient diagnosed via histo.\nAge: 45 years.", "lesion", "the quick brown fox " * 60]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "bert": tm.make_tiny_bert(root / "bert"),
        "vit": tm.make_tiny_vit(root / "vit"),
        "dinov2": tm.make_tiny_dinov2(root / "dinov2", hidden_size=768),
        "llama": tm.make_tiny_llama(root / "llama"),
        "clip": tm.make_tiny_clip_hf(root / "clip"),
        "open_clip": tm.make_tiny_open_clip(root / "open_clip"),
    }


@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    return [Image.fromarray((rng.rand(45 + 10 * i, 60, 3) * 255).astype("uint8")) for i in range(3)]


def test_dinov2_paper_identity_cls_768_unnormalised(models, images):
    ext = load_extractor("hf:" + models["dinov2"])
    ident = ext.identity
    assert ident.model_id == "hf:" + models["dinov2"] and ident.modalities == ("image",)
    assert ident.dims == {"image": 768} and ident.pooling == "cls" and ident.dtype == "fp32"
    assert ident.preprocessing["resize"] == "squash" and ident.preprocessing["size"] == 224
    assert ident.preprocessing["mean"] == [0.485, 0.456, 0.406]
    vec = ext.encode_images(images)
    assert vec.shape == (3, 768) and vec.dtype == np.float32
    assert not np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-2)  # not L2-normalised
    # CLS after the final norm = the HF model's own last_hidden_state[:, 0] on the paper preprocessing
    import torch

    with torch.inference_mode():
        ref = ext.model(pixel_values=ext.image_preprocess(images)).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(vec, ref, rtol=1e-5, atol=1e-5)
    mean = load_extractor(models["dinov2"], pooling="mean")
    assert mean.identity.key != ident.key and mean.identity.pooling == "mean"
    assert not np.allclose(mean.encode_images(images), vec)
    bf16 = load_extractor(models["dinov2"], quantize="bf16")  # bfloat16 autocast
    assert bf16.identity.dtype == "bf16" and bf16.identity.key != ident.key
    low = bf16.encode_images(images)
    assert low.dtype == np.float32 and not np.array_equal(low, vec)
    cos = (low * vec).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(vec, axis=1)
    assert (cos > 0.99).all()


def test_generic_vision_model_uses_its_processor_config(models, images):
    ext = load_extractor(models["vit"])
    pre = ext.identity.preprocessing
    assert (pre["size"], pre["mean"]) == (32, [0.5, 0.5, 0.5])
    assert ext.encode_images(images).shape == (3, 32)
    with pytest.raises(InputError, match="pooling 'last_token' is not available"):
        load_extractor(models["vit"], pooling="last_token")


def test_bert_encoder_masked_mean_pooling(models):
    ext = load_extractor(models["bert"])
    assert ext.identity.pooling == "mean" and ext.identity.truncation == 128
    vec = ext.encode_texts(TEXTS)
    assert vec.shape == (3, 32)
    # padding must not change a text's vector: alone == in a batch with a much longer text
    np.testing.assert_allclose(ext.encode_texts(["lesion"])[0], vec[1], rtol=1e-4, atol=1e-5)
    enc = ext.tokenizer(["lesion"], return_tensors="pt")
    import torch

    with torch.inference_mode():
        h = ext.model(**enc).last_hidden_state[0].numpy()
    np.testing.assert_allclose(vec[1], h.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_llama_last_token_default_hidden_size_and_padding(models):
    ext = load_extractor("hf:" + models["llama"])
    ident = ext.identity
    assert ident.pooling == "last_token" and ident.dims == {"text": 64} and ident.truncation == 512
    vec = ext.encode_texts(TEXTS)
    assert vec.shape == (3, 64)
    np.testing.assert_allclose(ext.encode_texts(["lesion"])[0], vec[1], rtol=1e-4, atol=1e-4)
    enc = ext.tokenizer(["lesion"], return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == ext.tokenizer.bos_token_id  # BOS prepended, like llama.cpp
    import torch

    with torch.inference_mode():
        h = ext.model(**enc).last_hidden_state[0, -1].numpy()
    np.testing.assert_allclose(vec[1], h, rtol=1e-4, atol=1e-5)
    # newlines become spaces (the paper's preprocessing)
    np.testing.assert_allclose(ext.encode_texts(["a\nb"]), ext.encode_texts(["a b"]), atol=1e-6)
    mean = load_extractor(models["llama"], pooling="mean")
    assert mean.identity.key != ident.key


def test_llama_8bit_bitsandbytes_on_cpu(models):
    fp32 = load_extractor(models["llama"])
    q8 = load_extractor(models["llama"], quantize="8bit")
    assert q8.identity.dtype == "8bit" and q8.identity.key != fp32.identity.key
    a, b = fp32.encode_texts(TEXTS[:2]), q8.encode_texts(TEXTS[:2])
    assert b.shape == (2, 64) and np.isfinite(b).all()
    assert not np.array_equal(a, b)  # really quantised...
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert (cos > 0.95).all()  # ...and still the same model
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in q8.model.modules())
    bf16 = load_extractor(models["llama"], quantize="bf16")
    assert bf16.identity.dtype == "bf16" and bf16.encode_texts(TEXTS[:1]).dtype == np.float32


def test_hf_clip_unit_norm_and_77_token_truncation(models, images):
    ext = load_extractor("hf-clip:" + models["clip"])
    ident = ext.identity
    assert ident.modalities == ("image", "text") and ident.dims == {"image": 512, "text": 512}
    assert ident.truncation == 77 and ident.pooling == "clip_projection"
    assert ident.preprocessing["image"]["resize"] == "shortest"
    assert ident.preprocessing["image"]["interpolation"] == "bicubic"
    img, txt = ext.encode_images(images), ext.encode_texts(TEXTS)  # TEXTS[2] is ~240 tokens
    assert img.shape == (3, 512) and txt.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    assert ext.forward_calls == 2
    # a bare directory with a CLIP config is routed to the same loader
    assert load_extractor(models["clip"]).identity.key == ident.key


def test_open_clip_local_dir_and_checkpoint_forms(models, images):
    import open_clip

    ext = load_extractor(models["open_clip"])
    assert ext.identity.model_id == "open_clip:local-dir:" + models["open_clip"]
    assert load_extractor("open_clip:local-dir:" + models["open_clip"]).identity.key == ext.identity.key
    img, txt = ext.encode_images(images), ext.encode_texts(TEXTS)
    assert img.shape == (3, 64) and txt.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    open_clip.add_model_config(models["open_clip"] + "/tiny-clip.json")
    ckpt = load_extractor(f"open_clip:tiny-clip/{models['open_clip']}/open_clip_model.safetensors")
    assert ckpt.identity.dims == {"image": 64, "text": 64}
    np.testing.assert_allclose(ckpt.encode_images(images), img, atol=1e-5)
    np.testing.assert_allclose(ckpt.encode_texts(TEXTS), txt, atol=1e-5)
    with pytest.raises(InputError, match="needs pretrained weights"):
        load_extractor("open_clip:ViT-B-32")
    with pytest.raises(InputError, match="no pretrained tag"):
        load_extractor("open_clip:ViT-B-32/not-a-tag")


def test_same_settings_same_key_any_change_new_key(models):
    base = load_extractor(models["bert"]).identity
    assert load_extractor(models["bert"]).identity.key == base.key
    assert load_extractor("hf:" + models["bert"]).identity.key == base.key
    changed = {
        "pooling": load_extractor(models["bert"], pooling="cls").identity,
        "dtype": load_extractor(models["bert"], quantize="bf16").identity,
        "truncation": load_extractor(models["bert"], max_length=16).identity,
    }
    keys = {base.key} | {i.key for i in changed.values()}
    assert len(keys) == 4
    assert changed["truncation"].truncation == 16


def test_weights_change_changes_key(models, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "bert"
    shutil.copytree(models["bert"], copy)
    same = load_extractor(str(copy)).identity
    assert same.weights == load_extractor(models["bert"]).identity.weights
    state = load_file(str(copy / "model.safetensors"))
    name = next(iter(state))
    state[name] = state[name] + 1.0
    save_file(state, str(copy / "model.safetensors"))
    assert load_extractor(str(copy)).identity.weights != same.weights


def test_builders_are_deterministic(tmp_path):
    from embedstore.extractors import fingerprint

    a = tm.make_tiny_bert(tmp_path / "a")
    b = tm.make_tiny_bert(tmp_path / "b")
    assert fingerprint(a) == fingerprint(b)


def test_bad_options_are_one_line_errors(models):
    with pytest.raises(InputError, match="quantize='8bit' is not supported"):
        load_extractor(models["dinov2"], quantize="8bit")
    with pytest.raises(InputError, match="unknown quantisation 'int4'"):
        load_extractor(models["bert"], quantize="int4")
    with pytest.raises(InputError, match="does not encode texts"):
        load_extractor(models["vit"]).encode_texts(["x"])
