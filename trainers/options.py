"""The grouped options of :func:`embedstore.trainers.train.train`: head, loader, cross-validation.

Each group is a small frozen dataclass with the same defaults as the flat
keywords of ``train()`` (which keep working): pass either the group
(``head=HeadOptions(hidden=(64,), output_size=3)``) or its flat keywords
(``hidden=[64], output_size=3``), not both.

Examples
--------
>>> HeadOptions(hidden=(8,)).spec("early", n_classes=3).output_size
3
>>> grouped(HeadOptions, None, hidden=(8,), hidden_image=None, output_size=None, block_order=None,
...         align_loss_weight=0.0).hidden
(8,)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence, TypeVar

from embedstore.errors import InputError
from embedstore.numbers import check_number

from .fit_loop import HeadSpec
from .models import BLOCK_ORDER

T = TypeVar("T")


def _ints(values: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(int(v) for v in values)


@dataclass(frozen=True)
class HeadOptions:
    """The head's shape, before the task fixes its output size.

    Attributes
    ----------
    hidden : tuple of int, optional
        Hidden sizes (late fusion: per branch; default the fusion's own).
    hidden_image : tuple of int, optional
        Late fusion: the image branch's hidden sizes when they differ.
    output_size : int, optional
        Logits; default 1 for two classes, else the number of classes.
    block_order : tuple of str, optional
        Layer order of each hidden block (default :data:`embedstore.trainers.models.BLOCK_ORDER`).
    align_loss_weight : float
        Late fusion: weight of ``mean(1 − cos(h_text, h_image))``.
    """

    hidden: tuple[int, ...] | None = None
    hidden_image: tuple[int, ...] | None = None
    output_size: int | None = None
    block_order: tuple[str, ...] | None = None
    align_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.output_size is not None:
            check_number("output_size", self.output_size, low=1, integer=True,
                         fix="leave it unset for 1 logit (two classes) or one per class")
        for name in ("hidden", "hidden_image"):
            for size in getattr(self, name) or ():
                check_number(name, size, low=1, integer=True)
        check_number("align_loss_weight", self.align_loss_weight or 0.0, low=0)

    def spec(self, fusion: str, n_classes: int) -> HeadSpec:
        """The :class:`~embedstore.trainers.fit_loop.HeadSpec` of ``fusion`` for a task of ``n_classes``."""
        output_size = self.output_size or (1 if n_classes <= 2 else n_classes)
        return HeadSpec(fusion, int(output_size), _ints(self.hidden), _ints(self.hidden_image),
                        tuple(self.block_order or BLOCK_ORDER), float(self.align_loss_weight or 0.0))


@dataclass(frozen=True)
class LoaderOptions:
    """How the stored vectors are read, and with how many threads the head trains.

    Attributes
    ----------
    loader : {"auto", "memory", "stream"}
        See :mod:`embedstore.trainers.store_source`.
    readahead, chunk_rows : int
        Streaming: chunks read ahead, rows per chunk.
    label_column : str
    versions : dict, optional
        ``{table: version}`` to pin (latest otherwise).
    image_dim, text_dim : int, optional
        Width of the embeddings table when an aligned key lives in several.
    threads : int or None
        Torch intra-op threads while training (1 by default; ``None`` keeps torch's).
    """

    loader: str = "auto"
    readahead: int = 4
    chunk_rows: int = 4096
    label_column: str = "label"
    versions: Mapping[str, int] | None = None
    image_dim: int | None = None
    text_dim: int | None = None
    threads: int | None = 1

    def __post_init__(self) -> None:
        check_number("readahead", self.readahead, low=1, integer=True)
        check_number("chunk_rows", self.chunk_rows, low=1, integer=True)
        if self.threads is not None:
            check_number("threads", self.threads, low=1, integer=True)
        for table, version in (self.versions or {}).items():
            if not isinstance(version, str):  # a tag names a version by name
                check_number(f"versions['{table}']", version, low=1, integer=True,
                             fix=f"see 'embedstore versions {table}'")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], versions: Mapping[str, int],
                    loader: str | None = None) -> "LoaderOptions":
        """The options a recorded run read with (its ``config`` and ``table_versions``)."""
        tables = config["tables"]
        return cls(loader=loader or config["loader"], readahead=config.get("readahead", 4),
                   chunk_rows=config.get("chunk_rows", 4096), label_column=config["label_column"],
                   versions=dict(versions), image_dim=config["image_dim"] if "image" in tables else None,
                   text_dim=config["text_dim"] if "text" in tables else None, threads=config.get("threads", 1))


@dataclass(frozen=True)
class CVOptions:
    """Grouped, stratified K-fold cross-validation (honest mode, :mod:`embedstore.trainers.cv`).

    Attributes
    ----------
    k : int
        Folds.
    repeats : int
        Repeats, each with new folds (split seeds ``cv_seed, cv_seed+1, ...``).
    cv_seed : int
    val_fraction : float
        Share of each training fold's groups held out for validation.
    """

    k: int
    repeats: int = 1
    cv_seed: int = 0
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        check_number("cv", self.k, low=2, integer=True, fix="K folds need K >= 2")
        check_number("repeats", self.repeats, low=1, integer=True)
        check_number("cv_seed", self.cv_seed, integer=True)
        check_number("val_fraction", self.val_fraction, low=0, high=0.5, low_open=True, high_open=True,
                     fix="e.g. 0.2")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class SelectOptions:
    """How an honest head chooses its settings before the refit (:mod:`embedstore.trainers.select`).

    Attributes
    ----------
    on : {"inner", "val"}
        ``inner``: inner grouped ``inner_k``-fold CV of the training rows
        (default); ``val``: the split's (or fold's) validation part.
    inner_k : int
        Inner folds.
    search : dict, optional
        MLP settings to try (``dropout``, ``weight_decay``, ``lr``,
        ``hidden``: lists of values); ``None`` = the default search
        (:data:`embedstore.trainers.select.MLP_SEARCH`). The epoch is always
        chosen; settings given explicitly to ``train`` are fixed, not searched.
    """

    on: str = "inner"
    inner_k: int = 3
    search: Mapping[str, Sequence] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (recorded in each run's config)."""
        return {"on": self.on, "inner_k": self.inner_k,
                "search": None if self.search is None else {k: [list(v) if isinstance(v, tuple) else v for v in vs]
                                                            for k, vs in self.search.items()}}


def grouped(cls: type[T], given: T | None, **flat: Any) -> T:
    """``given`` when passed (then every flat keyword must be at its default), else ``cls(**flat)``."""
    if given is None:
        return cls(**flat)
    defaults = {f.name: f.default for f in fields(cls)}
    clash = sorted(k for k, v in flat.items() if v is not None and v != defaults.get(k))
    if clash:
        raise InputError(f"give {', '.join(clash)} inside {cls.__name__} or as keywords, not both")
    return given
