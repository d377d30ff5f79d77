"""What runs an encoder's forward: ``torch`` (eager, fp32/bf16/8-bit) or ``onnx`` (ONNX Runtime), and ``auto``.

The backend's numerics are part of the model identity (:attr:`ModelIdentity.backend`,
:attr:`ModelIdentity.backend_version`, :attr:`ModelIdentity.dtype`), under
one rule (written out in :class:`~embedstore.identity.ModelIdentity`,
"Backends and keys"): **fp32 paths share one key** — ONNX Runtime fp32 is
keyed as torch fp32 eager, provided its vectors agree with torch fp32 to a
minimum per-row cosine of :data:`~embedstore.identity.FP32_SHARE_MIN_COS`
(checked on every session before it writes) — while bf16, 8-bit and int8
keep keys of their own.

* ``torch`` — the reference: eager torch fp32, or bf16 autocast
  (``quantize="bf16"``), or bitsandbytes 8-bit for ``hf:`` text models.
* ``onnx`` — the torch model exported once per identity to ONNX (cached under
  :func:`embedstore.extractors.onnx.cache_dir`) and run by ONNX Runtime, fp32
  (the shared fp32 key), or dynamically quantised int8 with ``quantize="8bit"``.
* ``auto`` — per model, a runtime of the **fp32 key** only: ONNX Runtime fp32
  when the measured table kept with the catalog (:func:`backend_table`;
  refreshed by ``python benchmarks/extract.py --only backends --write-table``,
  a user's own by ``embedstore backends --measure``) has it at least
  :data:`AUTO_MIN_SPEEDUP` times torch fp32 end to end in its *worse*
  condition (quiet and with two CPU-bound competitors) and never slower in
  any round; else torch fp32. ``auto`` reads that table only, never the
  machine's load or CPU flags, and whatever it picks has the same key, so
  every machine of a lab fills and reuses the same rows. bf16 is never
  ``auto``'s pick: its key differs from fp32's, so a bf16 default on CPUs
  with native bf16 and an fp32 one elsewhere would split a lab's vectors;
  and on CPUs without native bf16 (``embedstore.cpu.native_bf16``) it is
  slower than fp32. Ask for it with ``--quantize bf16``.

**Parity gate.** Before a non-reference path is used, its vectors are
compared with torch fp32 on a fixed probe batch (:func:`probe_items`):
ONNX Runtime fp32 needs a minimum per-row cosine of
:data:`~embedstore.identity.FP32_SHARE_MIN_COS` (it shares the fp32 key),
bf16 :data:`PARITY_MIN`, else :class:`ParityError` is raised before
anything is written. Lossy int8 paths are opt-in and report their cosine
in ``Extractor.parity`` (and in the extract report) instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..identity import FP32_SHARE_MIN_COS

#: ``--quantize`` spellings -> the dtype keyed in a model identity.
QUANTIZE = {None: "fp32", "none": "fp32", "fp32": "fp32", "bf16": "bf16", "8bit": "8bit"}

BACKENDS = ("torch", "onnx", "auto")
#: The runtime recorded in the identity for each ``--backend`` value.
RUNTIMES = {"torch": "torch", "onnx": "onnxruntime"}
PARITY_MIN = 0.999
#: ``auto`` takes ONNX Runtime fp32 only when the table measured it at least this much faster than torch fp32
#: end to end in its worse condition (quiet, loaded) ...
AUTO_MIN_SPEEDUP = 1.3
#: ... and at least this fast as torch fp32 in every measured round (``min_round_speedup``).
AUTO_MIN_ROUND = 1.0
#: Runtimes whose fp32 vectors are keyed as torch fp32 (the key rule in :class:`~embedstore.identity.ModelIdentity`).
FP32_SHARED_RUNTIMES = ("torch", "onnxruntime")
LOSSY = ("8bit", "int8")
TABLE_FILE = Path(__file__).with_name("backend_table.json")
#: Probe texts: different lengths, so padding and masks are exercised.
PROBE_TEXTS = ("Patient diagnosed via histo. Age: 45 years. Sex: female. Localization: back.",
               "An image from the right eye of a male patient, aged 57.0 years, with no comorbidities reported.",
               "melanoma", "The optic disc is present, vessels are present, and the macula is absent.")


class ParityError(InputError):
    """A backend's vectors do not match torch fp32 on the probe batch (the path is refused)."""


@dataclass(frozen=True)
class BackendChoice:
    """The backend and dtype an extractor runs with, and why.

    Attributes
    ----------
    backend : str
        ``torch`` or ``onnxruntime`` (``llama.cpp`` for ``gguf:`` files).
    dtype : str
        ``fp32``, ``bf16``, ``8bit`` (torch/bitsandbytes) or ``int8`` (ONNX Runtime).
    reason : str
        ``requested``, ``model default``, or what ``auto`` read from the table.
    """

    backend: str
    dtype: str
    reason: str

    @property
    def quantize(self) -> str:
        """The torch model's ``quantize`` option for this choice."""
        return {"fp32": "none", "int8": "none"}.get(self.dtype, self.dtype)


def shares_fp32_key(backend: str, dtype: str) -> bool:
    """Whether ``backend`` at ``dtype`` is keyed as torch fp32 eager (the shared fp32 key).

    Examples
    --------
    >>> shares_fp32_key("onnxruntime", "fp32"), shares_fp32_key("onnxruntime", "int8"), shares_fp32_key("torch", "bf16")
    (True, False, False)
    """
    return dtype == "fp32" and backend in FP32_SHARED_RUNTIMES


def min_cosine(ref: np.ndarray, out: np.ndarray) -> float:
    """Smallest per-row cosine similarity between two (n, d) arrays.

    Examples
    --------
    >>> a = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> round(min_cosine(a, np.array([[2.0, 0.0], [1.0, 1.0]])), 4)
    0.7071
    """
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    if ref.shape != out.shape:
        return -1.0
    num = (ref * out).sum(axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    return float(np.min(num / np.maximum(den, 1e-30))) if len(ref) else 1.0


def probe_items(modality: str, n: int = 4, size: tuple[int, int] = (96, 72)) -> list[Any]:
    """Deterministic probe inputs: synthetic RGB images (noise over gradients) or fixed texts.

    Examples
    --------
    >>> [im.size for im in probe_items("image", 2)]
    [(96, 72), (96, 72)]
    >>> len(probe_items("text", 6))
    6
    """
    if modality == "text":
        return [PROBE_TEXTS[i % len(PROBE_TEXTS)] for i in range(n)]
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.2, 1.0, h)[:, None, None]
    out = []
    for i in range(n):
        img = 0.6 * np.roll(ramp, 7 * i, axis=1) + 0.4 * rng.integers(0, 256, (h, w, 3))
        out.append(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB"))
    return out


def gate(ext: Any, modality: str, run: Callable[[Any], np.ndarray], what: str, fix: str,
         batch: Any = None) -> np.ndarray:
    """Compare ``run`` with torch fp32 on the probe batch; record the min cosine, return ``run``'s vectors.

    ``batch`` is the prepared probe batch (prepared here when omitted).
    Raises :class:`ParityError` when a non-lossy path is below its minimum
    (and ``ext.parity_gate`` is on): :data:`~embedstore.identity.FP32_SHARE_MIN_COS`
    for a path keyed as torch fp32, :data:`PARITY_MIN` for bf16.
    """
    if batch is None:
        batch = ext.prepare(modality, probe_items(modality))
    ref = ext._torch_forward(modality, batch, "fp32")
    out = run(batch)
    cos = min_cosine(ref, out)
    ext.parity[modality] = round(cos, 7)
    shared = shares_fp32_key(ext.backend, ext.dtype)
    need = FP32_SHARE_MIN_COS if shared else PARITY_MIN
    if cos < need and ext.dtype not in LOSSY and ext.parity_gate:
        why = " (it would share torch fp32's key)" if shared else ""
        raise ParityError(f"{ext.resolved.model_id}: the {what} {modality} path fails the parity gate: min "
                          f"per-row cosine {cos:.7f} < {need} against torch fp32 on the probe batch{why}; {fix}")
    return out


# -- the measured table and auto ---------------------------------------------
def user_table_file() -> Path:
    """Where ``embedstore backends --measure`` writes (``$EMBEDSTORE_BACKEND_TABLE`` overrides)."""
    env = os.environ.get("EMBEDSTORE_BACKEND_TABLE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embedstore" / "backend_table.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()).get("models", {})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"backend table {path} is unreadable ({exc}): delete it or re-run "
                         "'embedstore backends --measure'") from None


def backend_table() -> dict[str, list[dict[str, Any]]]:
    """Measured backends per model id: the shipped table, overridden per model by the user's.

    Each entry: ``backend``, ``dtype``, ``modality``, ``rows_per_s``,
    ``speedup`` (vs torch fp32 in the same run) and ``min_cos`` (vs torch fp32).

    Examples
    --------
    >>> sorted({e["backend"] for e in backend_table()["builtin:efficientnet-lite0"]})
    ['onnxruntime', 'torch']
    """
    table = _read(TABLE_FILE)
    table.update(_read(user_table_file()))
    return table


#: An entry's speed-up figures against torch fp32 (whichever are present): bare forward
#: (``embedstore backends --measure`` before per-condition figures), end to end, quiet and loaded.
SPEEDUP_FIELDS = ("speedup", "e2e_speedup", "quiet_speedup", "loaded_speedup")


def entry_speedup(entry: dict[str, Any]) -> float:
    """An entry's *worse* speed-up against torch fp32: the lowest of the figures it has (:data:`SPEEDUP_FIELDS`).

    Examples
    --------
    >>> entry_speedup({"quiet_speedup": 2.0, "loaded_speedup": 1.4})
    1.4
    >>> entry_speedup({"speedup": 0.9})
    0.9
    """
    figures = [float(entry[k]) for k in SPEEDUP_FIELDS if entry.get(k) is not None]
    return min(figures) if figures else 0.0


def auto_choice(model_id: str, entries: list[dict[str, Any]] | None) -> BackendChoice:
    """``auto``'s runtime for the fp32 key: ONNX Runtime fp32 when its table entries earn it, else torch fp32.

    ONNX Runtime fp32 qualifies when, in every modality the entries cover,
    it was measured quiet and loaded, its minimum cosine against torch fp32 is at least
    :data:`~embedstore.identity.FP32_SHARE_MIN_COS`, its worse speed-up
    (:func:`entry_speedup`) at least :data:`AUTO_MIN_SPEEDUP`, and its
    slowest round (``min_round_speedup``, where measured) at least
    :data:`AUTO_MIN_ROUND`. Entries of other dtypes (bf16, int8) are shown
    by ``embedstore backends`` but never chosen: they have keys of their own.
    Both outcomes have the same key, so the choice changes speed only.

    Examples
    --------
    >>> es = [{"backend": "torch", "dtype": "bf16", "modality": "image", "quiet_speedup": 3.0,
    ...        "loaded_speedup": 2.5, "min_cos": 0.99998},
    ...       {"backend": "onnxruntime", "dtype": "fp32", "modality": "image", "quiet_speedup": 1.5,
    ...        "loaded_speedup": 1.9, "min_round_speedup": 1.2, "min_cos": 1.0}]
    >>> c = auto_choice("hf:x", es); (c.backend, c.dtype)  # bf16 is faster but has its own key
    ('onnxruntime', 'fp32')
    >>> es[1]["quiet_speedup"] = 1.1  # not 1.3x in its worse condition
    >>> auto_choice("hf:x", es).backend
    'torch'
    >>> auto_choice("hf:y", None).backend
    'torch'
    """
    if not entries:
        return BackendChoice("torch", "fp32", f"auto: no measured entry for {model_id} (torch fp32); "
                             f"'embedstore backends --measure --model {model_id} --dataset NAME' measures one")
    onnx = [e for e in entries if (e["backend"], e["dtype"]) == ("onnxruntime", "fp32")]
    import importlib.util

    if not onnx or importlib.util.find_spec("onnxruntime") is None:
        return BackendChoice("torch", "fp32", f"auto: torch fp32 (no ONNX Runtime fp32 entry for {model_id}"
                             + ("" if onnx else " in the backend table") + ")")
    if any(e.get("loaded_speedup") is None for e in onnx):
        return BackendChoice("torch", "fp32", f"auto: torch fp32 (the ONNX Runtime fp32 entry of {model_id} was not "
                             "measured loaded: 'embedstore backends --measure' measures both conditions)")
    worse = min(entry_speedup(e) for e in onnx)
    rounds = [float(e["min_round_speedup"]) for e in onnx if e.get("min_round_speedup") is not None]
    cos = min(float(e["min_cos"]) for e in onnx)
    what = f"ONNX Runtime fp32 is {worse:.2f}x torch fp32 in its worse condition" + (
        f", {min(rounds):.2f}x in its slowest round" if rounds else "") + f", min cosine {cos:.7f}"
    if cos >= FP32_SHARE_MIN_COS and worse >= AUTO_MIN_SPEEDUP and (not rounds or min(rounds) >= AUTO_MIN_ROUND):
        return BackendChoice("onnxruntime", "fp32", f"auto: {what} (same key as torch fp32)")
    return BackendChoice("torch", "fp32", f"auto: torch fp32, since {what} (needs {AUTO_MIN_SPEEDUP}x, "
                         f"{AUTO_MIN_ROUND}x per round and cosine {FP32_SHARE_MIN_COS})")


def choose(model_id: str, backend: str | None, quantize: str | None, default_backend: str,
           default_quantize: str | None) -> BackendChoice:
    """Resolve ``--backend``/``--quantize`` (``None`` = the model's defaults) to a :class:`BackendChoice`.

    With ``auto``, an explicit or default quantisation other than fp32 runs
    on torch (its own key, as asked); fp32 goes to :func:`auto_choice`.

    Examples
    --------
    >>> choose("hf:x", "onnx", "8bit", "torch", None)
    BackendChoice(backend='onnxruntime', dtype='int8', reason='requested')
    >>> choose("hf:x", None, None, "torch", None).dtype
    'fp32'
    >>> c = choose("hf:x", "auto", "bf16", "torch", None); (c.backend, c.dtype)
    ('torch', 'bf16')
    """
    name = (backend or default_backend).lower()
    if name not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: use torch, onnx or auto")
    reason = "requested" if backend else "model default"
    q = quantize.lower() if isinstance(quantize, str) else quantize
    if q not in QUANTIZE:
        raise InputError(f"unknown quantisation {quantize!r}: use 8bit, bf16 or none")
    dtype = QUANTIZE[q if q is not None else default_quantize]
    if name == "auto":
        if dtype != "fp32":
            why = "requested" if q is not None else "the model's default"
            return BackendChoice("torch", dtype, f"auto: {dtype} ({why}) runs on torch, under its own key")
        return auto_choice(model_id, backend_table().get(model_id))
    if name == "onnx":
        if dtype == "bf16":
            raise InputError(f"{model_id}: ONNX Runtime has no bf16 CPU path; use --backend torch --quantize bf16, "
                             "or --backend onnx with --quantize none (fp32) or 8bit (int8)")
        return BackendChoice("onnxruntime", "int8" if dtype == "8bit" else "fp32", reason)
    return BackendChoice("torch", dtype, reason)
