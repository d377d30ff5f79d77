"""Tiny random-init encoders saved to disk, for offline tests.

Each ``make_tiny_*`` builds a small model with a fixed seed, saves it in the
same layout a real checkpoint has (``save_pretrained`` for Hugging Face
models, ``open_clip_config.json`` + weights for open_clip) and returns the
directory as a string. Load them through the public id/path code path, e.g.
``load_extractor(make_tiny_bert(tmp_path / "bert"))`` or
``load_extractor("hf:" + path)``.

Builders are deterministic: the same call writes the same weights, so the
resulting ``model_key`` is stable across test runs. Reuse them in any test::

    from tests.tiny_models import make_tiny_bert
    path = make_tiny_bert(tmp_path / "bert")
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: A small English corpus for training the tiny tokenizers offline.
CORPUS = [
    "An image from the right eye of a male patient, aged 57.0 years.",
    "Patient diagnosed via histo. Age: 45 years. Sex: female. Localization: back.",
    "The optic disc is present, vessels are present, and the macula is absent.",
    "Conditions include macular edema: absent, scar: absent, nevus: present.",
    "An image from city Cali taken in date 2016-02-02 with, 8.1% of the population is aged 0-4.",
    "lesion melanoma nevus keratosis carcinoma dermatofibroma vascular benign malignant",
    "the quick brown fox jumps over the lazy dog 0123456789",
]

_WORDS = sorted({w.strip(".,:%-").lower() for line in CORPUS for w in line.split()} - {""})


def _dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def make_tiny_bert(path: str | os.PathLike, *, hidden_size: int = 32, num_layers: int = 2) -> str:
    """A tiny BERT encoder + WordPiece tokenizer (``BertModel``), saved to ``path``.

    Examples
    --------
    >>> import tempfile
    >>> p = make_tiny_bert(tempfile.mkdtemp())  # doctest: +SKIP
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    out = _dir(path)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz0123456789.,:%-")
    vocab += [w for w in _WORDS if w not in vocab] + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(vocab=str(out / "vocab.txt"), do_lower_case=True, model_max_length=128)
    tok.save_pretrained(out)
    _seed()
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_layers,
                     num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=128)
    BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(out)
    return str(out)


def make_tiny_vit(path: str | os.PathLike, *, hidden_size: int = 32) -> str:
    """A tiny generic ``ViTModel`` (image size 32, patch 8) with its image-processor config."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    out = _dir(path)
    _seed()
    cfg = ViTConfig(hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=2 * hidden_size, image_size=32, patch_size=8)
    ViTModel(cfg, add_pooling_layer=False).eval().save_pretrained(out)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(out)
    return str(out)


def make_tiny_dinov2(path: str | os.PathLike, *, hidden_size: int = 32, num_layers: int = 1) -> str:
    """A tiny ``Dinov2Model`` (patch 14, image size 224, like dinov2-base but narrow).

    ``hidden_size=768`` gives dinov2-base's output width with one layer.
    """
    from transformers import Dinov2Config, Dinov2Model

    out = _dir(path)
    _seed()
    heads = 12 if hidden_size % 12 == 0 and hidden_size >= 384 else 2
    cfg = Dinov2Config(hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=heads,
                       image_size=224, patch_size=14, mlp_ratio=2)
    Dinov2Model(cfg).eval().save_pretrained(out)
    return str(out)


def _train_bpe(*, clip_style: bool, special: list[str], vocab_size: int = 400):
    """A byte-level-fallback BPE tokenizer trained on :data:`CORPUS` (no download)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if clip_style:
        tk = Tokenizer(models.BPE(unk_token=special[0], end_of_word_suffix="</w>"))
        tk.normalizer = normalizers.Lowercase()
        tk.pre_tokenizer = pre_tokenizers.Whitespace()
        tk.decoder = decoders.BPEDecoder(suffix="</w>")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, end_of_word_suffix="</w>", show_progress=False,
                                      initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789.,:%-"))
    else:
        tk = Tokenizer(models.BPE(unk_token=special[0], byte_fallback=True))
        tk.pre_tokenizer = pre_tokenizers.Metaspace()
        tk.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=special + [f"<0x{i:02X}>" for i in range(256)])
    tk.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tk


def make_tiny_llama(path: str | os.PathLike, *, hidden_size: int = 64, num_layers: int = 2) -> str:
    """A tiny ``LlamaForCausalLM`` with a BPE tokenizer trained offline (prepends ``<s>``).

    Its ``config.json`` says ``LlamaForCausalLM`` like the real Llama-2 repos.
    """
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = _dir(path)
    special = ["<unk>", "<s>", "</s>"]
    tk = _train_bpe(clip_style=False, special=special, vocab_size=600)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", tk.token_to_id("<s>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  model_max_length=512)
    tok.save_pretrained(out)
    _seed()
    cfg = LlamaConfig(vocab_size=tk.get_vocab_size(), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512, bos_token_id=tk.token_to_id("<s>"),
                      eos_token_id=tk.token_to_id("</s>"), tie_word_embeddings=False)
    LlamaForCausalLM(cfg).eval().save_pretrained(out)
    return str(out)


def make_tiny_clip_hf(path: str | os.PathLike, *, projection_dim: int = 512) -> str:
    """A tiny transformers ``CLIPModel`` (image 32 px, 77 text positions) with tokenizer and processor config."""
    from tokenizers import processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    out = _dir(path)
    special = ["<|unk|>", "<|startoftext|>", "<|endoftext|>"]
    tk = _train_bpe(clip_style=True, special=special)
    bos, eos = tk.token_to_id(special[1]), tk.token_to_id(special[2])
    tk.post_processor = processors.TemplateProcessing(
        single=f"{special[1]} $A {special[2]}", special_tokens=[(special[1], bos), (special[2], eos)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token=special[0], bos_token=special[1],
                                  eos_token=special[2], pad_token=special[2], model_max_length=77)
    tok.save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    _seed()
    cfg = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=tk.get_vocab_size(), max_position_embeddings=77,
                         bos_token_id=bos, eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=projection_dim)
    CLIPModel(cfg).eval().save_pretrained(out)
    return str(out)


#: open_clip architecture of :func:`make_tiny_open_clip` (register with ``open_clip.add_model_config``).
TINY_OPEN_CLIP_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def make_tiny_open_clip(path: str | os.PathLike) -> str:
    """A tiny open_clip CLIP saved like an ``hf-hub:`` repo (``open_clip_config.json`` + safetensors).

    Load it as ``open_clip:local-dir:<path>`` or just ``<path>``. The weights
    file alone (``open_clip_model.safetensors``) also loads as
    ``open_clip:tiny-clip/<file>`` once ``<path>/tiny-clip.json`` is registered
    with ``open_clip.add_model_config``.
    """
    import open_clip
    from safetensors.torch import save_file

    out = _dir(path)
    cfg = {"model_cfg": TINY_OPEN_CLIP_CFG,
           "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                              "std": [0.26862954, 0.26130258, 0.27577711]}}
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    (out / "tiny-clip.json").write_text(json.dumps(TINY_OPEN_CLIP_CFG, indent=2))
    _seed()
    model = open_clip.CLIP(**TINY_OPEN_CLIP_CFG).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
    return str(out)
