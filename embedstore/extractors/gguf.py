"""GGUF files through llama.cpp (``gguf:``): LLaMA-2 as the paper ran it.

Forms: ``gguf:/path/model.gguf`` (or a bare path ending in ``.gguf``), or
``gguf:ORG/REPO/FILE.gguf`` — a hub repo plus the file name, e.g.
``gguf:TheBloke/Llama-2-7b-Chat-GGUF/llama-2-7b-chat.Q8_0.gguf`` (the paper's
file; fetched through the Hugging Face cache, never while offline).

The vectors are the paper's (protocol §2.2): ``Llama(model_path,
embedding=True, n_ctx=512)``, each text on its own, newlines replaced by
spaces, BOS prepended by the tokenizer, and the hidden state of the **last
token after the final RMSNorm** (``pooling="last_token"``, llama.cpp's
``LLAMA_POOLING_TYPE_LAST``), not normalised. ``pooling="mean"`` (llama.cpp's
mean pooling) is the documented alternative.

How llama.cpp is called (``batching``) is part of the identity:

* ``"prefix"`` (default): a chunk of texts is tokenised, sorted and packed
  into decode calls of up to ``batch_tokens`` tokens (many texts per
  ``llama_decode``); a prompt prefix shared by several texts (every template
  has one) and identical texts are evaluated once
  (:mod:`~embedstore.extractors.prefix_plan`,
  :mod:`~embedstore.extractors.gguf_batch`);
* ``"batched"``: the same packing, every text all its tokens;
* ``"single"``: one text per ``Llama.embed`` call, the paper's call pattern
  (the key ``single`` had before batching existed, so stores written then
  are continued with ``batching="single"``).

No text ever sees another (each sequence attends only to its own tokens),
but the arithmetic differs: on a small model the three agree to a minimum
per-row cosine >= 0.9999 (tested), on the LLaMA-2-7B-shaped Q8_0 file of
``benchmarks/extract_llama7b.py`` batched rows reached only 0.998 against
one text per call. So each mode writes under its own ``model_key`` (the
identity's ``calls`` entry), and a vector is never stored under the key of
another mode's numerics.
The weights are memory-mapped (llama.cpp's default), so a 7 GB Q8_0 file
costs page cache, not a copy.

The identity carries the file's sha256, its quantisation (``dtype``, e.g.
``Q8_0``, read from the GGUF metadata), ``backend="llama.cpp"`` and the
llama-cpp-python version, so another file, quantisation or runtime gives
new keys. Needs ``llama-cpp-python`` (``pip install 'embedstore[gguf]'``;
it compiles llama.cpp on install) and ``gguf``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..cpu import cores
from ..errors import InputError, require
from ..identity import ModelIdentity
from .base import Extractor
from .registry import Scheme, register
from .resolve import ResolvedModel, fingerprint, hub_offline, is_local, not_available

_EXTRA = "embedstore[gguf]"
POOLINGS = ("last_token", "mean")
N_CTX = 512  # the paper's (llama-cpp-python's default)
BATCHINGS = ("prefix", "batched", "single")
#: The identity's ``calls`` entry per batching mode (``single`` keeps the key it had before batching existed).
CALLS = {"single": "one text per call", "batched": "many texts per llama_decode",
         "prefix": "many texts per llama_decode, shared prefixes evaluated once"}
#: Tokens per llama_decode call in the batched modes (also the KV cells of the context).
BATCH_TOKENS = 1024


@register("gguf")
class GGUFScheme(Scheme):
    """``gguf:FILE.gguf`` or ``gguf:ORG/REPO/FILE.gguf``; a bare path ending in ``.gguf``. Runs on llama.cpp only."""

    bare_order = 0
    runtime = "llama.cpp"

    def claims(self, rest: str) -> bool:
        return rest.endswith(".gguf")

    def canonical(self, rest: str) -> str:
        return "gguf:" + (str(Path(rest).expanduser().resolve()) if is_local(rest) else rest)

    def resolve(self, model_id: str, rest: str) -> ResolvedModel:
        return resolve_gguf(model_id, rest)

    def load(self, resolved: ResolvedModel, *, quantize: str | None, pooling: str | None,
             **opts: Any) -> Extractor:
        return GGUFEncoder(resolved, quantize=quantize, pooling=pooling, **opts)


def resolve_gguf(model_id: str, rest: str) -> ResolvedModel:
    """A local ``.gguf`` file, or ``ORG/REPO/FILE.gguf`` from the hub cache; fingerprint = file sha256."""
    path = Path(rest).expanduser()
    if rest.startswith(("/", ".", "~")) or path.is_file():
        if not path.is_file():
            raise InputError(f"GGUF file {path} does not exist: pass an existing .gguf file")
        return ResolvedModel(model_id, "gguf", path.resolve(), fingerprint(path))
    parts = rest.split("/")
    if len(parts) < 3 or not parts[-1].endswith(".gguf"):
        raise InputError(f"gguf id 'gguf:{rest}' must be a local .gguf file or ORG/REPO/FILE.gguf, e.g. "
                         "gguf:TheBloke/Llama-2-7b-Chat-GGUF/llama-2-7b-chat.Q8_0.gguf")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import hf_hub_download

    offline = hub_offline()
    try:
        local = Path(hf_hub_download(repo, filename, local_files_only=offline))
    except Exception as exc:  # not cached, gated, unknown repo, network
        reason = "not in the local Hugging Face cache and the hub is offline" if offline else type(exc).__name__
        raise not_available(model_id, reason, repo) from None
    return ResolvedModel(model_id, "gguf", local, fingerprint(local), {"repo": repo, "file": filename})


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Architecture, embedding width, context length and quantisation of a GGUF file (no model load).

    The quantisation is ``general.file_type`` (e.g. ``Q8_0``), else the
    most common tensor type.
    """
    gguf = require("gguf", _EXTRA)
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # not a GGUF file, truncated
        raise InputError(f"{path} is not a readable GGUF file ({type(exc).__name__}: {exc}): "
                         "re-download it or convert the model again") from None

    def value(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types and f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]

    arch = value("general.architecture") or "llama"
    width = value(f"{arch}.embedding_length")
    if not width:
        raise InputError(f"{path}: the GGUF metadata has no {arch}.embedding_length; convert the model again")
    ftype = value("general.file_type")
    if ftype is not None:
        quant = gguf.LlamaFileType(int(ftype)).name.replace("MOSTLY_", "").replace("ALL_", "")
    else:
        kinds = [t.tensor_type.name for t in reader.tensors if len(t.shape) > 1]
        quant = max(set(kinds), key=kinds.count) if kinds else "F32"
    return {"architecture": arch, "width": int(width), "context": value(f"{arch}.context_length"), "quant": quant}


class GGUFEncoder(Extractor):
    """A GGUF model run by llama.cpp, pooled as the paper did (each text alone, last token).

    Parameters
    ----------
    resolved : ResolvedModel
    quantize : None
        A GGUF file carries its own quantisation.
    pooling : {"last_token", "mean"}
    max_length : int
        Tokens per text (BOS included); longer texts are truncated. Default 512.
    batching : {"prefix", "batched", "single"}
        How llama.cpp is called (see the module docstring); keyed.
    batch_tokens : int
        Tokens per decode call in the batched modes (at least ``max_length``).

    Attributes
    ----------
    tokens : dict
        Running totals: ``prompt`` (tokens of the texts embedded),
        ``evaluated`` (tokens llama.cpp evaluated) and ``decodes`` (calls).
    progress_hook : callable, optional
        ``hook(rows, prompt_tokens, evaluated_tokens)`` after every decode call
        of a batched forward (the local engine's token progress).
    """

    modalities = ("text",)
    #: Packs its own llama.cpp batches (by tokens) from a whole chunk of rows.
    batches_by_tokens = True

    def __init__(self, resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None,
                 max_length: int | None = None, batching: str | None = None,
                 batch_tokens: int | None = None) -> None:
        if quantize not in (None, "none"):
            raise InputError(f"{resolved.model_id}: a GGUF file carries its own quantisation; drop quantize= "
                             "(pick another file, e.g. a Q8_0 or F16 one)")
        meta = gguf_metadata(resolved.path)
        super().__init__(resolved, dtype=meta["quant"])
        self.meta = meta
        self.pooling = pooling or "last_token"
        if self.pooling not in POOLINGS:
            raise InputError(f"pooling {self.pooling!r} is not available for {resolved.model_id}: use one of "
                             f"{', '.join(POOLINGS)}")
        self.max_length = int(max_length or N_CTX)
        self.batching = batching or "prefix"
        if self.batching not in BATCHINGS:
            raise InputError(f"batching {self.batching!r} is unknown: use one of {', '.join(BATCHINGS)}")
        self.batches_by_tokens = self.batching != "single"
        self.batch_tokens = max(int(batch_tokens or BATCH_TOKENS), self.max_length)
        from importlib.metadata import PackageNotFoundError, version

        try:
            self.backend_version = f"llama-cpp-python {version('llama-cpp-python')}"
        except PackageNotFoundError:
            from ..errors import MissingDependencyError

            raise MissingDependencyError(f"llama-cpp-python is not installed: pip install '{_EXTRA}'") from None
        self.backend = "llama.cpp"
        self.backend_reason = ("gguf: file, one text per call" if self.batching == "single" else
                               f"gguf: file, batched by tokens ({self.batch_tokens}/call"
                               + (", shared prefixes once)" if self.batching == "prefix" else ")"))
        self.llm: Any = None
        self.decoder: Any = None
        self.tokens = {"prompt": 0, "evaluated": 0, "decodes": 0}
        self.progress_hook: Callable[[int, int, int], None] | None = None

    def _identity(self) -> ModelIdentity:
        # "calls" names how llama.cpp was called: keyed, since batched numerics differ (module docstring)
        pre = {"tokenizer": "gguf", "bos": True, "newlines": "space", "calls": CALLS[self.batching]}
        return self._make_identity({"text": self.meta["width"]}, pre, self.pooling, self.max_length)

    def _load(self) -> None:
        llama_cpp = require("llama_cpp", _EXTRA)
        threads = cores()
        try:
            import torch  # extract(threads=...) sets torch's pool; follow it

            threads = torch.get_num_threads()
        except ImportError:  # pragma: no cover
            pass
        from llama_cpp._utils import suppress_stdout_stderr

        if self.batching == "single":  # the paper's context: 512 tokens, llama.cpp pools
            pool = {"last_token": llama_cpp.LLAMA_POOLING_TYPE_LAST, "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN}
            ctx, ubatch, pooling = self.max_length, self.max_length, pool[self.pooling]
        else:  # one unified KV cache for a whole group; every token's hidden state read back
            ctx, ubatch, pooling = self.batch_tokens, min(512, self.batch_tokens), llama_cpp.LLAMA_POOLING_TYPE_NONE
        try:
            with suppress_stdout_stderr(disable=False):  # llama.cpp's C-level notes on model load
                self.llm = llama_cpp.Llama(str(self.resolved.path), embedding=True, n_ctx=ctx, n_batch=ctx,
                                           n_ubatch=ubatch, n_threads=threads, n_threads_batch=threads,
                                           pooling_type=pooling, use_mmap=True, verbose=False)
        except ValueError as exc:
            raise InputError(f"llama.cpp cannot load {self.resolved.path} ({exc}); run "
                             "python -c \"import llama_cpp; llama_cpp.Llama('FILE', verbose=True)\" to see why, "
                             "or convert the model again") from None
        if self.batching != "single":
            from .gguf_batch import GroupDecoder

            self.decoder = GroupDecoder(self.llm, self.batch_tokens)

    def _prepare_texts(self, texts: list[str]) -> list[str]:
        return [t.replace("\r\n", " ").replace("\n", " ") for t in texts]

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's tokens of ``text`` (BOS first, at most ``max_length``), as the encoder sees them."""
        self.ensure_loaded()
        return self.llm.tokenize(self._prepare_texts([text])[0].encode("utf-8"), add_bos=True)[:self.max_length]

    def forward(self, modality: str, batch: Sequence[str]) -> np.ndarray:
        """Embed prepared texts → (n, width) float32, in input order (see ``batching``)."""
        self._check(modality)
        self.ensure_loaded()
        out = np.zeros((len(batch), self.meta["width"]), np.float32)
        if self.batching == "single":
            for i, text in enumerate(batch):
                out[i] = self.llm.embed(text, normalize=False, truncate=True)
                self.forward_calls += 1
                n = len(self.llm.tokenize(text.encode("utf-8"), add_bos=True)[:self.max_length])
                self._count(1, n, n)
            return out
        from .prefix_plan import plan_decode

        seqs = [self.llm.tokenize(t.encode("utf-8"), add_bos=True)[:self.max_length] for t in batch]
        for group in plan_decode(seqs, budget=self.batch_tokens, max_seqs=self.decoder.max_seqs,
                                 share=self.batching == "prefix"):
            vectors = self.decoder.decode(group, self.pooling)
            for rows, vector in zip(group.rows, vectors):
                out[rows] = vector
            self.forward_calls += 1
            self._count(group.n_rows, group.prompt_tokens, len(group.tokens))
        return out

    def _count(self, rows: int, prompt: int, evaluated: int) -> None:
        self.tokens["prompt"] += prompt
        self.tokens["evaluated"] += evaluated
        self.tokens["decodes"] += 1
        if self.progress_hook is not None:
            self.progress_hook(rows, prompt, evaluated)
