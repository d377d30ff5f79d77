"""Stored alignments of every method in :mod:`embedstore.transforms`.

:func:`align_method` is :func:`embedstore.alignment.align` for any method:
the key covers the method, its settings (λ, ``n_components``, ``fit_on``,
split column, match) and the fingerprint of the source pairs; the fitted
transformer is kept in the ``transforms`` table (pickled, keyed by
``alignment_key``, written before any aligned row) and read back with
:func:`load_transform`; the registry row carries ``fit_on`` and the split
column, so honest training (:func:`embedstore.honest.check_honest_alignments`)
refuses a transform that saw test rows exactly as it refuses a mean shift.
"""

from __future__ import annotations

import pickle
from typing import Any, Literal

import pyarrow as pa

from .alignment import AlignmentResult, align, fit_and_store, source_fingerprint
from .errors import NotFoundError
from .sql import eq
from .transforms import make_transform

#: Table of fitted transformers: ``alignment_key`` → pickled transformer.
TRANSFORMS = "transforms"
TRANSFORMS_SCHEMA = pa.schema([pa.field("alignment_key", pa.string(), nullable=False),
                               pa.field("method", pa.string()), pa.field("state", pa.binary())])


def align_method(store, dataset: str, *, method: str, image_model: str, text_model: str, lam: float = 0.0,
                 n_components: int | None = None, match: Literal["interp"] | None = None,
                 fit_on: Literal["train", "all"] = "train", split_by: str | None = None,
                 tag: str | None = None, source: Any = None) -> AlignmentResult:
    """Fit ``method`` on the training pairs of ``dataset`` and store the aligned vectors.

    Parameters
    ----------
    method : str
        One of :data:`embedstore.transforms.METHODS`; ``gapshift`` is
        :func:`~embedstore.alignment.align` itself.
    lam : float
        λ of the mean shift applied after the map (0: the map alone).
    n_components : int, optional
        Output width of ``whiten``/``procrustes``/``cca`` (see their classes).
    image_model, text_model, match, fit_on, split_by, tag, source
        As for :func:`~embedstore.alignment.align`.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.pairs import toy_pairs
    >>> store = Store(tempfile.mkdtemp() + "/s")
    >>> img, txt = toy_pairs(store, "toy", n=20)
    >>> res = align_method(store, "toy", method="center", image_model=img, text_model=txt, match="interp")
    >>> (res.rows, res.settings["method"], res.reused)
    (20, 'center', False)
    >>> type(load_transform(store, res.alignment_key)).__name__
    'ModalityCentering'
    """
    if method == "gapshift":
        return align(store, dataset, image_model=image_model, text_model=text_model, lam=lam, match=match,
                     fit_on=fit_on, split_by=split_by, tag=tag, source=source)
    from .pairs import paired_sources

    shift = make_transform(method, lam=lam, n_components=n_components, match=match, fit_on=fit_on)
    shift._check_params()
    src = source if source is not None else paired_sources(store, dataset, image_model, text_model,
                                                           split_by=split_by)
    settings = {
        "method": method, "dataset": dataset, **shift.get_params(),
        "split_column": src.split_column if fit_on == "train" else None,
        "image_model_key": src.image.key, "text_model_key": src.text.key,
        "source_fingerprint": source_fingerprint(src, fit_on),
    }

    def save_state(key: str, write_tag: str) -> None:
        row = pa.table({"alignment_key": [key], "method": [method], "state": [pickle.dumps(shift)]},
                       schema=TRANSFORMS_SCHEMA)
        store.upsert(TRANSFORMS, row, key="alignment_key", schema=TRANSFORMS_SCHEMA, tag=write_tag)

    return fit_and_store(store, dataset, src, shift, settings, tag=tag, save_state=save_state)


def load_transform(store, alignment_key: str):
    """The fitted transformer stored for ``alignment_key`` (ready to ``transform`` new rows).

    Raises :class:`~embedstore.errors.NotFoundError` for keys without one
    (mean-shift alignments keep their gap vector in the registry instead).
    """
    if store.has_table(TRANSFORMS):
        rows = store.read(TRANSFORMS, where=eq("alignment_key", alignment_key)).to_pylist()
        if rows:
            return pickle.loads(rows[0]["state"])
    raise NotFoundError(f"no fitted transform stored for alignment '{alignment_key}' in store {store.uri}: "
                        "mean-shift alignments keep their gap in the registry (embedstore info)")
