"""Decoding an extract run's inputs, batch by batch in a background thread, and what had to be skipped.

Used by the local loop (:mod:`embedstore.extract`) and by the Ray engine's
actors (:mod:`embedstore.engines.ray_engine`), so both skip the same rows for
the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from .errors import InputError
from .formats import ToDict
from .prefetch import prefetch


@dataclass(frozen=True)
class SkippedSample(ToDict):
    """A sample left out at extract time and why (e.g. an image that no longer decodes)."""

    sample_id: str
    reason: str


def decode_rows(modality: str, ids: Sequence[str], inputs: Sequence[Any], rows: range,
                skipped: list[SkippedSample]) -> tuple[list[int], list[Any]]:
    """``(row indices, decoded inputs)`` of ``rows``; failures are appended to ``skipped``.

    Examples
    --------
    >>> skipped = []
    >>> decode_rows("text", ["a", "b"], ["a lesion", None], range(2), skipped)
    ([0], ['a lesion'])
    >>> skipped
    [SkippedSample(sample_id='b', reason='text is empty (null)')]
    """
    from .images import load_image

    idx, items = [], []
    for i in rows:
        value = inputs[i]
        if modality == "image":
            try:
                value = load_image(value)
            except InputError as exc:
                skipped.append(SkippedSample(str(ids[i]), str(exc)))
                continue
        elif value is None:
            skipped.append(SkippedSample(str(ids[i]), "text is empty (null)"))
            continue
        idx.append(i)
        items.append(value)
    return idx, items


def prefetch_batches(ext: Any, modality: str, ids: Sequence[str], inputs: Sequence[Any], batch_size: int,
                     skipped: list[SkippedSample], depth: int = 3) -> Iterator[tuple[list[int], Any]]:
    """Yield ``(row indices, prepared batch)``; decoding/preprocessing runs in a background thread.

    Rows whose input fails to decode are appended to ``skipped`` and left out
    of their batch. At most ``depth`` batches are prepared ahead.
    """

    def batches() -> Iterator[tuple[list[int], Any]]:
        for start in range(0, len(ids), batch_size):
            idx, items = decode_rows(modality, ids, inputs, range(start, min(start + batch_size, len(ids))), skipped)
            if idx:
                yield idx, ext.prepare(modality, items)

    return prefetch(batches(), depth, name="embedstore-prefetch")
