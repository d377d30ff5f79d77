"""Decoding an extract run's inputs, batch by batch in a background thread, and what had to be skipped.

Each input is checked against the content hash it is stored under before it
is embedded (:func:`decode_rows`): the bytes embedded are the bytes hashed.

Used by the local loop (:mod:`embedstore.extract`) and by the Ray engine's
actors (:mod:`embedstore.engines.ray_engine`), so both skip the same rows for
the same reasons.

**Texts are batched by length.** A text batch is padded to its longest
text, so a short prompt batched with a long one pays for the long one's
padding. Within each window of rows (extract's commit chunk), texts are
ordered by token count and cut into batches (:func:`length_batches`): each
batch pads only to its own longest text. Rows keep their sample ids (each
batch carries its row indices), so vectors land where they belong;
:meth:`~embedstore.extractors.base.Extractor.encode_texts` returns them in
input order. Masked pooling makes a text's vector independent of its
batch-mates up to float rounding (cosine >= 0.9999 with one text per call,
tested). ``benchmarks/results/extract.md`` has what it saves.
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


def changed_file(path: str, stored: str, now: str, dataset: str = "") -> str:
    """The one line that says a sample's file is no longer the file that was ingested, and the fix.

    Examples
    --------
    >>> changed_file("/d/a.jpg", "ab" * 32, "cd" * 32, "ham")
    "image /d/a.jpg: changed on disk since ingest (sha256 now cdcdcdcdcdcd, ingested abababababab); not embedded: re-ingest dataset 'ham' (embedstore ingest ... --name ham), then extract again"
    """
    name = f"dataset '{dataset}' (embedstore ingest ... --name {dataset})" if dataset else "the dataset"
    return (f"image {path}: changed on disk since ingest (sha256 now {now[:12]}, ingested {stored[:12]}); "
            f"not embedded: re-ingest {name}, then extract again")


def decode_rows(modality: str, ids: Sequence[str], inputs: Sequence[Any], rows: range,
                skipped: list[SkippedSample], hashes: Sequence[str] | None = None,
                dataset: str = "") -> tuple[list[int], list[Any]]:
    """``(row indices, decoded inputs)`` of ``rows``; failures are appended to ``skipped``.

    With ``hashes`` (the stored ``image_sha256``/``text_sha256`` of each
    row) every input is checked against its hash: an image is hashed from
    the very bytes that are decoded (:func:`embedstore.images.read_image`),
    and a row whose file changed since ingest is skipped with
    :func:`changed_file`'s line, so a vector is never computed from other
    bytes than its key says.

    Examples
    --------
    >>> skipped = []
    >>> decode_rows("text", ["a", "b"], ["a lesion", None], range(2), skipped)
    ([0], ['a lesion'])
    >>> skipped
    [SkippedSample(sample_id='b', reason='text is empty (null)')]
    """
    from .images import read_image, split_ref
    from .keys import sha256_text

    idx, items = [], []
    for i in rows:
        value = inputs[i]
        expected = hashes[i] if hashes is not None else None
        if modality == "image":
            try:
                value, digest = read_image(value)
            except InputError as exc:
                skipped.append(SkippedSample(str(ids[i]), str(exc)))
                continue
            if expected is not None and digest != expected:
                skipped.append(SkippedSample(str(ids[i]), changed_file(split_ref(inputs[i])[0], expected, digest,
                                                                       dataset)))
                continue
        elif value is None:
            skipped.append(SkippedSample(str(ids[i]), "text is empty (null)"))
            continue
        elif expected is not None and sha256_text(value) != expected:
            skipped.append(SkippedSample(str(ids[i]), f"text does not match its stored text_sha256 ({expected[:12]}); "
                                         "not embedded: re-ingest the dataset"))
            continue
        idx.append(i)
        items.append(value)
    return idx, items


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Positions of ``lengths`` cut into batches of ``batch_size``, shortest first (stable for equal lengths).

    Examples
    --------
    >>> length_batches([5, 1, 9, 1, 3], 2)
    [[1, 3], [4, 0], [2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def window_order(lengths: Sequence[int], window: int) -> list[int]:
    """Positions ordered by length within each ``window`` consecutive positions (windows keep their order).

    Examples
    --------
    >>> window_order([5, 1, 9, 1, 3], 3)
    [1, 0, 2, 3, 4]
    """
    out: list[int] = []
    for start in range(0, len(lengths), max(1, window)):
        out += sorted(range(start, min(start + window, len(lengths))), key=lambda i: lengths[i])
    return out


def batch_plan(ext: Any, modality: str, items: Sequence[Any], batch_size: int) -> list[list[int]]:
    """Positions of ``items`` per forward: texts by length (:func:`length_batches`), images in order.

    Examples
    --------
    >>> batch_plan(None, "image", ["a", "b", "c"], 2)
    [[0, 1], [2]]
    """
    if modality == "text" and len(items) > batch_size:
        return length_batches(ext.text_lengths(list(items)), batch_size)
    return [list(range(i, min(i + batch_size, len(items)))) for i in range(0, len(items), batch_size)]


def prefetch_batches(ext: Any, modality: str, ids: Sequence[str], inputs: Sequence[Any], batch_size: int,
                     skipped: list[SkippedSample], depth: int = 3,
                     window: int | None = None, hashes: Sequence[str] | None = None,
                     dataset: str = "") -> Iterator[tuple[list[int], Any]]:
    """Yield ``(row indices, prepared batch)``; decoding/preprocessing runs in a background thread.

    Rows whose input fails to decode, or no longer matches its stored hash
    (``hashes``, see :func:`decode_rows`), are appended to ``skipped`` and left
    out of their batch. At most ``depth`` batches are prepared ahead. Texts are
    ordered by length within each ``window`` rows (default ``batch_size``:
    no reordering), rounded up to whole batches so that ordering never adds
    a forward call, before they are cut into batches (:func:`batch_plan`).
    """
    step = -(-max(batch_size, window or batch_size) // batch_size) * batch_size if modality == "text" else batch_size

    def batches() -> Iterator[tuple[list[int], Any]]:
        for start in range(0, len(ids), step):
            idx, items = decode_rows(modality, ids, inputs, range(start, min(start + step, len(ids))), skipped,
                                     hashes, dataset)
            for part in batch_plan(ext, modality, items, batch_size):
                yield [idx[j] for j in part], ext.prepare(modality, [items[j] for j in part])

    return prefetch(batches(), depth, name="embedstore-prefetch")
