"""The modality-gap shift as a scikit-learn-style transformer: :class:`GapShift` and its row-wise maths.

The maths is the paper's (protocol §5.1), see :mod:`embedstore.alignment`
for the steps. Nothing here touches the store: the transformers of
:mod:`embedstore.transforms` build on this module, the store keeps their
fitted state (:mod:`embedstore.transform_state`) and computes aligned rows
with :meth:`GapShift.transform_modality` when they are read
(:mod:`embedstore.aligned_reads`). Import these names from
:mod:`embedstore.alignment` (or the package root).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from .errors import EmbedstoreError, InputError

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

    # -- one modality at a time (aligned rows computed when read) -----------
    def _match_one(self, x: np.ndarray, modality: str) -> np.ndarray:
        """One modality's rows normalised and width-matched exactly as :meth:`_matched` does for a pair."""
        x = np.asarray(x)
        want = (self.image_dim_in_, self.text_dim_in_)[modality == "text"]
        if x.ndim != 2 or x.shape[1] != want:
            raise InputError(f"{type(self).__name__} was fitted on {modality} width {want}, got shape {x.shape}")
        x = l2_normalize(x)
        if self.image_dim_in_ != self.text_dim_in_:
            x = interp_rows(x, max(self.image_dim_in_, self.text_dim_in_))
        return x

    def _map_one(self, x: np.ndarray, modality: str) -> np.ndarray:
        """The fitted map of one modality (none for the plain mean shift)."""
        return x

    def transform_modality(self, x: np.ndarray, modality: str, *, rows: np.ndarray | None = None,
                           n_rows: int | None = None) -> np.ndarray:
        """One modality's rows through the fitted transform, equal to its half of :meth:`transform`.

        Every step is row-wise (normalise, match, map, shift, renormalise),
        so a subset of rows comes out as the same rows of a transform of
        all of them. The seeded noise is the one exception: it depends on
        each row's position among the ``n_rows`` rows :meth:`transform` saw,
        so with ``noise_std > 0`` pass ``rows`` (those positions) and ``n_rows``.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> img, txt = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
        >>> g = GapShift(lam=0.5, match="interp").fit(img, txt)
        >>> bool(np.array_equal(g.transform_modality(txt[2:4], "text"), g.transform(img, txt)[1][2:4]))
        True
        """
        self._check_fitted()
        x = self._map_one(self._match_one(x, modality), modality)
        if x.shape[1] != self.dim_:
            raise InputError(f"{type(self).__name__} was fitted on width {self.dim_}, got width {x.shape[1]}")
        if self.noise_std > 0:
            if rows is None or n_rows is None:
                raise InputError(f"{type(self).__name__} with noise_std > 0: the noise of a row depends on its "
                                 "position among the fitted rows; pass rows= and n_rows=")
            rng = np.random.default_rng(self.seed)
            shape = (int(n_rows), self.dim_)
            noise = rng.standard_normal(shape)
            if modality == "text":
                noise = rng.standard_normal(shape)
            x = x + self.noise_std * noise[np.asarray(rows, dtype=np.int64)]
        return shift_along_gap(x, modality, self.lam, self.gap_)

    def fit_transform(self, image: np.ndarray, text: np.ndarray,
                      split: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``fit(image, text, split)`` then ``transform(image, text)`` on all rows."""
        return self.fit(image, text, split).transform(image, text)
