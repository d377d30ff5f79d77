"""What :func:`~embedstore.extract.extract` hands an engine: one modality's rows and where results go.

An engine reads the rows and settings of a :class:`ComputeJob` and reports
back only through its methods (:meth:`~ComputeJob.add`,
:meth:`~ComputeJob.skip`, :meth:`~ComputeJob.count_forwards`,
:meth:`~ComputeJob.load_model`). The job buffers computed rows and hands
every ``chunk_rows`` of them to the ``commit`` callback it was built with
(extract's single write path), so no engine writes to the store or sees
extract's internals.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..extract_inputs import SkippedSample


class ComputeJob:
    """One modality's missing rows to embed, and the buffer that commits results in chunks.

    Parameters
    ----------
    modality : str
        ``image`` or ``text``.
    ids, hashes, inputs : sequence
        Sample ids, their content hashes and inputs (``image_ref`` or ``text``), aligned. An engine
        embeds an input only when it still matches its hash
        (:func:`~embedstore.extract_inputs.decode_rows`): a vector is never stored under a hash its
        input does not have.
    extractor : Extractor
        The driver's extractor (its identity keys the rows; an engine may run copies elsewhere).
    batch_size, chunk_rows : int
        Rows per model forward; rows per committed write.
    show_progress : bool
        Whether the engine shows a progress bar.
    commit : callable
        ``commit(ids, hashes, vectors)`` writes one chunk (raises to leave it pending).
    load : callable
        Loads the driver's extractor once, timing it apart (see :meth:`load_model`).
    dataset : str
        The dataset the rows belong to (named in skip reasons, e.g. a file changed since ingest).

    Attributes
    ----------
    model_key : str
        ``extractor.identity.key``: workers check their copy against it.
    skipped : list of SkippedSample
        Samples that failed to decode/prepare (engines append, or call :meth:`skip`).
    computed : int
        Rows committed so far.
    """

    def __init__(self, modality: str, ids: Sequence[str], hashes: Sequence[str], inputs: Sequence[Any], *,
                 extractor: Any, batch_size: int, chunk_rows: int, show_progress: bool,
                 commit: Callable[[list[str], list[str], np.ndarray], None], load: Callable[[], None],
                 dataset: str = "") -> None:
        self.modality, self.ids, self.hashes, self.inputs = modality, list(ids), list(hashes), list(inputs)
        self.dataset = dataset
        self.extractor, self.batch_size, self.chunk_rows = extractor, batch_size, chunk_rows
        self.show_progress = show_progress
        self.model_key: str = extractor.identity.key
        self.skipped: list[SkippedSample] = []
        self.computed = 0
        self._commit, self._load = commit, load
        self._ids: list[str] = []
        self._hashes: list[str] = []
        self._vectors: list[np.ndarray] = []

    @property
    def pending_rows(self) -> int:
        """Rows computed but not committed yet."""
        return len(self._ids)

    def load_model(self) -> None:
        """Load the driver's extractor (once per extract call; the time counts as load time, not compute)."""
        self._load()

    def add(self, ids: list[str], hashes: list[str], vectors: np.ndarray) -> None:
        """Computed rows; committed as soon as ``chunk_rows`` of them are pending."""
        self._ids += ids
        self._hashes += hashes
        self._vectors.append(vectors)
        if self.pending_rows >= self.chunk_rows:
            self.flush()

    def skip(self, sample_id: str, reason: str) -> None:
        """A sample that could not be decoded or prepared (listed in the report, not written)."""
        self.skipped.append(SkippedSample(sample_id, reason))

    def count_forwards(self, n: int) -> None:
        """``n`` model forwards made elsewhere (e.g. on Ray actors), counted on the driver's extractor."""
        self.extractor.forward_calls += int(n)

    def flush(self) -> None:
        """Commit the pending rows (cleared only once written, so an interrupted write is retried)."""
        if not self._ids:
            return
        self._commit(self._ids, self._hashes, np.concatenate(self._vectors))
        self.computed += len(self._ids)
        self._ids, self._hashes, self._vectors = [], [], []

