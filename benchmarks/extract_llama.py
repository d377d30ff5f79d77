"""(d) of ``benchmarks/extract.py``: a LLaMA-shaped model through llama.cpp, bitsandbytes 8-bit and torch bf16.

One small random-init Llama (same architecture as LLaMA-2, narrower and
shallower) is saved with ``save_pretrained`` and converted to GGUF Q8_0 with
:func:`embedstore.extractors.gguf_write.llama_to_gguf`, so all paths run the
*same weights*:

* llama.cpp Q8_0 through the ``gguf:`` extractor: the paper's pattern, one
  text per call, last token after the final norm;
* the ``hf:`` causal-LM extractor in torch fp32 (the reference), bf16 weights
  and bitsandbytes 8-bit, batched (right padding, last real token).

Every path sees the same token ids (llama.cpp's tokenisation), so the cosines
compare numerics only. Rows/s are medians of alternating rounds.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8, "num_attention_heads": 8}


def small_llama(tmp: Path) -> tuple[str, Path]:
    """The random-init Llama (HF directory) and its Q8_0 GGUF."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from transformers import LlamaConfig, LlamaForCausalLM

    from embedstore.extractors.gguf_write import llama_to_gguf
    from tests.tiny_models import make_tiny_llama

    hf = Path(make_tiny_llama(tmp / "llama-hf"))  # its tokenizer; the model is replaced by a bigger one
    small = LlamaConfig.from_pretrained(hf)
    for k, v in SHAPE.items():
        setattr(small, k, v)
    small.num_key_value_heads = SHAPE["num_attention_heads"]
    small.head_dim = SHAPE["hidden_size"] // SHAPE["num_attention_heads"]
    torch.manual_seed(0)
    LlamaForCausalLM(small).eval().save_pretrained(hf)
    return str(hf), llama_to_gguf(hf, tmp / "llama-q8_0.gguf", quant="Q8_0")


def _batched(ext: Any, ids: list[list[int]], batch: int) -> np.ndarray:
    import torch

    out = []
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        width = max(map(len, chunk))
        input_ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for j, row in enumerate(chunk):
            input_ids[j, :len(row)] = torch.tensor(row)
            mask[j, :len(row)] = 1
        out.append(ext.forward("text", {"input_ids": input_ids, "attention_mask": mask}))
    return np.concatenate(out)


def run(texts: list[str], tmp: Path, repeats: int, batch: int = 16) -> dict[str, Any]:
    """Rows/s and cosines of llama.cpp Q8_0, torch fp32, torch bf16 and bitsandbytes 8-bit."""
    from embedstore.extractors import load_extractor
    from embedstore.extractors.backends import min_cosine

    hf, gguf_file = small_llama(tmp)
    cpp = load_extractor(str(gguf_file), batching="single")
    ids = [cpp.tokenize(t) for t in texts]
    paths = {"llama.cpp Q8_0 (gguf:, one text per call)": lambda: cpp.forward("text", texts)}
    for label, q in (("torch fp32 (hf:, batched)", "none"), ("torch bf16 weights (hf:, batched)", "bf16"),
                     ("bitsandbytes 8-bit (hf:, batched)", "8bit")):
        ext = load_extractor(hf, quantize=q, backend="torch")
        paths[label] = (lambda e=ext: _batched(e, ids, batch))
    vecs = {k: fn() for k, fn in paths.items()}  # also the warm-up
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for k, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    ref = "torch fp32 (hf:, batched)"
    base = len(texts) / statistics.median(times[ref])
    rows = []
    for k in paths:
        rate = len(texts) / statistics.median(times[k])
        rows.append({"path": k, "rows_per_s": rate, "x": rate / base,
                     "cos": {o: min_cosine(vecs[k], vecs[o]) for o in paths}})
    return {"rows": rows, "n": len(texts), "tokens": statistics.median(map(len, ids)),
            "params_m": _params(hf), "shape": SHAPE}


def _params(hf: str) -> float:
    from safetensors import safe_open

    total = 0
    for f in Path(hf).glob("*.safetensors"):
        with safe_open(str(f), "np") as fh:
            total += sum(int(np.prod(fh.get_slice(k).get_shape())) for k in fh.keys())
    return total / 1e6


def render(res: dict[str, Any], repeats: int) -> str:
    """The markdown section (d)."""
    from benchmarks.benchlib import md_table

    names = [r["path"] for r in res["rows"]]
    short = {n: n.split(" (")[0] for n in names}
    body = [[r["path"], f"{r['rows_per_s']:.2f}", f"{r['x']:.2f}x"] + [f"{r['cos'][o]:.5f}" for o in names]
            for r in res["rows"]]
    table = md_table(["path", "rows/s", "vs torch fp32"] + [f"min cos vs {short[o]}" for o in names], body)
    s = res["shape"]
    return "\n".join([
        "## (d) LLaMA-shaped: llama.cpp Q8_0 vs bitsandbytes 8-bit vs torch bf16, the same weights", "",
        f"A random-init Llama ({s['num_hidden_layers']} layers, width {s['hidden_size']}, "
        f"{s['num_attention_heads']} heads, {res['params_m']:.1f} M parameters), saved once and converted to GGUF "
        f"Q8_0 by `llama_to_gguf`; {res['n']} HAM10000 prompts (median {res['tokens']:.0f} tokens), the same token "
        f"ids on every path. {repeats} alternating rounds, medians. min cos = minimum per-row cosine between the "
        "two paths' last-token vectors.", "",
        table, ""])
