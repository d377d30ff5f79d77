"""``extract --engine local`` (the default): forwards in the calling process.

Image decoding and preprocessing run in a background thread
(:func:`~embedstore.extract_inputs.prefetch_batches`) overlapping the model
forward; texts are batched by length within each commit chunk. The model
loads only once a batch is ready (for texts: first, since the tokenizer
prepares the batches), so inputs that all fail to decode never load it.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..extract_inputs import prefetch_batches
from .job import ComputeJob


class LocalEngine:
    """Runs the forwards of one extract call in this process, in true batches.

    Examples
    --------
    >>> with LocalEngine() as eng:
    ...     eng.name
    'local'
    """

    name = "local"

    @classmethod
    def from_options(cls, options: Any) -> "LocalEngine":
        """The engine for :class:`~embedstore.engines.EngineOptions` (Ray-only settings are refused)."""
        if options.address or options.workers:
            raise InputError("ray_address= and workers= need engine='ray'")
        return cls()

    def compute(self, job: ComputeJob) -> None:
        """Embed ``job``'s rows with ``job.extractor``, handing results to ``job.add``.

        An extractor that batches by tokens (``batches_by_tokens``, llama.cpp)
        gets a whole chunk of rows per forward, the rows sorted by text so
        that texts sharing a prefix land in the same chunk, and reports its
        progress in tokens (:class:`~embedstore.progress.TokenProgress`).
        """
        from ..progress import TokenProgress
        from ..progress import progress as progress_bar

        ext, modality, ids, hashes, inputs = job.extractor, job.modality, job.ids, job.hashes, job.inputs
        by_tokens = modality == "text" and getattr(ext, "batches_by_tokens", False)
        rows = job.batch_size
        if by_tokens:
            order = sorted(range(len(ids)), key=lambda i: str(inputs[i]))
            ids, hashes, inputs = ([seq[i] for i in order] for seq in (ids, hashes, inputs))
            rows = job.chunk_rows
        if modality == "text":  # the tokenizer is needed to prepare batches
            job.load_model()
        bar = progress_bar(total=len(ids), unit="rows", desc=f"extract {modality}", disable=not job.show_progress)
        meter = TokenProgress(bar) if by_tokens else None
        if meter is not None:
            ext.progress_hook = meter
        try:
            for idx, batch in prefetch_batches(ext, modality, ids, inputs, rows, job.skipped,
                                               window=None if by_tokens else job.chunk_rows, hashes=hashes,
                                               dataset=job.dataset):
                job.load_model()  # images: only once a batch decoded, so all-broken inputs never load the model
                vectors = ext.forward(modality, batch)
                job.add([ids[i] for i in idx], [hashes[i] for i in idx], vectors)
                if meter is None:
                    bar.update(len(idx))
            bar.update(len(ids) - bar.n)
        finally:
            if meter is not None:
                ext.progress_hook = None
            bar.close()

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "LocalEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
