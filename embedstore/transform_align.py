"""Stored alignments of every method in :mod:`embedstore.transforms`.

:func:`align_method` is :func:`embedstore.alignment.align` for any method:
the key covers the method, its settings (λ, ``n_components``, ``fit_on``,
split column, match) and the fingerprint of the source pairs; the fitted
transformer is kept in the ``transform_states`` table (arrays as
safetensors + JSON, :mod:`embedstore.transform_state`, never pickle; keyed
by ``alignment_key``, written before the alignment is registered; every
method's aligned rows are computed from it when read,
:mod:`embedstore.aligned_reads`) and read back with :func:`load_transform`.
Rows of the older pickled ``transforms`` table are refused, never
unpickled: re-running ``embedstore align`` stores the state again in the
new format; the registry row carries ``fit_on`` and the split
column, so honest training (:func:`embedstore.honest.check_honest_alignments`)
refuses a transform that saw test rows exactly as it refuses a mean shift.
"""

from __future__ import annotations

from typing import Any, Literal

from .alignment import align
from .alignment_store import AlignmentResult, fit_and_store, fit_settings
from .refs import lookup_model
from .transform_store import (LEGACY_TRANSFORMS, TRANSFORM_STATES, TRANSFORM_STATES_SCHEMA,  # noqa: F401
                              has_state, load_transform, save_state)
from .transforms import make_transform


def align_method(store, dataset: str, *, method: str, image_model: str, text_model: str, lam: float = 0.0,
                 n_components: int | None = None, match: Literal["auto", "interp"] | None = None,
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
    match : {None, "interp", "auto"}
        Width matching; ``auto`` interpolates only when the two widths differ.
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
    if match == "auto":
        widths = lookup_model(store, image_model, "image").dim("image"), lookup_model(store, text_model, "text").dim("text")
        match = "interp" if widths[0] != widths[1] else None
    if method == "gapshift":
        return align(store, dataset, image_model=image_model, text_model=text_model, lam=lam, match=match,
                     fit_on=fit_on, split_by=split_by, tag=tag, source=source)

    shift = make_transform(method, lam=lam, n_components=n_components, match=match, fit_on=fit_on)
    src, settings = fit_settings(store, dataset, method, shift, source, image_model, text_model, split_by)
    res = fit_and_store(store, dataset, src, shift, settings, tag=tag)
    if res.reused and not has_state(store, res.alignment_key):
        # rows stored by an older version (pickled state, refused on load): refit and store the state anew
        from .alignment_home import LocalAlignments, store_writable
        from .store import new_run_tag

        shift.fit(src.image_vectors, src.text_vectors, split=src.splits)
        save_state(store, res.alignment_key, shift, local=None if store_writable(store) else LocalAlignments(store),
                   tag=tag or new_run_tag("align"))
    return res
