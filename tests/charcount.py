"""``charcount:WIDTH``: a tiny real text encoder registered as a scheme by tests (the extension point).

It counts the letters a..z of each text folded into ``WIDTH`` bins, in torch,
so its vectors are known exactly (:func:`expected_counts`). Register it only
for the duration of a test with :func:`registered_charcount`.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

import numpy as np

from embedstore.errors import InputError
from embedstore.extractors import Extractor, Scheme, lookup, register
from embedstore.extractors.base import dtype_of
from embedstore.extractors.registry import unregister
from embedstore.extractors.resolve import ResolvedModel


class CharCounts(Extractor):
    """A real (if tiny) text encoder: counts of each letter a..z folded into ``width`` bins, in torch."""

    modalities = ("text",)

    def __init__(self, resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None,
                 width: int = 8) -> None:
        super().__init__(resolved, dtype=dtype_of(quantize, resolved.model_id))
        self.width = int(width)
        self.loads = 0

    def _identity(self):
        return self._make_identity({"text": self.width}, {"fold": "ord % width"}, "counts")

    def _load(self) -> None:
        self.loads += 1

    def _prepare_texts(self, texts):
        return list(texts)

    def _forward_texts(self, texts):
        import torch

        return torch.tensor(expected_counts(texts, self.width))


def expected_counts(texts, width: int) -> np.ndarray:
    out = np.zeros((len(texts), width), dtype=np.float32)
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) % width] += 1
    return out


class CharCountScheme(Scheme):
    """``charcount:WIDTH``: no weights; the fingerprint is the sha256 of the id."""

    def resolve(self, model_id: str, rest: str) -> ResolvedModel:
        if not rest.isdigit():
            raise InputError(f"charcount id {model_id!r} needs a width: use charcount:8")
        return ResolvedModel(model_id, self.name, None, "sha256:" + hashlib.sha256(model_id.encode()).hexdigest(),
                             {"width": int(rest)})

    def load(self, resolved: ResolvedModel, *, quantize: str | None, pooling: str | None, **opts) -> Extractor:
        return CharCounts(resolved, quantize=quantize, pooling=pooling, width=resolved.extra["width"], **opts)


@contextlib.contextmanager
def registered_charcount() -> Iterator[Scheme]:
    """The ``charcount`` scheme, registered for the block."""
    register("charcount")(CharCountScheme)
    try:
        yield lookup("charcount")
    finally:
        unregister("charcount")
