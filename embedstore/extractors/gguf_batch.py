"""Run :mod:`~embedstore.extractors.prefix_plan` decode groups through llama.cpp: many texts per ``llama_decode``.

One llama.cpp context with a **unified** KV cache of ``budget`` cells and
no pooling: every token's hidden state after the final RMSNorm can be read
back (``llama_get_embeddings_ith``). Per group, the cache is cleared, the
group's trie tokens go into one ``llama_batch``, each tagged with every
sequence it belongs to (``n_seq_id`` > 1 for a shared prefix, so its
key/value states are stored once and attended to by all of them), and one
``llama_decode`` evaluates them (llama.cpp splits it into ``n_ubatch``
micro-batches in order, so a prefix is always in the cache before the
tokens that continue it). The attention mask keeps every sequence to its
own tokens, so a text's vector is what it is alone: the row of its last
token (``last_token``) or the mean of its rows (``mean``).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..errors import EmbedstoreError
from .prefix_plan import DecodeGroup


class LlamaDecodeError(EmbedstoreError):
    """llama.cpp refused or failed a decode call."""


class GroupDecoder:
    """Decodes :class:`~embedstore.extractors.prefix_plan.DecodeGroup` s with one llama.cpp context.

    Parameters
    ----------
    llm : llama_cpp.Llama
        Created with ``embedding=True``, ``pooling_type=LLAMA_POOLING_TYPE_NONE``
        and ``n_ctx = n_batch = budget`` (llama-cpp-python makes the KV
        cache of an embedding context unified).
    budget : int
        Tokens per group (and KV cells).
    """

    def __init__(self, llm: Any, budget: int) -> None:
        import llama_cpp

        self.lib, self.ctx, self.budget = llama_cpp, llm._ctx.ctx, int(budget)
        self.width = int(llm.n_embd())
        self.max_seqs = int(llama_cpp.llama_n_seq_max(self.ctx))
        self.batch = llama_cpp.llama_batch_init(self.budget, 0, self.max_seqs)
        b, n = self.batch, self.budget
        self._token = np.ctypeslib.as_array(b.token, shape=(n,))
        self._pos = np.ctypeslib.as_array(b.pos, shape=(n,))
        self._n_seq = np.ctypeslib.as_array(b.n_seq_id, shape=(n,))
        self._out = np.ctypeslib.as_array(b.logits, shape=(n,))
        self._seq = [np.ctypeslib.as_array(b.seq_id[i], shape=(self.max_seqs,)) for i in range(n)]
        self._ids = np.arange(self.max_seqs, dtype=np.int32)
        self._free = weakref.finalize(self, llama_cpp.llama_batch_free, self.batch)

    def decode(self, group: DecodeGroup, pooling: str) -> np.ndarray:
        """One decode call → ``(len(group.paths), width)`` float32, one vector per sequence of the group."""
        n = len(group.tokens)
        if not 0 < n <= self.budget or len(group.paths) > self.max_seqs:
            raise ValueError(f"group of {n} tokens / {len(group.paths)} sequences exceeds {self.budget} / "
                             f"{self.max_seqs}")
        self._token[:n] = group.tokens
        self._pos[:n] = group.positions
        lo, hi = np.asarray(group.seq_lo), np.asarray(group.seq_hi)
        self._n_seq[:n] = hi - lo
        self._out[:n] = 1  # an embedding context outputs every token
        for i in range(n):
            self._seq[i][:hi[i] - lo[i]] = self._ids[lo[i]:hi[i]]
        self.batch.n_tokens = n
        lib = self.lib
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        rc = lib.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise LlamaDecodeError(f"llama.cpp decode of {n} tokens failed (code {rc}); retry with "
                                   "batching='single' and report the model file")
        out = np.empty((len(group.paths), self.width), np.float32)
        for s, path in enumerate(group.paths):
            if pooling == "last_token":
                out[s] = self._row(path[-1])
            else:
                out[s] = np.mean([self._row(i) for i in path], axis=0, dtype=np.float64)
        return out

    def _row(self, i: int) -> np.ndarray:
        ptr = self.lib.llama_get_embeddings_ith(self.ctx, i)
        if not ptr:
            raise LlamaDecodeError(f"llama.cpp returned no hidden state for batch entry {i}")
        return np.ctypeslib.as_array(ptr, shape=(self.width,))

    def close(self) -> None:
        """Free the llama.cpp batch (once; also done when the decoder is garbage-collected)."""
        self._free()
        self._seq = []
