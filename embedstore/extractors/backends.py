"""What runs an encoder's forward: ``torch`` (eager, fp32/bf16/8-bit) or ``onnx`` (ONNX Runtime), and ``auto``.

The backend is part of the model identity (:attr:`ModelIdentity.backend`,
:attr:`ModelIdentity.backend_version`, :attr:`ModelIdentity.dtype`), so
vectors from different backends never share a ``model_key``.

* ``torch`` — the reference: eager torch fp32, or bf16 autocast
  (``quantize="bf16"``), or bitsandbytes 8-bit for ``hf:`` text models.
* ``onnx`` — the torch model exported once per identity to ONNX (cached under
  :func:`embedstore.extractors.onnx.cache_dir`) and run by ONNX Runtime, fp32,
  or dynamically quantised int8 with ``quantize="8bit"``.
* ``auto`` — per model, the fastest backend of the measured table kept with
  the catalog (:func:`backend_table`; the shipped file is refreshed by
  ``python benchmarks/extract.py --only backends --write-table``, a user's own
  by ``embedstore backends --measure``) that passed the parity gate and is
  measurably faster than torch fp32 (:data:`AUTO_MIN_SPEEDUP`); deterministic
  for a given table entry. Models without such an entry run on torch.

**Parity gate.** Before a non-reference path is used, its vectors are
compared with torch fp32 on a fixed probe batch (:func:`probe_batch`):
fp32/bf16 paths need a minimum per-row cosine of :data:`PARITY_MIN`, else
:class:`ParityError` is raised before anything is written. Lossy int8 paths
are opt-in and report their cosine in ``Extractor.parity`` (and in the
extract report) instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError

#: ``--quantize`` spellings -> the dtype keyed in a model identity.
QUANTIZE = {None: "fp32", "none": "fp32", "fp32": "fp32", "bf16": "bf16", "8bit": "8bit"}

BACKENDS = ("torch", "onnx", "auto")
#: The runtime recorded in the identity for each ``--backend`` value.
RUNTIMES = {"torch": "torch", "onnx": "onnxruntime"}
PARITY_MIN = 0.999
#: ``auto`` takes a backend only when the table measured it at least this much faster than torch fp32.
AUTO_MIN_SPEEDUP = 1.1
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
    Raises :class:`ParityError` when a non-lossy path is below
    :data:`PARITY_MIN` (and ``ext.parity_gate`` is on).
    """
    if batch is None:
        batch = ext.prepare(modality, probe_items(modality))
    ref = ext._torch_forward(modality, batch, "fp32")
    out = run(batch)
    cos = min_cosine(ref, out)
    ext.parity[modality] = round(cos, 6)
    if cos < PARITY_MIN and ext.dtype not in LOSSY and ext.parity_gate:
        raise ParityError(f"{ext.resolved.model_id}: the {what} {modality} path fails the parity gate: min "
                          f"per-row cosine {cos:.5f} < {PARITY_MIN} against torch fp32 on the probe batch; {fix}")
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


def entry_speedup(entry: dict[str, Any]) -> float:
    """An entry's speed-up against torch fp32: the lower of its end-to-end and bare-forward figures.

    ``speedup`` is the bare forward's (``embedstore backends --measure``);
    ``e2e_speedup``, when present, is ``extract()``'s end to end
    (``benchmarks/extract.py --only backends --write-table``).

    Examples
    --------
    >>> entry_speedup({"speedup": 2.0, "e2e_speedup": 1.4})
    1.4
    >>> entry_speedup({"speedup": 0.9})
    0.9
    """
    figures = [float(entry[k]) for k in ("speedup", "e2e_speedup") if entry.get(k) is not None]
    return min(figures) if figures else 0.0


def auto_choice(model_id: str, entries: list[dict[str, Any]] | None, dtypes: tuple[str, ...]) -> BackendChoice:
    """The fastest gated (backend, dtype) among ``dtypes`` in a model's table entries, else torch.

    A candidate qualifies when its minimum cosine against torch fp32 is at
    least :data:`PARITY_MIN` and it is measurably faster than torch fp32: at
    least :data:`AUTO_MIN_SPEEDUP` by :func:`entry_speedup` (the lower of end
    to end and bare), in its slowest modality. Without a qualifying
    candidate, torch runs (fp32 when allowed), so ``auto`` never picks a
    backend the table measured slower. Ties keep the reference order, so the
    choice depends only on the entries (and on ONNX Runtime being installed),
    not on their order.

    Examples
    --------
    >>> es = [{"backend": "torch", "dtype": "bf16", "modality": "image", "speedup": 2.2, "min_cos": 0.9998},
    ...       {"backend": "onnxruntime", "dtype": "fp32", "modality": "image", "speedup": 0.8, "min_cos": 1.0}]
    >>> auto_choice("hf:x", es, ("fp32", "bf16")).dtype
    'bf16'
    >>> slow = [{"backend": "torch", "dtype": "bf16", "modality": "text", "speedup": 0.2, "min_cos": 1.0}]
    >>> auto_choice("hf:z", slow, ("fp32", "bf16")).dtype  # measured slower: never picked
    'fp32'
    >>> auto_choice("hf:y", None, ("fp32",)).backend
    'torch'
    """
    ref = dtypes[0]
    if not entries:
        return BackendChoice("torch", ref, f"auto: no measured entry for {model_id} (torch {ref}); "
                             f"'embedstore backends --measure --model {model_id}' adds one")
    cands: dict[tuple[str, str], tuple[float, float]] = {}
    for e in entries:
        k = (e["backend"], e["dtype"])
        if k != ("torch", "fp32"):  # the reference is 1.0x at cosine 1 by definition
            speed, cos = cands.get(k, (float("inf"), 1.0))
            cands[k] = (min(speed, entry_speedup(e)), min(cos, float(e["min_cos"])))
    order = [("torch", "bf16"), ("onnxruntime", "fp32"), ("torch", "8bit")]
    import importlib.util

    ok = [k for k in order + sorted(set(cands) - set(order)) if k in cands and k[1] in dtypes
          and cands[k][1] >= PARITY_MIN and cands[k][0] >= AUTO_MIN_SPEEDUP
          and (k[0] != "onnxruntime" or importlib.util.find_spec("onnxruntime") is not None)]
    if not ok:
        return BackendChoice("torch", ref, f"auto: no gated entry of {model_id} is {AUTO_MIN_SPEEDUP}x torch "
                             f"fp32 or faster in the backend table (torch {ref})")
    best = max(ok, key=lambda k: cands[k][0])  # max keeps the first of equals
    speed, cos = cands[best]
    return BackendChoice(best[0], best[1], f"auto: {best[0]} {best[1]} is {speed:.2f}x torch fp32 in the "
                         f"backend table (min cosine {cos:.5f})")


def choose(model_id: str, backend: str | None, quantize: str | None, default_backend: str,
           default_quantize: str | None) -> BackendChoice:
    """Resolve ``--backend``/``--quantize`` (``None`` = the model's defaults) to a :class:`BackendChoice`.

    Examples
    --------
    >>> choose("hf:x", "onnx", "8bit", "torch", None)
    BackendChoice(backend='onnxruntime', dtype='int8', reason='requested')
    >>> choose("hf:x", None, None, "torch", None).dtype
    'fp32'
    """
    name = (backend or default_backend).lower()
    if name not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: use torch, onnx or auto")
    reason = "requested" if backend else "model default"
    q = quantize.lower() if isinstance(quantize, str) else quantize
    if q not in QUANTIZE:
        raise InputError(f"unknown quantisation {quantize!r}: use 8bit, bf16 or none")
    if name == "auto":
        if q is not None:
            return auto_choice(model_id, backend_table().get(model_id), (QUANTIZE[q],))
        if default_quantize:
            return BackendChoice("torch", QUANTIZE[default_quantize], "auto: the model's default quantisation")
        return auto_choice(model_id, backend_table().get(model_id), ("fp32", "bf16"))
    dtype = QUANTIZE[q if q is not None else default_quantize]
    if name == "onnx":
        if dtype == "bf16":
            raise InputError(f"{model_id}: ONNX Runtime has no bf16 CPU path; use --backend torch --quantize bf16, "
                             "or --backend onnx with --quantize none (fp32) or 8bit (int8)")
        return BackendChoice("onnxruntime", "int8" if dtype == "8bit" else "fp32", reason)
    return BackendChoice("torch", dtype, reason)
