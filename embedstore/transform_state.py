"""Fitted alignment transforms as arrays (safetensors) + JSON, never pickle.

A fitted transformer of :mod:`embedstore.transforms` is its attributes:
numbers and strings (hyperparameters, widths, row counts), NumPy arrays
(means, gaps, rotations) and, for some methods, fitted scikit-learn
estimators (``StandardScaler``, ``PCA``, ``CCA``), whose own state is again
numbers and arrays. :func:`dump_state` splits that into

* ``arrays``: safetensors bytes, one tensor per array attribute
  (``gap_``, ``factor_image_``, ``pca_image_.components_``, ...);
* ``meta``: a JSON string with the format tag, the method, the scalar
  attributes, the class and constructor parameters of every nested
  estimator, and the scikit-learn version it was fitted with (a state
  fitted with another minor version of scikit-learn is refused).

:func:`load_state` re-creates the transformer from those two without
unpickling anything: the classes come from a fixed allow-list (the methods
of :mod:`embedstore.transforms` and the three scikit-learn estimators they
use), never from names read out of the store.

Examples
--------
>>> import numpy as np
>>> from embedstore.transforms import make_transform
>>> rng = np.random.default_rng(0)
>>> img, txt = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
>>> t = make_transform("whiten", n_components=3).fit(img, txt)
>>> meta, arrays = dump_state(t)
>>> back = load_state(meta, arrays)
>>> bool(np.array_equal(back.transform(img, txt)[0], t.transform(img, txt)[0]))
True
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .errors import InputError

#: Tag of the stored format; a row with another tag is refused.
FORMAT = "embedstore-transform/1"
_NP_SCALAR = "__numpy_scalar__"


def _transformer_classes() -> dict[str, type]:
    from .gapshift import GapShift
    from .transforms import _CLASSES

    return {"gapshift": GapShift, **_CLASSES}


def _estimator_classes() -> dict[str, type]:
    from sklearn.cross_decomposition import CCA
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    return {"StandardScaler": StandardScaler, "PCA": PCA, "CCA": CCA}


#: Fitted attributes of an estimator that ``transform`` never reads, left out of the stored state: CCA's
#: regression coefficients (features x targets, as large as a rotation) and its training-row scores.
_NOT_FOR_TRANSFORM = {"CCA": ("coef_", "intercept_", "_x_scores", "_y_scores")}


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def _split(attrs: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray], where: str) -> dict[str, Any]:
    """Scalar ``attrs`` as JSON values; the arrays among them go to ``arrays`` under ``prefix``."""
    scalars: dict[str, Any] = {}
    for name, value in attrs.items():
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError(f"{where}.{name}: object arrays cannot be stored")
            arrays[prefix + name] = np.ascontiguousarray(value)
        elif isinstance(value, np.generic):
            scalars[name] = {_NP_SCALAR: value.dtype.str, "value": value.item()}
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            scalars[name] = list(value)
        else:
            raise TypeError(f"{where}.{name}: cannot store a {type(value).__name__} (not an array or a number)")
    return scalars


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        try:
            dtype = np.dtype(str(value[_NP_SCALAR]))
        except (KeyError, TypeError):
            dtype = None
        if dtype is None or dtype.kind not in "biuf":
            raise InputError(f"{where}: a stored scalar is not a number ({value!r}): re-run 'embedstore align'")
        return dtype.type(value["value"])
    return value


def _minor(version: str | None) -> str | None:
    """``"1.5"`` of ``"1.5.2"``: fitted attributes of scikit-learn estimators change between minor versions."""
    return None if version is None else ".".join(str(version).split(".")[:2])


def dump_state(transformer: Any) -> tuple[str, bytes]:
    """``(meta JSON, safetensors bytes)`` of a fitted transformer of :mod:`embedstore.transforms`.

    Parameters
    ----------
    transformer : GapShift or a subclass from :func:`embedstore.transforms.make_transform`
        Fitted (``transform`` would work on it).

    Returns
    -------
    (meta, arrays) : (str, bytes)
    """
    from safetensors.numpy import save

    method = getattr(transformer, "method", "gapshift")
    if _transformer_classes().get(method) is not type(transformer):
        raise TypeError(f"dump_state: {type(transformer).__name__} is not the class of method {method!r}")
    known = {cls: name for name, cls in _estimator_classes().items()}
    arrays: dict[str, np.ndarray] = {}
    attrs = {k: v for k, v in vars(transformer).items() if not k.startswith("_")}  # "_...": caches
    scalars = _split({k: v for k, v in attrs.items() if type(v) not in known}, "", arrays, method)
    estimators = {name: {"class": known[type(est)],
                         "attrs": _split({k: v for k, v in vars(est).items()
                                          if k not in _NOT_FOR_TRANSFORM.get(known[type(est)], ())},
                                         f"{name}.", arrays, f"{method}.{name}")}
                  for name, est in attrs.items() if type(est) in known}
    meta = {"format": FORMAT, "method": method, "attrs": scalars, "estimators": estimators,
            "sklearn": _sklearn_version() if estimators else None}
    return json.dumps(meta, sort_keys=True), save(arrays)


def load_state(meta: str, arrays: bytes, *, where: str = "transform") -> Any:
    """Re-create the transformer :func:`dump_state` wrote (no pickle).

    Raises :class:`~embedstore.errors.InputError` (one line, naming
    ``where`` and the fix) for another format, an unknown method or
    estimator, or state fitted with another scikit-learn version.
    """
    from safetensors.numpy import load

    try:
        info = json.loads(meta)
    except (TypeError, ValueError):
        info = None
    refit = "re-run 'embedstore align' with the same settings to refit and store it"
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise InputError(f"{where}: stored state is not in format {FORMAT}: {refit}")
    classes = _transformer_classes()
    cls = classes.get(info.get("method"))
    if cls is None:
        raise InputError(f"{where}: unknown method {info.get('method')!r} in the stored state: {refit}")
    if info["estimators"] and _minor(info.get("sklearn")) != _minor(_sklearn_version()):
        raise InputError(f"{where}: fitted with scikit-learn {info.get('sklearn')}, this is "
                         f"{_sklearn_version()}: {refit}")
    tensors = dict(load(arrays))
    obj = cls.__new__(cls)
    obj.__dict__.update({k: _scalar(v, where) for k, v in info["attrs"].items()})
    obj.__dict__.update({k: v for k, v in tensors.items() if "." not in k})
    allowed = _estimator_classes()
    for name, est_info in info["estimators"].items():
        est_cls = allowed.get(est_info.get("class"))
        if est_cls is None:
            raise InputError(f"{where}: unknown estimator {est_info.get('class')!r} in the stored state: {refit}")
        est = est_cls.__new__(est_cls)
        est.__dict__.update({k: _scalar(v, where) for k, v in est_info["attrs"].items()})
        est.__dict__.update({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")})
        setattr(obj, name, est)
    return obj
