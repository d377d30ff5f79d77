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

:func:`align` runs this over a dataset in the store and writes the aligned
vectors under an ``alignment_key`` (see :func:`alignment_key_of`), reusing
them when the same alignment is requested again.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from .errors import EmbedstoreError, InputError
from .alignment_store import (AlignmentResult, aligned, alignment_key_of, fit_and_store,  # noqa: F401
                              fit_settings, source_fingerprint)

METHOD = "gapshift"
MATCH_METHODS = (None, "interp")
FIT_ON = ("train", "all")


class NotFittedError(EmbedstoreError, ValueError, AttributeError):
    """A transformer was used before ``fit`` (scikit-learn's ``NotFittedError``)."""


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (zero rows stay zero).

    Examples
    --------
    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def interp_rows(x: np.ndarray, width: int) -> np.ndarray:
    """Resample each row of ``x`` onto ``width`` points by linear index interpolation.

    Row ``r`` is treated as samples at ``linspace(0, 1, d)`` and evaluated at
    ``linspace(0, 1, width)``, as the paper's ``scipy.interp1d`` did.

    Examples
    --------
    >>> interp_rows(np.array([[0.0, 1.0]]), 3).tolist()
    [[0.0, 0.5, 1.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[1]
    if d == width:
        return x
    src, dst = np.linspace(0.0, 1.0, d), np.linspace(0.0, 1.0, width)
    # vectorised np.interp: each target point lies between two source points
    pos = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, d - 2)
    frac = (dst - src[pos]) / (src[pos + 1] - src[pos])
    return x[:, pos] * (1.0 - frac) + x[:, pos + 1] * frac


#: Direction each modality moves along the gap (image centroid − text centroid): toward each other.
GAP_SIGN = {"image": -1.0, "text": 1.0}


def shift_along_gap(x: np.ndarray, modality: str, lam: float, gap: np.ndarray, *,
                    renormalize: bool = True) -> np.ndarray:
    """One modality's matched rows moved by ``∓(lam/2)·gap`` (image −, text +), then renormalised.

    The mean shift of :class:`GapShift`, also applied to new rows by stored heads.

    Examples
    --------
    >>> shift_along_gap(np.array([[1.0, 0.0]]), "image", 1.0, np.array([0.0, -2.0])).astype(float).round(3).tolist()
    [[0.707, 0.707]]
    """
    x = x + GAP_SIGN[modality] * 0.5 * float(lam) * gap
    return (l2_normalize(x) if renormalize else x).astype(np.float32)


class GapShift:
    """Shift image and text embeddings along their centroid gap.

    Parameters
    ----------
    lam : float
        Fraction of the gap to close: 1 closes it, 0 only normalises,
        negative values push the modalities apart.
    noise_std : float
        Scale of seeded Gaussian noise added to each unit vector before the
        shift (our interpretation of the paper's noise; 0 = off).
    seed : int
        Seed of the noise.
    match : {None, "interp"}
        How to match unequal widths; ``None`` raises on unequal widths.
    fit_on : {"train", "all"}
        Which rows :meth:`fit` uses when it is given a ``split`` array:
        rows whose split is ``"train"`` (default), or all rows (the paper).

    Attributes
    ----------
    gap_ : ndarray, shape (dim_,)
        ``mean(image) - mean(text)`` of the normalised, matched fitting rows.
    dim_ : int
        Output width (the wider of the two input widths).
    image_dim_in_, text_dim_in_ : int
        Input widths seen by :meth:`fit`.
    n_fit_rows_ : int
        Number of rows the gap was fitted on.

    Examples
    --------
    >>> img = np.array([[1.0, 0.0], [1.0, 0.2]]); txt = np.array([[0.0, 1.0], [0.2, 1.0]])
    >>> g = GapShift(lam=1.0).fit(img, txt)
    >>> a, b = g.transform(img, txt, renormalize=False)
    >>> bool(np.allclose(a.mean(0), b.mean(0)))
    True
    """

    def __init__(self, lam: float = 1.0, noise_std: float = 0.0, seed: int = 0,
                 match: Literal["interp"] | None = None,
                 fit_on: Literal["train", "all"] = "train") -> None:
        self.lam = lam
        self.noise_std = noise_std
        self.seed = seed
        self.match = match
        self.fit_on = fit_on

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to ``__init__``."""
        return {"lam": float(self.lam), "noise_std": float(self.noise_std), "seed": int(self.seed),
                "match": self.match, "fit_on": self.fit_on}

    def __repr__(self) -> str:
        return "GapShift(" + ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()) + ")"

    def _check_params(self) -> None:
        if self.match not in MATCH_METHODS:
            raise InputError(f"GapShift match={self.match!r}: use None or 'interp'")
        if self.fit_on not in FIT_ON:
            raise InputError(f"GapShift fit_on={self.fit_on!r}: use 'train' or 'all'")
        if self.noise_std < 0:
            raise InputError(f"GapShift noise_std={self.noise_std}: must be >= 0")

    def _matched(self, image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        image, text = np.asarray(image), np.asarray(text)
        if image.ndim != 2 or text.ndim != 2 or image.shape[0] != text.shape[0]:
            raise InputError(f"GapShift needs two 2-D arrays with the same rows, got image {image.shape} "
                             f"and text {text.shape}")
        image, text = l2_normalize(image), l2_normalize(text)
        di, dt = image.shape[1], text.shape[1]
        if di != dt:
            if self.match != "interp":
                raise InputError(f"image width {di} differs from text width {dt}: pass match='interp' "
                                 "to resample the narrower modality")
            width = max(di, dt)
            image, text = interp_rows(image, width), interp_rows(text, width)
        return image, text

    def _fit_rows(self, image: np.ndarray, text: np.ndarray,
                  split: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
        """The normalised, matched rows ``fit`` learns from (``fit_on`` applied to ``split``)."""
        name = type(self).__name__
        image, text = self._matched(image, text)
        if split is not None:
            split = np.asarray(split)
            if split.shape[0] != image.shape[0]:
                raise InputError(f"{name}.fit: split has {split.shape[0]} entries for {image.shape[0]} rows")
            if self.fit_on == "train":
                keep = split == "train"
                if not keep.any():
                    raise InputError(f"{name}.fit: no row has split 'train'; use fit_on='all' or check the split")
                image, text = image[keep], text[keep]
        if image.shape[0] == 0:
            raise InputError(f"{name}.fit: no rows to fit on")
        return image, text

    def fit(self, image: np.ndarray, text: np.ndarray, split: Sequence[str] | None = None) -> "GapShift":
        """Learn ``gap_`` from paired rows.

        Parameters
        ----------
        image, text : ndarray, shape (n, d_image) and (n, d_text)
            Row ``i`` of both is the same sample.
        split : sequence of str, optional
            Each row's split. With ``fit_on="train"`` only ``"train"`` rows
            are used; with ``fit_on="all"`` every row. Without it every
            given row is used (pass the training rows yourself).
        """
        self._check_params()
        dims_in = int(np.shape(image)[1]), int(np.shape(text)[1])
        image, text = self._fit_rows(image, text, split)
        self.gap_ = image.mean(axis=0) - text.mean(axis=0)
        self.dim_ = int(image.shape[1])
        self.image_dim_in_, self.text_dim_in_ = dims_in
        self.n_fit_rows_ = int(image.shape[0])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "gap_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. "
                                 "Call 'fit' with appropriate arguments before using this estimator.")

    def transform(self, image: np.ndarray, text: np.ndarray, *,
                  renormalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Normalise, match, add noise, shift by ``±(lam/2)·gap_`` and renormalise.

        Returns
        -------
        (image, text) : tuple of ndarray, both of width ``dim_``, float32
            With ``renormalize=False``, the shifted vectors before the final
            renormalisation (for checking the centroid arithmetic).
        """
        self._check_fitted()
        return self._shift(*self._matched(image, text), renormalize=renormalize)

    def _shift(self, image: np.ndarray, text: np.ndarray, *,
               renormalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Noise, ``±(lam/2)·gap_`` shift and renormalisation of matched rows."""
        if image.shape[1] != self.dim_:
            raise InputError(f"{type(self).__name__} was fitted on width {self.dim_}, got width {image.shape[1]}")
        if self.noise_std > 0:
            rng = np.random.default_rng(self.seed)
            image = image + self.noise_std * rng.standard_normal(image.shape)
            text = text + self.noise_std * rng.standard_normal(text.shape)
        return (shift_along_gap(image, "image", self.lam, self.gap_, renormalize=renormalize),
                shift_along_gap(text, "text", self.lam, self.gap_, renormalize=renormalize))

    def fit_transform(self, image: np.ndarray, text: np.ndarray,
                      split: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``fit(image, text, split)`` then ``transform(image, text)`` on all rows."""
        return self.fit(image, text, split).transform(image, text)


def align(store, dataset: str, *, image_model: str, text_model: str, lam: float = 1.0,
          noise_std: float = 0.0, seed: int = 0, match: Literal["interp"] | None = None,
          fit_on: Literal["train", "all"] = "train", split_by: str | None = None,
          tag: str | None = None, source: Any = None) -> AlignmentResult:
    """Align a dataset's stored image and text embeddings with :class:`GapShift`.

    Reads the unaligned vectors of both models, fits the gap (on the
    ``train`` rows of ``split_by``, or on all rows with ``fit_on="all"``),
    transforms every sample that has both embeddings, writes the results
    to the embeddings tables under a new ``alignment_key`` and registers the
    gap vector with :meth:`Store.register_alignment`.

    The key covers λ, noise, seed, fit split, match method, the source model
    keys and the source table versions read. When an alignment with the same
    settings exists for the same source rows (same content fingerprint) its
    stored rows are reused: nothing is recomputed or written.

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
