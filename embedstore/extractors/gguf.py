"""GGUF files through llama.cpp (``gguf:``): LLaMA-2 as the paper ran it.

Forms: ``gguf:/path/model.gguf`` (or a bare path ending in ``.gguf``), or
``gguf:ORG/REPO/FILE.gguf`` — a hub repo plus the file name, e.g.
``gguf:TheBloke/Llama-2-7b-Chat-GGUF/llama-2-7b-chat.Q8_0.gguf`` (the paper's
file; fetched through the Hugging Face cache, never while offline).

The default is the paper's call pattern (protocol §2.2):
``Llama(model_path, embedding=True, n_ctx=512)``, **one text per call**,
newlines replaced by spaces, BOS prepended by the tokenizer, and the hidden
state of the **last token after the final RMSNorm** (``pooling="last_token"``,
llama.cpp's ``LLAMA_POOLING_TYPE_LAST``), not normalised. ``pooling="mean"``
(llama.cpp's mean pooling) is the documented alternative.

The identity carries the file's sha256, its quantisation (``dtype``, e.g.
``Q8_0``, read from the GGUF metadata), ``backend="llama.cpp"`` and the
llama-cpp-python version, so another file, quantisation or runtime gives
new keys. Needs ``llama-cpp-python`` (``pip install 'embedstore[gguf]'``;
it compiles llama.cpp on install) and ``gguf``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

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
    """A GGUF model run by llama.cpp, pooled as the paper did (one text per call, last token)."""

    modalities = ("text",)

    def __init__(self, resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None,
                 max_length: int | None = None) -> None:
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
        from importlib.metadata import PackageNotFoundError, version

        try:
            self.backend_version = f"llama-cpp-python {version('llama-cpp-python')}"
        except PackageNotFoundError:
            from ..errors import MissingDependencyError

            raise MissingDependencyError(f"llama-cpp-python is not installed: pip install '{_EXTRA}'") from None
        self.backend, self.backend_reason = "llama.cpp", "gguf: file"
        self.llm: Any = None

    def _identity(self) -> ModelIdentity:
        pre = {"tokenizer": "gguf", "bos": True, "newlines": "space", "calls": "one text per call"}
        return self._make_identity({"text": self.meta["width"]}, pre, self.pooling, self.max_length)

    def _load(self) -> None:
        llama_cpp = require("llama_cpp", _EXTRA)
        threads = cores()
        try:
            import torch  # extract(threads=...) sets torch's pool; follow it

            threads = torch.get_num_threads()
        except ImportError:  # pragma: no cover
            pass
        pool = {"last_token": llama_cpp.LLAMA_POOLING_TYPE_LAST, "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN}
        from llama_cpp._utils import suppress_stdout_stderr

        try:
            with suppress_stdout_stderr(disable=False):  # llama.cpp's C-level notes on model load
                self.llm = llama_cpp.Llama(str(self.resolved.path), embedding=True, n_ctx=self.max_length,
                                           n_batch=self.max_length, n_ubatch=self.max_length, n_threads=threads,
                                           n_threads_batch=threads, pooling_type=pool[self.pooling], verbose=False)
        except ValueError as exc:
            raise InputError(f"llama.cpp cannot load {self.resolved.path} ({exc}); run "
                             "python -c \"import llama_cpp; llama_cpp.Llama('FILE', verbose=True)\" to see why, "
                             "or convert the model again") from None

    def _prepare_texts(self, texts: list[str]) -> list[str]:
        return [t.replace("\r\n", " ").replace("\n", " ") for t in texts]

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's tokens of ``text`` (BOS first), as the encoder sees them."""
        self.ensure_loaded()
        return self.llm.tokenize(self._prepare_texts([text])[0].encode("utf-8"), add_bos=True)[:self.max_length]

    def forward(self, modality: str, batch: Sequence[str]) -> np.ndarray:
        """One llama.cpp call per text (the paper's pattern) → (n, width) float32."""
        self._check(modality)
        self.ensure_loaded()
        out = np.zeros((len(batch), self.meta["width"]), np.float32)
        for i, text in enumerate(batch):
            out[i] = self.llm.embed(text, normalize=False, truncate=True)
            self.forward_calls += 1
        return out
