"""Execution engines for :func:`embedstore.extract.extract`: strategies behind one :class:`Engine` protocol.

``local`` (:class:`~embedstore.engines.local.LocalEngine`, the default) runs
the model in the calling process. ``ray``
(:class:`~embedstore.engines.ray_engine.RayEngine`) spreads the forward
passes over Ray Data actors on one machine or a cluster while the calling
process keeps the single write path. Both get the same
:class:`~embedstore.engines.job.ComputeJob` from ``extract`` (what
:meth:`Store.reuse_by_hash` and :meth:`Store.missing` left to compute) and
return rows only through it; ``extract`` commits them with
:meth:`Store.write_embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .job import ComputeJob
from .local import LocalEngine

__all__ = ["ENGINES", "ComputeJob", "Engine", "EngineOptions", "LocalEngine", "make_engine"]

ENGINES = ("local", "ray")


@runtime_checkable
class Engine(Protocol):
    """What runs the forwards of one extract call.

    Attributes
    ----------
    name : str
        ``local`` or ``ray``.
    """

    name: str

    def compute(self, job: ComputeJob) -> None:
        """Embed ``job.ids`` and hand every result to ``job.add`` / ``job.skip`` (never write to the store)."""
        ...

    def close(self) -> None:
        """Release what the engine started (a local Ray instance); called once, also on errors."""
        ...


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`make_engine` builds an engine (the engine arguments of :func:`~embedstore.extract.extract`).

    Attributes
    ----------
    engine : {"local", "ray"}
    model_id : str, optional
        What remote workers load (ignored when ``extractor`` is given: they rebuild it from its id).
    extractor : Extractor, optional
        The driver's extractor, if already created.
    quantize, pooling, backend : str, optional
        As for :func:`~embedstore.extractors.load_extractor`.
    opts : dict
        Other extractor options (``max_length``).
    address : str, optional
        Ray cluster to join; ``None`` starts a local Ray instance.
    workers : int, optional
        Ray actors (model copies).
    threads : int, optional
        CPUs and torch threads per Ray actor.
    """

    engine: str = "local"
    model_id: str | None = None
    extractor: Any = None
    quantize: str | None = None
    pooling: str | None = None
    backend: str | None = None
    opts: dict[str, Any] = field(default_factory=dict)
    address: str | None = None
    workers: int | None = None
    threads: int | None = None


def make_engine(options: EngineOptions) -> Engine:
    """The :class:`Engine` for ``options``: a :class:`LocalEngine` or a :class:`~embedstore.engines.ray_engine.RayEngine`.

    Raises :class:`~embedstore.errors.MissingDependencyError` ("install
    embedstore[ray]") before any work when Ray is not installed.

    Examples
    --------
    >>> make_engine(EngineOptions("local", "builtin:minilm-l6")).name
    'local'
    """
    from ..errors import InputError

    if options.engine not in ENGINES:
        raise InputError(f"unknown engine {options.engine!r}: use {' or '.join(ENGINES)}")
    if options.engine == "local":
        return LocalEngine.from_options(options)
    from .ray_engine import RayEngine

    return RayEngine.from_options(options)
