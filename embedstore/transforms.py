"""Train-fitted alignment transforms beyond the mean shift, beside :class:`GapShift`.

Each transformer follows :class:`~embedstore.alignment.GapShift`'s
conventions (hyperparameters in ``__init__``, fitted state ending in ``_``,
:class:`~embedstore.alignment.NotFittedError` before ``fit``, ``fit_on``
applied to a ``split`` array) and composes with λ: ``transform``

1. L2-normalises and width-matches both modalities (as :class:`GapShift`);
2. applies the fitted map of the method and renormalises;
3. shifts by ``±(lam/2)·gap_``, the centroid gap of the *mapped* training
   rows, and renormalises (``lam=0``: the map alone).

===============  ==========================================================  =========
method           map (scikit-learn / scipy)                                   pairs
===============  ==========================================================  =========
``center``       subtract each modality's training mean (C³)                  no
``standardize``  ``StandardScaler`` per modality (I0T)                        no
``whiten``       ``PCA(whiten=True)`` per modality (W-CLIP)                   no
``procrustes``   centre, rotate image onto text with                          yes
                 ``scipy.linalg.orthogonal_procrustes`` (optional PCA first)
``cca``          ``sklearn.cross_decomposition.CCA`` scores of both           yes
===============  ==========================================================  =========

The pair methods use row ``i`` of image and text as a pair; like every
fitted quantity here they see the training rows only (``fit_on="train"``).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np

from .gapshift import GapShift, interp_rows, l2_normalize
from .errors import InputError

#: Methods :func:`make_transform` knows (``gapshift`` = the paper's shift alone).
METHODS = ("gapshift", "center", "standardize", "whiten", "procrustes", "cca")


class _MappedShift(GapShift):
    """A fitted per-modality or paired map, then :class:`GapShift`'s λ shift."""

    method = "gapshift"

    def __init__(self, lam: float = 0.0, n_components: int | None = None, *,
                 match: Literal["interp"] | None = None, fit_on: Literal["train", "all"] = "train") -> None:
        super().__init__(lam=lam, match=match, fit_on=fit_on)
        self.n_components = n_components

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to ``__init__`` (with the noise fields of :class:`GapShift`)."""
        return {**super().get_params(), "n_components": self.n_components}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lam={self.lam!r}, n_components={self.n_components!r}, " \
               f"match={self.match!r}, fit_on={self.fit_on!r})"

    def _components(self, n: int, *widths: int) -> int:
        """Output width of a PCA/CCA step: ``n_components`` capped by the rank the rows allow."""
        cap = min(n - 1, *widths)
        k = cap if self.n_components is None else min(int(self.n_components), cap)
        if k < 1:
            raise InputError(f"{type(self).__name__}: {n} fitting rows leave no component to fit; "
                             "give more training rows")
        return k

    def fit(self, image: np.ndarray, text: np.ndarray, split: Sequence[str] | None = None) -> "_MappedShift":
        """Fit the map on the (training) pairs, then the gap of the mapped rows; returns ``self``."""
        self._check_params()
        self.image_dim_in_, self.text_dim_in_ = int(np.shape(image)[1]), int(np.shape(text)[1])
        image, text = self._fit_rows(image, text, split)
        self._fit_map(image, text)
        image, text = self._map(image, text)
        self.gap_ = image.mean(axis=0) - text.mean(axis=0)
        self.dim_ = int(image.shape[1])
        self.n_fit_rows_ = int(image.shape[0])
        return self

    def transform(self, image: np.ndarray, text: np.ndarray, *,
                  renormalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Normalise, match, map, renormalise, shift by ``±(lam/2)·gap_`` and renormalise."""
        self._check_fitted()
        return self._shift(*self._map(*self._matched(image, text)), renormalize=renormalize)

    def _fit_map(self, image: np.ndarray, text: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _map(self, image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both modalities through the fitted map: each one alone (every map here is per modality)."""
        return self._map_one(image, "image"), self._map_one(text, "text")

    def _map_one(self, x: np.ndarray, modality: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class ModalityCentering(_MappedShift):
    """Subtract each modality's training mean and renormalise (C³, Zhang et al. 2024).

    Attributes
    ----------
    mean_image_, mean_text_ : ndarray
        Per-modality means of the normalised, matched fitting rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img, txt = rng.normal(1, 1, (40, 6)), rng.normal(-1, 1, (40, 6))
    >>> a, b = ModalityCentering().fit(img, txt).transform(img, txt)
    >>> bool(np.linalg.norm(a.mean(0) - b.mean(0)) < 0.5)
    True
    """

    method = "center"

    def _fit_map(self, image: np.ndarray, text: np.ndarray) -> None:
        self.mean_image_, self.mean_text_ = image.mean(axis=0), text.mean(axis=0)

    def _map_one(self, x, modality):
        return l2_normalize(x - (self.mean_image_ if modality == "image" else self.mean_text_))


class ModalityStandardizer(_MappedShift):
    """Z-score every dimension per modality and renormalise (I0T, An et al. 2025).

    Attributes
    ----------
    scaler_image_, scaler_text_ : sklearn.preprocessing.StandardScaler
    """

    method = "standardize"

    def _fit_map(self, image: np.ndarray, text: np.ndarray) -> None:
        from sklearn.preprocessing import StandardScaler

        self.scaler_image_ = StandardScaler().fit(image)
        self.scaler_text_ = StandardScaler().fit(text)

    def _map_one(self, x, modality):
        return l2_normalize((self.scaler_image_ if modality == "image" else self.scaler_text_).transform(x))


class ModalityWhitener(_MappedShift):
    """Identity covariance per modality with ``PCA(whiten=True)``, renormalised (W-CLIP, Betser et al. 2025).

    ``n_components`` (default: the rank the rows allow, ``min(n - 1, d)``)
    is the output width of both modalities.

    Attributes
    ----------
    pca_image_, pca_text_ : sklearn.decomposition.PCA
    """

    method = "whiten"

    def _fit_map(self, image: np.ndarray, text: np.ndarray) -> None:
        from sklearn.decomposition import PCA

        k = self._components(len(image), image.shape[1], text.shape[1])
        self.pca_image_ = PCA(n_components=k, whiten=True, svd_solver="full").fit(image)
        self.pca_text_ = PCA(n_components=k, whiten=True, svd_solver="full").fit(text)

    def _map_one(self, x, modality):
        return l2_normalize((self.pca_image_ if modality == "image" else self.pca_text_).transform(x))


class ProcrustesAlignment(_MappedShift):
    """Rotate the centred image vectors onto the centred text vectors of the training pairs.

    The rotation ``R`` maximises ``trace(R.T @ M)``, ``M = image_c.T @ text_c``
    (minimises ``||image_c @ R - text_c||_F`` over orthogonal ``R``), as
    ``scipy.linalg.orthogonal_procrustes`` does. With ``n_components`` each
    modality is first reduced by its own PCA (fitted on the training rows).

    What is stored is what the fit determines: ``M = U S Vᵀ`` has rank ``r``
    (at most the narrower modality's width and the training rows − 1: 384 for
    a 384-wide text stretched to 1,280), and ``R = U_r V_rᵀ + C``, where ``C``
    maps the rest of the image space onto the rest of the text space. Any
    isometry ``C`` between those two complements is an equally optimal
    rotation, so scipy's choice there is whatever LAPACK's SVD returns for
    (numerically) zero singular values: not reproducible from one machine to
    the next. Here ``C`` is the canonical one, the isometry closest to the
    identity (the polar factor of ``(I - U_r U_rᵀ)(I - V_r V_rᵀ)``), computed
    from the factors. The factors are kept in float32 (``factor_image_``,
    ``factor_text_``), in the coordinates of the subspace a width-matched
    (``match='interp'``) modality lives in, i.e. at its native width; ``R`` is
    computed from the rounded factors at fit time and when read, so the stored
    state reproduces the fitted rows. States stored with the full
    ``rotation_`` matrix (by main at 3795f98 and earlier) are read as they are.

    Attributes
    ----------
    mean_image_, mean_text_ : ndarray
    factor_image_ : ndarray, shape (image width or image's native width, r), float32
    factor_text_ : ndarray, shape (text width or text's native width, r), float32
    rotation_ : ndarray, shape (k, k)
        Computed from the factors (read-only).
    pca_image_, pca_text_ : sklearn.decomposition.PCA or None
    """

    method = "procrustes"

    def _fit_map(self, image: np.ndarray, text: np.ndarray) -> None:
        from sklearn.decomposition import PCA

        self.pca_image_ = self.pca_text_ = None
        if self.n_components is not None:
            k = self._components(len(image), image.shape[1], text.shape[1])
            self.pca_image_ = PCA(n_components=k, svd_solver="full").fit(image)
            self.pca_text_ = PCA(n_components=k, svd_solver="full").fit(text)
        image, text = self._reduce(image, text)
        self.mean_image_, self.mean_text_ = image.mean(axis=0), text.mean(axis=0)
        m = (image - self.mean_image_).T @ (text - self.mean_text_)
        u, s, vt = np.linalg.svd(m)
        r = int(np.sum(s > (s[0] * max(m.shape) * np.finfo(np.float64).eps if s.size else 0.0)))
        for name, f, modality in (("factor_image_", u[:, :r], "image"), ("factor_text_", vt[:r].T, "text")):
            basis = self._native_basis(modality)
            if basis is not None and np.abs(basis @ (basis.T @ f) - f).max() < 1e-9:
                f = basis.T @ f  # at the modality's native width (its rows never leave this subspace)
            setattr(self, name, np.ascontiguousarray(f, dtype=np.float32))
        self.__dict__.pop("_rotation", None)

    def _native_basis(self, modality: str) -> np.ndarray | None:
        """Orthonormal basis (width x native width) of the rows of a modality stretched by ``match='interp'``."""
        native = self.image_dim_in_ if modality == "image" else self.text_dim_in_
        width = max(self.image_dim_in_, self.text_dim_in_)
        if self.pca_image_ is not None or native >= width:
            return None
        q, r = np.linalg.qr(interp_rows(np.eye(native), width).T)
        return q * np.where(np.diag(r) < 0, -1.0, 1.0)  # signs fixed: the same basis on every machine

    def _factor(self, modality: str) -> np.ndarray:
        f = np.asarray(self.factor_image_ if modality == "image" else self.factor_text_, dtype=np.float64)
        width = self.mean_image_.shape[0]
        if f.shape[0] == width:
            return f
        basis = self._native_basis(modality)
        if basis is None or basis.shape[1] != f.shape[0]:
            raise InputError(f"procrustes state: {modality} factor of shape {f.shape} does not fit width {width}: "
                             "re-run 'embedstore align' with the same settings")
        return basis @ f

    @property
    def rotation_(self) -> np.ndarray:
        """The fitted rotation (k x k): as stored by earlier versions, else computed from the factors and cached."""
        if "rotation_" in self.__dict__:
            return self.__dict__["rotation_"]
        if "_rotation" not in self.__dict__:
            ur, vr = self._factor("image"), self._factor("text")
            d, r = ur.shape
            rot = ur @ vr.T
            if r < d:
                qu, qv = np.linalg.qr(ur)[0], np.linalg.qr(vr)[0]
                k = (np.eye(d) - qu @ qu.T) @ (np.eye(d) - qv @ qv.T)
                y, _, xt = np.linalg.svd(k)
                rot = rot + y[:, :d - r] @ xt[:d - r]
            self.__dict__["_rotation"] = rot
        return self.__dict__["_rotation"]

    def _reduce(self, image, text):
        if self.pca_image_ is None:
            return image, text
        return self.pca_image_.transform(image), self.pca_text_.transform(text)

    def _map_one(self, x, modality):
        pca = self.pca_image_ if modality == "image" else self.pca_text_
        x = x if pca is None else pca.transform(x)
        if modality == "image":
            return l2_normalize((x - self.mean_image_) @ self.rotation_)
        return l2_normalize(x - self.mean_text_)


class CCAAlignment(_MappedShift):
    """Canonical correlation scores of both modalities, fitted on the training pairs (CSA, Li et al. 2025).

    ``n_components`` (default 16, capped by the rank the rows allow) is the
    shared output width; ``max_iter`` goes to ``sklearn.cross_decomposition.CCA``.

    Attributes
    ----------
    cca_ : sklearn.cross_decomposition.CCA
    """

    method = "cca"

    def __init__(self, lam: float = 0.0, n_components: int | None = 16, *, max_iter: int = 500,
                 match: Literal["interp"] | None = None, fit_on: Literal["train", "all"] = "train") -> None:
        super().__init__(lam=lam, n_components=n_components, match=match, fit_on=fit_on)
        self.max_iter = max_iter

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to ``__init__``."""
        return {**super().get_params(), "max_iter": int(self.max_iter)}

    def _fit_map(self, image: np.ndarray, text: np.ndarray) -> None:
        import warnings

        from sklearn.cross_decomposition import CCA

        k = self._components(len(image), image.shape[1], text.shape[1])
        with warnings.catch_warnings():  # NIPALS convergence notes on tiny fits; the scores are still used
            warnings.simplefilter("ignore")
            self.cca_ = CCA(n_components=k, max_iter=int(self.max_iter)).fit(image, text)

    def _map_one(self, x, modality):
        if modality == "image":
            return l2_normalize(self.cca_.transform(x))
        # the text half of CCA.transform(X, y), as scikit-learn computes it (it has no y-only transform)
        y = np.array(x, dtype=np.float64, copy=True)
        y -= self.cca_._y_mean
        y /= self.cca_._y_std
        return l2_normalize(np.dot(y, self.cca_.y_rotations_))


_CLASSES = {"center": ModalityCentering, "standardize": ModalityStandardizer, "whiten": ModalityWhitener,
            "procrustes": ProcrustesAlignment, "cca": CCAAlignment}


def make_transform(method: str, *, lam: float = 0.0, n_components: int | None = None,
                   match: Literal["interp"] | None = None,
                   fit_on: Literal["train", "all"] = "train") -> GapShift:
    """The unfitted transformer of ``method`` (one of :data:`METHODS`) with these settings.

    ``n_components=None`` keeps each method's default (CCA: 16; the others:
    no reduction). ``gapshift`` returns a plain :class:`GapShift`.

    Examples
    --------
    >>> make_transform("cca", lam=0.5)
    CCAAlignment(lam=0.5, n_components=16, match=None, fit_on='train')
    >>> make_transform("rotate")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: unknown alignment method 'rotate': use one of gapshift, center, standardize, whiten, procrustes, cca
    """
    if method == "gapshift":
        return GapShift(lam=lam, match=match, fit_on=fit_on)
    if method not in _CLASSES:
        raise InputError(f"unknown alignment method '{method}': use one of {', '.join(METHODS)}")
    kw = {} if n_components is None else {"n_components": n_components}
    return _CLASSES[method](lam=lam, match=match, fit_on=fit_on, **kw)
