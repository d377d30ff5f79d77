"""Input scaling: a train-fitted, recorded step between the store and a head.

``--scale`` chooses, per modality, what the head sees:

* ``none``: the stored vectors as they are (paper mode always uses this:
  the paper's main runs fed raw DINOv2 / LLaMA-2 vectors, protocol §3);
* ``l2``: each row divided by its L2 norm (:class:`sklearn.preprocessing.Normalizer`;
  no fitted state);
* ``standard``: per-feature mean 0 / variance 1
  (:class:`sklearn.preprocessing.StandardScaler`), fitted on the **training
  rows only** of each run (each fold, in cross-validation).

:class:`ScaledSource` wraps any :class:`~embedstore.trainers.loader.Source`: it fits
the scalers on one pass over the train split and transforms every batch
of every split. It shares the wrapped source's event log, so the honest
guarantees (test read once, after selection) are checked on the same log.

Examples
--------
>>> parse_scale("standard")
{'image': 'standard', 'text': 'standard'}
>>> parse_scale("image=standard,text=l2")
{'image': 'standard', 'text': 'l2'}
>>> s = ModalityScaler("standard").fit(np.array([[0.0, 2.0], [2.0, 4.0]]))
>>> s.transform(np.array([[1.0, 3.0]])).tolist()
[[0.0, 0.0]]
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from embedstore.errors import InputError
from embedstore.modes import mode_rules

from .loader import Batch, Source

SCALES = ("none", "l2", "standard")
MODALITIES = ("image", "text")
#: Honest-mode default, chosen from the dev270 / RetinaMNIST measurements (see README "Honest numbers"); its one
#: home is the honest mode's rules (:attr:`embedstore.modes.ModeRules.input_scale`).
DEFAULT_SCALE = mode_rules("honest").input_scale


def parse_scale(spec: str | Mapping[str, str] | None, default: str = DEFAULT_SCALE) -> dict[str, str]:
    """``"l2"`` (both modalities) or ``"image=standard,text=l2"`` → ``{modality: method}``.

    ``None`` gives ``default`` for both modalities.
    """
    if spec is None:
        spec = default
    if isinstance(spec, Mapping):
        out = {m: str(spec.get(m, default)) for m in MODALITIES}
    elif "=" in spec:
        out = {m: default for m in MODALITIES}
        for part in spec.split(","):
            name, _, method = part.partition("=")
            if name.strip() not in MODALITIES:
                raise InputError(f"scale={spec!r}: {name.strip()!r} is not a modality; use image=...,text=...")
            out[name.strip()] = method.strip()
    else:
        out = {m: spec.strip() for m in MODALITIES}
    bad = sorted({v for v in out.values() if v not in SCALES})
    if bad:
        raise InputError(f"scale={spec!r}: unknown method {bad}; use one of {', '.join(SCALES)}")
    return out


class ModalityScaler:
    """One modality's scaling, scikit-learn style (``fit`` on train rows, then ``transform``)."""

    def __init__(self, method: str) -> None:
        if method not in SCALES:
            raise InputError(f"unknown scaling {method!r}: use one of {', '.join(SCALES)}")
        self.method = method
        self._est = None
        self.n_fit = 0

    def partial_fit(self, x: np.ndarray) -> "ModalityScaler":
        """Accumulate training rows (one batch at a time)."""
        from sklearn.preprocessing import StandardScaler

        if self.method == "standard":
            self._est = self._est or StandardScaler()
            self._est.partial_fit(x)
            self.mean_ = self._est.mean_.astype(np.float32)
            self.scale_ = self._est.scale_.astype(np.float32)
        self.n_fit += len(x)
        return self

    def fit(self, x: np.ndarray) -> "ModalityScaler":
        """Fit on all training rows at once."""
        self._est, self.n_fit = None, 0
        return self.partial_fit(x)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled copy of ``x`` (float32)."""
        x = np.asarray(x, dtype=np.float32)
        if self.method == "none":
            return x
        if self.method == "l2":  # as sklearn.preprocessing.normalize: zero rows stay zero
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            return x / np.where(norm > 0, norm, 1.0).astype(np.float32)
        if self._est is None:
            raise InputError("standard scaling used before it was fitted on training rows")
        return ((x - self.mean_) / self.scale_).astype(np.float32)  # StandardScaler.transform, in float32

    def describe(self) -> dict[str, Any]:
        """What was fitted, for the run record (a digest of the fitted mean/scale, not the vectors)."""
        out: dict[str, Any] = {"method": self.method, "fit_on": "train", "n_fit": int(self.n_fit)}
        if self._est is not None:
            params = np.concatenate([self._est.mean_, self._est.scale_]).astype(np.float64)
            out["params_sha256"] = hashlib.sha256(params.tobytes()).hexdigest()[:16]
        return out


class ScaledSource(Source):
    """A source whose batches are scaled by scalers fitted on its train split.

    Parameters
    ----------
    inner : Source
    scale : dict
        ``{modality: method}`` (:func:`parse_scale`).
    batch_size : int
        Batch size of the fitting pass.

    Examples
    --------
    >>> from embedstore.trainers.loader import ArraySource
    >>> inner = ArraySource(np.array([[1.0], [3.0], [5.0]]), None, ["a", "b", "a"], ["train", "train", "test"])
    >>> src = ScaledSource(inner, {"image": "standard", "text": "none"})
    >>> [float(v) for v in next(iter(src.batches("test", 8)))[0][:, 0]]
    [3.0]
    """

    def __init__(self, inner: Source, scale: Mapping[str, str], batch_size: int = 4096) -> None:
        super().__init__()
        self.inner = inner
        self.events = inner.events
        self.classes = inner.classes
        self.image_dim, self.text_dim = inner.image_dim, inner.text_dim
        self.path = inner.path
        self.scalers = {m: ModalityScaler(scale.get(m, "none")) for m in MODALITIES}
        for xi, xt, _ in inner.batches("train", batch_size, None):
            for m, x in (("image", xi), ("text", xt)):
                if x is not None:
                    self.scalers[m].partial_fit(x.numpy())

    def __getattr__(self, name: str) -> Any:  # versions, model_keys, skipped... of the wrapped source
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def labels(self, split: str) -> np.ndarray:
        return self.inner.labels(split)

    def has_split(self, split: str) -> bool:
        return self.inner.has_split(split)

    def prepare(self, splits: Sequence[str]) -> float:
        return self.inner.prepare(splits)

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        for xi, xt, y in self.inner.batches(split, batch_size, generator):
            yield (None if xi is None else torch.from_numpy(self.scalers["image"].transform(xi.numpy())),
                   None if xt is None else torch.from_numpy(self.scalers["text"].transform(xt.numpy())), y)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "scaling": self.scaling()}

    def scaling(self) -> dict[str, Any]:
        """``{modality: fitted description}`` of the modalities present."""
        dims = {"image": self.image_dim, "text": self.text_dim}
        return {m: s.describe() for m, s in self.scalers.items() if dims[m]}


def scaled(source: Source, scale: Mapping[str, str] | None, batch_size: int = 4096) -> Source:
    """``source`` itself when every method is ``none``, else a :class:`ScaledSource`."""
    if not scale or all(v == "none" for v in scale.values()):
        return source
    return ScaledSource(source, scale, batch_size)
