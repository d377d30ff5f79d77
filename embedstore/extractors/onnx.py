"""ONNX Runtime forwards (``--backend onnx``): export once per model identity, cache, gate, run.

The torch forward of an extractor (model call + pooling + normalisation, i.e.
exactly what ``_forward_images``/``_forward_texts`` compute) is exported with
``torch.onnx.export(dynamo=False, opset_version=17)`` with dynamic batch and
sequence axes, to ``<cache_dir>/<torch fp32 model_key>-<modality>-opset17.onnx``
(written atomically; ``--quantize 8bit`` adds a dynamically quantised int8
copy). A later run with the same identity reuses the file. Every session is
checked against torch fp32 on the probe batch before use
(:func:`embedstore.extractors.backends.gate`), so a stale graph is refused,
never silently used; a cached file ONNX Runtime cannot load at all (damaged,
truncated) is exported again (:class:`OnnxRunner`). One session per extractor and modality,
built on the first forward and reused for every batch
(:func:`session_options`); batches go in and come out as NumPy arrays without
copies (texts are padded to the longest in their batch by the tokenizer).

Needs ``onnxruntime`` and ``onnx`` (``pip install 'embedstore[onnx]'``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, require

OPSET = 17
_EXTRA = "embedstore[onnx]"


def runtime_version() -> str:
    """The keyed backend version: ONNX Runtime's major.minor and the export opset.

    Examples
    --------
    >>> runtime_version().startswith("onnxruntime ")  # doctest: +SKIP
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("onnxruntime")
    except PackageNotFoundError:
        require("onnxruntime", _EXTRA)
        raise
    return f"onnxruntime {'.'.join(v.split('.')[:2])}/opset {OPSET}"


def cache_dir() -> Path:
    """Exported graphs: ``$EMBEDSTORE_ONNX_CACHE``, else ``$XDG_CACHE_HOME/embedstore/onnx``.

    The default sits beside the Hugging Face model cache (``~/.cache/huggingface``).
    """
    env = os.environ.get("EMBEDSTORE_ONNX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embedstore" / "onnx"


def graph_path(ext: Any, modality: str, dtype: str = "fp32") -> Path:
    """Cache file of ``ext``'s graph: named by the torch fp32 identity, so it is exported once per identity."""
    ref = dataclasses.replace(ext.identity, backend="torch", backend_version="", dtype="fp32")
    return cache_dir() / f"{ref.key}-{modality}-opset{OPSET}{'-int8' if dtype == 'int8' else ''}.onnx"


def _input_names(batch: Any) -> list[str]:
    if hasattr(batch, "keys"):
        return [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch]
    return ["pixel_values"]


def export(ext: Any, modality: str, batch: Any, path: Path) -> Path:
    """Export ``ext``'s torch forward of ``modality`` (traced on ``batch``) to ``path``, atomically."""
    import torch

    names = _input_names(batch)

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = ext.model  # registered, so its weights become initializers

        def forward(self, *xs):
            if modality == "image":
                return ext._forward_images(xs[0]).float()
            return ext._forward_texts(dict(zip(names, xs))).float()

    args = tuple(batch[n] for n in names) if hasattr(batch, "keys") else (batch,)
    axes = {n: ({0: "batch"} if modality == "image" else {0: "batch", 1: "seq"}) for n in names}
    axes["vectors"] = {0: "batch"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    import warnings

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Graph().eval(), args, str(tmp), dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=["vectors"], dynamic_axes=axes, do_constant_folding=True)
    os.replace(tmp, path)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 weight quantisation of an exported graph (ONNX Runtime's ``quantize_dynamic``)."""
    require("onnx", _EXTRA)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    tmp = dst.with_suffix(f".{os.getpid()}.tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic's "consider pre-processing" advice
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    os.replace(tmp, dst)
    return dst


def session_options(threads: int) -> Any:
    """ONNX Runtime CPU session options for batch extraction on ``threads`` cores.

    ``threads`` intra-op threads (extract's torch thread count), one inter-op
    thread, sequential execution, every graph optimisation
    (``ORT_ENABLE_ALL``: constant folding, layer-norm/GELU/attention fusions,
    NCHWc layouts), and no spin-waiting of idle pool threads: spinning
    threads compete with extract()'s background decode thread and with other
    jobs on a shared machine (without it: 1.3-1.4x faster end to end on 2
    shared cores, section (c2) of ``benchmarks/results/extract.md``).
    ``onnxruntime.transformers.optimizer`` fusions were measured too and
    are not used (0.91x of this for MiniLM). Options change speed only,
    never the vectors, so they are not keyed.

    Examples
    --------
    >>> session_options(2).intra_op_num_threads  # doctest: +SKIP
    2
    """
    ort = require("onnxruntime", _EXTRA)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class OnnxRunner:
    """An ONNX Runtime session over ``ext``'s cached graph of one modality; call it on a prepared batch.

    A cached graph that ONNX Runtime cannot load (a truncated or damaged
    file: a disk error, a copy cut short) is deleted and exported again, once;
    if the fresh graph still does not load, :class:`~embedstore.errors.InputError`
    names the file. A graph that loads but computes other vectors is refused
    by the parity gate (:func:`embedstore.extractors.backends.gate`).
    """

    def __init__(self, ext: Any, modality: str) -> None:
        import torch

        require("onnxruntime", _EXTRA)
        require("onnx", _EXTRA)
        self.modality = modality
        self.path = graph_path(ext, modality, ext.dtype)
        threads = max(1, torch.get_num_threads())
        self._build(ext, modality)
        try:
            self.session = _session(self.path, threads)
        except Exception as first:  # noqa: BLE001 - any load failure of a cached file: rebuild it once
            for stale in {self.path, graph_path(ext, modality)}:
                stale.unlink(missing_ok=True)
            self._build(ext, modality)
            try:
                self.session = _session(self.path, threads)
            except Exception as exc:  # noqa: BLE001
                raise InputError(f"ONNX graph {self.path}: ONNX Runtime cannot load it even after exporting it "
                                 f"again ({_first_line(exc)}; first try: {_first_line(first)}); check the disk "
                                 "and $EMBEDSTORE_ONNX_CACHE, or use --backend torch") from None
        self.names = [i.name for i in self.session.get_inputs()]
        self.fix = (f"delete {self.path} to export it again, or use --backend torch")

    def _build(self, ext: Any, modality: str) -> None:
        """Export (and quantise) the graph unless it is cached."""
        if self.path.is_file():
            return
        fp32 = graph_path(ext, modality)
        if not fp32.is_file():
            export(ext, modality, ext.prepare(modality, _probe(modality)), fp32)
        if ext.dtype == "int8":
            quantize_int8(fp32, self.path)

    def __call__(self, batch: Any) -> np.ndarray:
        if hasattr(batch, "keys"):
            feed = {n: np.ascontiguousarray(batch[n].numpy()).astype(np.int64, copy=False) for n in self.names}
        else:
            feed = {self.names[0]: np.ascontiguousarray(batch.numpy(), dtype=np.float32)}
        return self.session.run(None, feed)[0].astype(np.float32, copy=False)


def _session(path: Path, threads: int) -> Any:
    ort = require("onnxruntime", _EXTRA)
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] or type(exc).__name__)


def _probe(modality: str) -> list[Any]:
    from .backends import probe_items

    return probe_items(modality)
