"""Write a transformers Llama checkpoint as a GGUF file (F32 or Q8_0), with the ``gguf`` package.

For tests and benchmarks that need the *same weights* in llama.cpp and in
torch (a tiny random Llama saved with ``save_pretrained``). It follows
llama.cpp's ``convert_hf_to_gguf.py`` for the Llama architecture: tensor
names, the rotary permutation of the q/k projections, the tokenizer from
``tokenizer.json`` (BPE with byte fallback, as Llama-2's). For real models
use llama.cpp's own converter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError, require

_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
          "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotary half-split layout → llama.cpp's interleaved one (as convert_hf_to_gguf does)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_to_gguf(hf_dir: str | Path, out: str | Path, *, quant: str = "Q8_0") -> Path:
    """Convert ``hf_dir`` (a saved ``LlamaForCausalLM``/``LlamaModel``) to ``out`` in ``F32`` or ``Q8_0``.

    Examples
    --------
    >>> llama_to_gguf("/tmp/tiny-llama", "/tmp/tiny.gguf")  # doctest: +SKIP
    PosixPath('/tmp/tiny.gguf')
    """
    gguf = require("gguf", "embedstore[gguf]")
    from safetensors.numpy import load_file

    hf_dir, out = Path(hf_dir), Path(out)
    cfg = json.loads((hf_dir / "config.json").read_text())
    if cfg.get("model_type") != "llama":
        raise InputError(f"{hf_dir}: only Llama checkpoints convert here (model_type {cfg.get('model_type')!r})")
    qtype = {"Q8_0": gguf.GGMLQuantizationType.Q8_0, "F32": gguf.GGMLQuantizationType.F32}.get(quant)
    if qtype is None:
        raise InputError(f"unknown GGUF quantisation {quant!r}: use Q8_0 or F32")
    state: dict[str, np.ndarray] = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    heads, kv = int(cfg["num_attention_heads"]), int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(hf_dir.name)
    w.add_context_length(int(cfg.get("max_position_embeddings", 2048)))
    w.add_embedding_length(hidden)
    w.add_block_count(int(cfg["num_hidden_layers"]))
    w.add_feed_forward_length(int(cfg["intermediate_size"]))
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hidden // heads)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "Q8_0" else gguf.LlamaFileType.ALL_F32)
    _vocab(w, gguf, hf_dir, cfg)
    for name, t in state.items():
        t = np.asarray(t, dtype=np.float32)
        name = name.removeprefix("model.")
        if name == "embed_tokens.weight":
            new = "token_embd.weight"
        elif name == "norm.weight":
            new = "output_norm.weight"
        elif name == "lm_head.weight":
            new = "output.weight"
        elif name.startswith("layers."):
            _, i, rest = name.split(".", 2)
            module = rest.rsplit(".", 1)[0]
            new = f"blk.{i}.{_NAMES[module]}.weight"
            if module == "self_attn.q_proj":
                t = _permute(t, heads)
            elif module == "self_attn.k_proj":
                t = _permute(t, kv)
        else:
            continue
        if t.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            w.add_tensor(new, gguf.quants.quantize(t, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(new, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def _vocab(w, gguf, hf_dir: Path, cfg: dict) -> None:
    """SentencePiece-style vocabulary from ``tokenizer.json``; scores follow the ids (earlier merge = higher)."""
    vocab = gguf.vocab.LlamaHfVocab(hf_dir)
    tokens, types = [], []
    for text, _, kind in vocab.all_tokens():
        tokens.append(text)
        types.append(kind)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(len(tokens))])
    w.add_token_types(types)
    tok = vocab.tokenizer
    for attr, add in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                      ("unk_token_id", w.add_unk_token_id)):
        if getattr(tok, attr, None) is not None:
            add(int(getattr(tok, attr)))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
