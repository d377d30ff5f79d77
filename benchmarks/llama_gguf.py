"""A random-init LLaMA-architecture GGUF file, written tensor by tensor (for benchmarks; never committed).

The speed of a random 7B Q8_0 file is the speed of the real one: llama.cpp
does the same work whatever the values. :func:`write_random_llama` streams
each Q8_0 tensor straight to disk (random int8 quants, one fp16 scale per
32 values), so a 7 GB LLaMA-2-7B-shaped file needs one tensor in RAM at a
time (about 50 MB), never 24 GiB. The vocabulary (``tokenizer.*`` fields) is
copied from another GGUF file, e.g. llama.cpp's vocab-only
``models/ggml-vocab-llama-spm.gguf`` (the LLaMA SentencePiece vocabulary),
so token counts are LLaMA-2's.

Usage::

    python benchmarks/llama_gguf.py OUT.gguf --vocab ggml-vocab-llama-spm.gguf          # LLaMA-2-7B shape
    python benchmarks/llama_gguf.py OUT.gguf --vocab tiny.gguf --shape tiny             # seconds, for tests
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: LLaMA-2-7B (Touvron et al. 2023; the paper's TheBloke/Llama-2-7b-Chat-GGUF file has this shape).
LLAMA2_7B = {"hidden": 4096, "ffn": 11008, "layers": 32, "heads": 32, "kv_heads": 32, "context": 4096,
             "rms_eps": 1e-5}
TINY = {"hidden": 64, "ffn": 128, "layers": 2, "heads": 4, "kv_heads": 4, "context": 512, "rms_eps": 1e-5}
SHAPES = {"7b": LLAMA2_7B, "tiny": TINY}
QK = 32  # values per Q8_0 block
STD = 0.02  # LLaMA's init scale


def tensor_plan(shape: dict, vocab: int) -> list[tuple[str, tuple[int, int] | tuple[int]]]:
    """``(name, numpy shape)`` of every tensor, in llama.cpp's names (2-D = (out, in), quantised)."""
    h, f, kv = shape["hidden"], shape["ffn"], shape["hidden"] * shape["kv_heads"] // shape["heads"]
    plan: list = [("token_embd.weight", (vocab, h))]
    for i in range(shape["layers"]):
        b = f"blk.{i}."
        plan += [(b + "attn_norm.weight", (h,)), (b + "attn_q.weight", (h, h)), (b + "attn_k.weight", (kv, h)),
                 (b + "attn_v.weight", (kv, h)), (b + "attn_output.weight", (h, h)), (b + "ffn_norm.weight", (h,)),
                 (b + "ffn_gate.weight", (f, h)), (b + "ffn_up.weight", (f, h)), (b + "ffn_down.weight", (h, f))]
    return plan + [("output_norm.weight", (h,)), ("output.weight", (vocab, h))]


def parameters(shape: dict, vocab: int) -> int:
    """Parameter count of the shape."""
    return sum(int(np.prod(s)) for _, s in tensor_plan(shape, vocab))


def _q8_0(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Random Q8_0 blocks as raw bytes, (rows, cols/32*34): uniform quants with std ``STD``."""
    nb = cols // QK
    out = np.empty((rows, nb, 2 + QK), np.uint8)
    scale = np.float16(STD * np.sqrt(3.0) / 127.0)
    out[:, :, :2] = np.frombuffer(scale.tobytes(), np.uint8)
    out[:, :, 2:] = rng.integers(-127, 128, size=(rows, nb, QK), dtype=np.int8).view(np.uint8)
    return out.reshape(rows, nb * (2 + QK))


def _copy_vocab(writer, reader, gguf) -> int:
    """Copy every ``tokenizer.*`` field of ``reader`` to ``writer``; the vocabulary size."""
    vocab = 0
    for name, f in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        kind = f.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            values = f.contents()
            writer.add_key_value(name, values, kind, sub_type=f.types[-1])
            if name == "tokenizer.ggml.tokens":
                vocab = len(values)
        else:
            writer.add_key_value(name, f.contents(), kind)
    if not vocab:
        raise SystemExit("the vocabulary file has no tokenizer.ggml.tokens: pass a GGUF with a vocabulary")
    return vocab


def write_random_llama(out: str | Path, vocab_file: str | Path, shape: dict = LLAMA2_7B, seed: int = 0,
                       progress: bool = False) -> Path:
    """Write a random-init Q8_0 LLaMA GGUF of ``shape`` with ``vocab_file``'s vocabulary, one tensor at a time.

    Examples
    --------
    >>> write_random_llama("/tmp/r.gguf", "tiny.gguf", TINY)  # doctest: +SKIP
    PosixPath('/tmp/r.gguf')
    """
    import gguf

    out = Path(out)
    reader = gguf.GGUFReader(str(vocab_file))
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(f"random-llama-{shape['layers']}x{shape['hidden']}")
    w.add_context_length(shape["context"])
    w.add_embedding_length(shape["hidden"])
    w.add_block_count(shape["layers"])
    w.add_feed_forward_length(shape["ffn"])
    w.add_head_count(shape["heads"])
    w.add_head_count_kv(shape["kv_heads"])
    w.add_rope_dimension_count(shape["hidden"] // shape["heads"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(shape["rms_eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    vocab = _copy_vocab(w, reader, gguf)
    plan = tensor_plan(shape, vocab)
    q8 = gguf.GGMLQuantizationType.Q8_0
    for name, s in plan:
        if len(s) == 2:
            w.add_tensor_info(name, (s[0], s[1] // QK * (2 + QK)), np.dtype(np.uint8), s[0] * s[1] // QK * (2 + QK),
                              raw_dtype=q8)
        else:
            w.add_tensor_info(name, s, np.dtype(np.float32), 4 * s[0])
    w.write_header_to_file(out)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for i, (name, s) in enumerate(plan):
        w.write_tensor_data(_q8_0(rng, *s) if len(s) == 2 else np.ones(s, np.float32))
        if progress and i % 20 == 0:
            print(f"  {i + 1}/{len(plan)} tensors written", file=sys.stderr, flush=True)
    w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--vocab", required=True, help="a GGUF file whose tokenizer.* fields are copied")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="7b")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = write_random_llama(args.out, args.vocab, SHAPES[args.shape], args.seed, progress=True)
    print(f"{path}: {path.stat().st_size / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
