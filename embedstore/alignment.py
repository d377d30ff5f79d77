"""Modality-gap alignment: the :class:`GapShift` transformer and stored alignments.

:class:`GapShift` follows scikit-learn's conventions: hyperparameters in
``__init__``, ``fit`` learns ``gap_`` and returns ``self``, ``transform``
applies it. The maths is the paper's (protocol §5.1):

1. L2-normalise each modality per row;
2. when widths differ and ``match="interp"``, resample every row of the
   narrower modality by linear interpolation over the feature index onto the
   wider index grid (``np.interp`` on ``linspace(0, 1, d)``);
3. ``gap_ = mean(image) - mean(text)`` over the fitting rows;
4. optional seeded Gaussian noise ``noise_std * N(0, 1)`` on each vector
   (our interpretation of the paper's noise step; off by default);
5. ``image - (lam/2) * gap_`` and ``text + (lam/2) * gap_``, so the centroid
   difference becomes ``(1 - lam) * gap_``: ``lam=1`` closes the gap,
   negative ``lam`` widens it;
6. renormalise to unit L2 norm.

The paper fits the gap on every row, test included (``fit_on="all"``); the
default here is the training split only (``fit_on="train"``).

:func:`align` fits this on a dataset in the store and keeps the fitted
transform under an ``alignment_key`` (see :func:`alignment_key_of`),
reusing it when the same alignment is requested again; the aligned vectors
are computed from the extracted ones when read (:mod:`embedstore.aligned_reads`).
The transformer itself lives in :mod:`embedstore.gapshift`.
"""

from __future__ import annotations

from typing import Any, Literal

from .alignment_store import (AlignmentResult, aligned, alignment_key_of, fit_and_store,  # noqa: F401
                              fit_settings, source_fingerprint)
from .gapshift import (FIT_ON, GAP_SIGN, MATCH_METHODS, METHOD, GapShift, NotFittedError,  # noqa: F401
                       interp_rows, l2_normalize, shift_along_gap)


def align(store, dataset: str, *, image_model: str, text_model: str, lam: float = 1.0,
          noise_std: float = 0.0, seed: int = 0, match: Literal["interp"] | None = None,
          fit_on: Literal["train", "all"] = "train", split_by: str | None = None,
          tag: str | None = None, source: Any = None) -> AlignmentResult:
    """Align a dataset's stored image and text embeddings with :class:`GapShift`.

    Reads the unaligned vectors of both models, fits the gap (on the
    ``train`` rows of ``split_by``, or on all rows with ``fit_on="all"``),
    and stores the fitted transform, the samples it covers (every sample
    with both embeddings) and the registry row (settings and gap) under a
    new ``alignment_key``; the aligned rows are computed when read
    (:func:`aligned`, training, ``gap``, ``export``...), with the values
    :meth:`GapShift.transform` gives.

    The key covers λ, noise, seed, fit split, match method, the source model
    keys and the source table versions read. When an alignment with the same
    settings exists for the same source rows (same content fingerprint) it
    is reused: nothing is refitted or written.

    Parameters
    ----------
    store : Store
    dataset : str
    image_model, text_model : str
        Model ids or keys, as registered by ``embedstore extract``.
    lam, noise_std, seed, match, fit_on
        See :class:`GapShift`.
    split_by : str, optional
        Split column for ``fit_on="train"`` (default: the store's default split).
    tag : str, optional
        Tag for the versions written (default: a new ``align-...`` run tag).
    source : PairedSources, optional
        The unaligned pairs, when already read with
        :func:`~embedstore.pairs.paired_sources` for these models and split
        (the gap diagnostics read them once for several alignments).

    Only current vectors are aligned (:class:`~embedstore.snapshot.Snapshot`):
    samples whose stored vector is stale are left out, and the aligned rows
    carry the content hashes of their inputs, so they go stale with them.

    Returns
    -------
    AlignmentResult

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store, ModelIdentity
    >>> from embedstore.pairs import toy_pairs
    >>> store = Store(tempfile.mkdtemp() + "/s")
    >>> toy_pairs(store, "toy", n=20)
    ('hf:toy-image', 'hf:toy-text')
    >>> res = align(store, "toy", image_model="hf:toy-image", text_model="hf:toy-text", match="interp")
    >>> (res.dim, res.rows, res.reused)
    (8, 20, False)
    >>> align(store, "toy", image_model="hf:toy-image", text_model="hf:toy-text", match="interp").reused
    True
    """

    shift = GapShift(lam=lam, noise_std=noise_std, seed=seed, match=match, fit_on=fit_on)
    src, settings = fit_settings(store, dataset, METHOD, shift, source, image_model, text_model, split_by)
    return fit_and_store(store, dataset, src, shift, settings, tag=tag)
