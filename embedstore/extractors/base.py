"""The :class:`Extractor` base class and the shared image preprocessing.

An extractor knows its :class:`~embedstore.identity.ModelIdentity` as soon as
it is created (from config files and the weights fingerprint only); the model
itself is loaded lazily on the first forward, so a fully cached extraction
never loads it. Work is split in two steps so that the pipeline can overlap
them: ``prepare_*`` (decode-side: preprocessing/tokenising, run in a
background thread) and ``forward_*`` (the model call, counted in
:attr:`Extractor.forward_calls`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..identity import ModelIdentity
from .backends import QUANTIZE, shares_fp32_key
from .resolve import ResolvedModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: Version of embedstore's shared image code (``embedstore.images.load_image``
#: / ``to_rgb`` and :class:`ImagePreprocess`). Rule: bump it in the same commit
#: as any change that alters their output for the same settings; it is added
#: to the ``code_version`` of every extractor that encodes images, so their
#: ``model_key`` changes and stores re-extract (see
#: :class:`~embedstore.identity.ModelIdentity`, "Code versions"); text-only
#: encoders never read images and keep their keys.
#:
#: 1: images are turned upright by their EXIF orientation before embedding
#: (:func:`embedstore.images.upright`). Photos without an orientation tag give
#: the same vectors as before, but the key cannot tell which stored vectors
#: came from a sideways photo, so every image model re-extracts once. (It also
#: leaves behind any vector that an extract before the byte check of
#: :func:`embedstore.images.read_image` computed from a file changed after ingest.)
SHARED_CODE_VERSION = 1


def dtype_of(quantize: str | None, model_id: str, allowed: Sequence[str] = ("fp32", "bf16")) -> str:
    """Normalise a ``quantize`` option to ``fp32``/``bf16``/``8bit``, checking it is supported."""
    key = quantize.lower() if isinstance(quantize, str) else quantize
    if key not in QUANTIZE:
        raise InputError(f"unknown quantisation {quantize!r}: use 8bit, bf16 or none")
    dtype = QUANTIZE[key]
    if dtype not in allowed:
        raise InputError(f"quantize='{quantize}' is not supported for {model_id}: use one of {', '.join(allowed)}")
    return dtype


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize, optional centre crop, scale to [0, 1], normalise; recorded in the identity.

    Parameters
    ----------
    size : int
        Resize target in pixels.
    resize : str
        ``squash`` (resize to size×size ignoring aspect ratio, the paper's
        DINOv2 setting) or ``shortest`` (shortest side to ``size``, keeping
        the aspect ratio, then a centre crop, as CLIP does).
    crop : int, optional
        Centre-crop side (default ``size``); the output is crop×crop.
    mean, std : tuple of float
    interpolation : str
        ``bilinear`` or ``bicubic`` (PIL filters, antialiased).

    Examples
    --------
    >>> from PIL import Image
    >>> pre = ImagePreprocess(size=8)
    >>> pre([Image.new("RGB", (20, 10))]).shape
    torch.Size([1, 3, 8, 8])
    """

    size: int = 224
    resize: str = "squash"
    crop: int | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    @property
    def side(self) -> int:
        """Output side in pixels."""
        return int(self.crop or self.size)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = [round(float(x), 8) for x in self.mean], [round(float(x), 8) for x in self.std]
        return d

    def array(self, image) -> np.ndarray:
        """One PIL image → normalised (3, size, size) float32 array."""
        from PIL import Image

        resample = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[self.interpolation]
        im = image if image.mode == "RGB" else image.convert("RGB")
        if self.resize == "squash":
            im = im.resize((self.size, self.size), resample)
        elif self.resize == "shortest":
            w, h = im.size
            scale = self.size / min(w, h)
            nw, nh = (self.size, max(self.size, int(h * scale))) if w <= h else (max(self.size, int(w * scale)), self.size)
            im = im.resize((nw, nh), resample)
        else:
            raise InputError(f"unknown resize mode {self.resize!r}: use squash or shortest")
        side = self.side
        if im.size != (side, side):
            nw, nh = im.size
            left, top = int(round((nw - side) / 2.0)), int(round((nh - side) / 2.0))
            im = im.crop((left, top, left + side, top + side))
        arr = np.asarray(im, dtype=np.float32) * (1.0 / 255.0)
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def __call__(self, images: Sequence[Any]):
        import torch

        if not images:
            return torch.zeros((0, 3, self.side, self.side))
        return torch.from_numpy(np.stack([self.array(im) for im in images]))


class Extractor:
    """A frozen encoder with a stable identity.

    Subclasses set :attr:`modalities` and implement :meth:`_identity`,
    :meth:`_load` and the ``_prepare_*``/``_forward_*`` pair of each modality
    they support.

    Attributes
    ----------
    identity : ModelIdentity
        What produced the vectors; ``identity.key`` is the ``model_key``.
    modalities : tuple of str
    forward_calls : int
        Number of model forward calls made so far (a cached run makes none).
    """

    modalities: tuple[str, ...] = ()
    #: True for an extractor that packs its own model batches from a whole chunk of rows (llama.cpp: by
    #: tokens, sharing prompt prefixes): the local engine then hands it ``chunk_rows`` rows per forward,
    #: sorted by text so that shared prefixes meet, and reports its progress in tokens (``progress_hook``).
    batches_by_tokens: bool = False
    #: Version of this class's own preprocessing/pooling code. Rule: bump it in
    #: the same commit as any change that alters its vectors for the same
    #: weights and settings (0 = release 0.1; see :data:`SHARED_CODE_VERSION`).
    code_version: int = 0

    def __init__(self, resolved: ResolvedModel, *, dtype: str = "fp32") -> None:
        self.resolved = resolved
        self.dtype = dtype
        self.forward_calls = 0
        self.backend = "torch"  # set with use_backend(); see embedstore.extractors.backends
        self.backend_version = ""
        self.backend_reason = "torch"
        self.parity: dict[str, float] = {}  # min cosine vs torch fp32 on the probe batch, per modality
        self.parity_gate = True
        self.bf16_weights = False  # bf16: matmul weights stored in bfloat16 (see .bf16)
        self._runners: dict[str, Any] = {}
        self._loaded = False
        self._lock = threading.Lock()
        self._runner_lock = threading.Lock()
        self._ident: ModelIdentity | None = None

    # -- identity --------------------------------------------------------
    @property
    def identity(self) -> ModelIdentity:
        if self._ident is None:
            self._ident = self._identity()
        return self._ident

    @property
    def model_key(self) -> str:
        return self.identity.key

    def _identity(self) -> ModelIdentity:
        raise NotImplementedError

    def _make_identity(self, dims: dict[str, int], preprocessing: dict[str, Any], pooling: str,
                       truncation: int | None = None) -> ModelIdentity:
        backend, version, libs = self.backend, self.backend_version, library_versions()
        if shares_fp32_key(backend, self.dtype):  # keyed as torch fp32 ("Backends and keys" in ModelIdentity)
            backend, version, libs["runtime"] = "torch", "", version or backend
        return ModelIdentity(self.resolved.model_id, self.resolved.weights, tuple(m for m in ("image", "text")
                             if m in self.modalities), dims, preprocessing, pooling, self.dtype, truncation,
                             backend, version,
                             code_version=(SHARED_CODE_VERSION if "image" in self.modalities else 0)
                             + self.code_version,
                             library_versions=libs)

    def use_backend(self, choice: Any) -> None:
        """Run with a :class:`~embedstore.extractors.backends.BackendChoice` (before the first forward)."""
        if choice.backend == "onnxruntime":
            from .onnx import runtime_version

            self.backend_version = runtime_version()
            self.dtype = choice.dtype
        elif choice.backend != "torch":
            raise InputError(f"backend {choice.backend} cannot run {self.resolved.model_id}: use torch or onnx")
        self.backend, self.backend_reason = choice.backend, choice.reason
        self._ident = None

    # -- loading ---------------------------------------------------------
    def ensure_loaded(self) -> None:
        """Load the model (once, thread-safe), without the libraries' load chatter."""
        with self._lock:
            if not self._loaded:
                with quiet_loading():
                    self._load()
                self._loaded = True

    def _load(self) -> None:
        raise NotImplementedError

    def _autocast(self, dtype: str | None = None):
        import torch

        if (dtype or self.dtype) == "bf16" and getattr(self, "autocast_bf16", True):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _check(self, modality: str) -> None:
        if modality not in self.modalities:
            raise InputError(f"model {self.resolved.model_id} does not encode {modality}s; "
                             f"it supports {', '.join(self.modalities)}")

    # -- the two steps ---------------------------------------------------
    def prepare(self, modality: str, items: Sequence[Any]) -> Any:
        """Preprocess images (PIL) or tokenise texts into one model batch."""
        self._check(modality)
        if modality == "image":  # preprocessing needs no model
            return self._prepare_images(items)
        self.ensure_loaded()  # the tokenizer
        return self._prepare_texts(list(items))

    def forward(self, modality: str, batch: Any) -> np.ndarray:
        """Run the model on a prepared batch → (n, d) float32 array (through the backend, once gated)."""
        self._check(modality)
        self.ensure_loaded()
        run = self._runner(modality)
        out = run(batch) if run is not None else self._torch_forward(modality, batch, self.dtype)
        self.forward_calls += 1
        return out

    def _torch_forward(self, modality: str, batch: Any, dtype: str) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast(dtype):
            out = self._forward_images(batch) if modality == "image" else self._forward_texts(batch)
        return out.float().cpu().numpy().astype(np.float32, copy=False)

    def _runner(self, modality: str):
        """The gated non-reference forward of ``modality``, built on first use (``None`` = torch as loaded)."""
        if modality in self._runners:
            return self._runners[modality]
        with self._runner_lock:
            if modality not in self._runners:
                self._runners[modality] = self._build_runner(modality)
        return self._runners[modality]

    def _build_runner(self, modality: str):
        from .backends import gate

        if self.backend == "onnxruntime":
            from .onnx import OnnxRunner

            runner = OnnxRunner(self, modality)
            gate(self, modality, runner, f"onnxruntime {self.dtype}", runner.fix)
            return runner
        if self.dtype == "bf16" and getattr(self, "autocast_bf16", True):  # the fp32 weights are at hand
            return self._bf16_runners()[modality]
        return None

    def _bf16_runners(self) -> dict[str, Any]:
        """Gate every modality under bf16 autocast, then keep the matmul weights in bf16 (:mod:`.bf16`).

        All modalities are gated first, while the fp32 weights the gate
        compares with are still there; the cast is kept only where the probe
        vectors stay identical, so the vectors are autocast's either way.
        """
        from .backends import gate, probe_items
        from .bf16 import cast_verified

        runs = {m: functools.partial(self._torch_forward, m, dtype="bf16") for m in self.modalities}
        batches = {m: self.prepare(m, probe_items(m)) for m in self.modalities}
        before = {m: gate(self, m, runs[m], "torch bf16 autocast", "use quantize='none'", batches[m])
                  for m in self.modalities}
        if getattr(self, "model", None) is not None:
            probes = {m: functools.partial(runs[m], batches[m]) for m in self.modalities}
            self.bf16_weights = cast_verified(self.model, probes, before)
        self._runners.update(runs)
        return runs

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """Embed PIL images → (n, d) float32."""
        return self.forward("image", self.prepare("image", images))

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Embed strings → (n, d) float32, in input order.

        With ``batch_size``, texts run in batches of similar length (each
        padded to its own longest: :func:`~embedstore.extract_inputs.length_batches`),
        as ``extract`` runs them; without it, in one batch.
        """
        texts = list(texts)
        if batch_size is None or len(texts) <= batch_size:
            return self.forward("text", self.prepare("text", texts))
        from ..extract_inputs import batch_plan

        out: np.ndarray | None = None
        for part in batch_plan(self, "text", texts, batch_size):
            vectors = self.forward("text", self.prepare("text", [texts[i] for i in part]))
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[part] = vectors
        assert out is not None
        return out

    def text_lengths(self, texts: Sequence[str]) -> list[int]:
        """A length per text to batch texts of similar length together (characters here; tokens where known)."""
        return [len(t) for t in texts]

    def _prepare_images(self, images: Sequence[Any]) -> Any:
        return self.image_preprocess(images)

    def _prepare_texts(self, texts: list[str]) -> Any:
        raise NotImplementedError

    def _forward_images(self, batch: Any):
        raise NotImplementedError

    def _forward_texts(self, batch: Any):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.resolved.model_id!r}, key={self.model_key})"


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' weight-loading progress bars and key reports, and bitsandbytes' cast notes.

    A checkpoint saved with a task head (``LlamaForCausalLM``) loaded as the
    base model reports the unused head; that is expected here.
    """
    import logging

    try:
        from transformers.utils import logging as tlog
    except ImportError:  # pragma: no cover
        tlog = None
    saved = None
    if tlog is not None:
        saved = tlog.get_verbosity()
        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        yield
    finally:
        if tlog is not None:
            tlog.set_verbosity(saved)
            tlog.enable_progress_bar()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that run the encoders (provenance only)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "open_clip_torch", "bitsandbytes"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def token_lengths(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[int]:
    """Tokens per text after truncation to ``max_length`` (a Hugging Face tokenizer, no padding)."""
    return [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]


def unit_rows(x):
    """Rows of a torch tensor scaled to unit L2 norm, in float32 (what the extractors output).

    The numpy counterpart used by the alignment transforms is
    :func:`embedstore.alignment.l2_normalize`.
    """
    import torch

    return torch.nn.functional.normalize(x.float(), dim=-1)


# Helpers shared by the Hugging Face loaders (hf:, clip-hf:, open_clip:).


def check_pooling(pooling: str | None, default: str, allowed: tuple[str, ...], model_id: str) -> str:
    """``pooling`` (or ``default``) if ``model_id`` offers it; else a one-line error listing ``allowed``."""
    pooling = pooling or default
    if pooling not in allowed:
        raise InputError(f"pooling {pooling!r} is not available for {model_id}: use one of {', '.join(allowed)}")
    return pooling


def processor_preprocess(path: Path, config: dict[str, Any]) -> ImagePreprocess:
    """Image preprocessing from a model's ``preprocessor_config.json`` (or sensible defaults)."""
    from .resolve import read_json

    f = path / "preprocessor_config.json"
    size = int(config.get("image_size") or 224)
    if not f.is_file():
        return ImagePreprocess(size=size)
    p = read_json(f)
    raw = p.get("size", size)
    crop = p.get("crop_size") if p.get("do_center_crop", "crop_size" in p) else None
    crop_side = (crop.get("height") if isinstance(crop, dict) else crop) if crop else None
    if isinstance(raw, dict) and "shortest_edge" in raw:
        resize, side = "shortest", int(raw["shortest_edge"])
    else:
        resize, side = "squash", int(raw.get("height", size) if isinstance(raw, dict) else raw)
    return ImagePreprocess(size=side, resize=resize, crop=int(crop_side) if crop_side else None,
                           mean=tuple(p.get("image_mean", IMAGENET_MEAN)), std=tuple(p.get("image_std", IMAGENET_STD)),
                           interpolation={2: "bilinear", 3: "bicubic"}.get(p.get("resample", 2), "bicubic"))
