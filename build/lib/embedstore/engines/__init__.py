"""Execution engines for :func:`embedstore.extract.extract`.

``local`` (the default) runs the model in the calling process
(:mod:`embedstore.extract`). ``ray`` (:mod:`embedstore.engines.ray_engine`)
spreads the forward passes over Ray Data actors on one machine or a cluster
while the calling process keeps the single write path. Both decide what to
compute the same way (:meth:`Store.reuse_by_hash`, then :meth:`Store.missing`)
and write through :meth:`Store.write_embeddings`.
"""

from __future__ import annotations

from typing import Any

ENGINES = ("local", "ray")


def make_engine(engine: str, model_id: str, extractor: Any, quantize: str | None, pooling: str | None,
                opts: dict[str, Any], address: str | None, workers: int | None, threads: int | None) -> Any:
    """``None`` for the local engine, else a :class:`~embedstore.engines.ray_engine.RayEngine`.

    Raises :class:`~embedstore.errors.MissingDependencyError` ("install
    embedstore[ray]") before any work when Ray is not installed.

    Examples
    --------
    >>> make_engine("local", "builtin:minilm-l6", None, None, None, {}, None, None, None) is None
    True
    """
    from ..errors import InputError

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: use {' or '.join(ENGINES)}")
    if engine == "local":
        if address or workers:
            raise InputError("--ray-address and --workers need --engine ray")
        return None
    from .ray_engine import RayEngine

    opts = dict(opts)
    backend = opts.pop("backend", None)
    if extractor is not None:  # workers rebuild it from its id; their model_key is checked against it
        model_id, quantize, pooling = extractor.resolved.model_id, extractor.dtype, extractor.identity.pooling
        backend = {"onnxruntime": "onnx"}.get(extractor.backend, extractor.backend)
        quantize = {"int8": "8bit", "fp32": "none"}.get(quantize, quantize)
    spec = {"model_id": model_id, "quantize": quantize, "pooling": pooling, "backend": backend, "opts": opts}
    return RayEngine(spec, address=address, workers=workers, cpus_per_worker=threads)
