"""Public training API: :func:`train` (from the store), :func:`train_arrays`, :func:`rerun`.

:func:`train` reads a dataset's embeddings at pinned table versions (see
:mod:`trainers.loader`), trains one head per seed under the ``paper`` or
``honest`` protocol (:mod:`trainers.protocol`, :mod:`trainers.engine`) and
records every seed in the store's ``runs`` table (:mod:`embedstore.runs`)
with the exact table versions it read. :func:`rerun` re-executes a recorded
run from its record and reproduces its metrics exactly.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(["a", "b"], 100)
>>> x = rng.standard_normal((200, 4)) + (y == "b")[:, None] * 3
>>> res = train_arrays(x, None, y, ["train", "train", "val", "test"] * 50, fusion="image", epochs=5)
>>> res.runs[0].selection["selected_on"], res.mean["accuracy"] > 0.9
('val', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np  # noqa: F401 (used by the module doctest)

from embedstore.errors import InputError
from embedstore.keys import NO_ALIGNMENT
from embedstore.modalities import check_training
from embedstore.runs import RunRecord, get_run, new_run_id, record_run

from .engine import HeadSpec, SeedOutcome, fit_seed, torch_threads
from .environment import capture
from .loader import ArraySource, Source
from .store_source import StoreSource
from .metrics import summarize
from .models import BLOCK_ORDER, FUSIONS
from .protocol import Protocol, resolve_protocol
from .scaling import parse_scale, scaled

#: Every head ``fusion=`` accepts: the MLP heads and the linear probe (:mod:`trainers.linear`).
HEADS = (*FUSIONS, "linear")

#: Metrics averaged over seeds in :attr:`TrainResult.mean` / :attr:`TrainResult.sd`.
SUMMARY_METRICS = ("accuracy", "macro_f1", "roc_auc_ovr", "selected_epoch", "train_s_per_epoch",
                   "infer_s_per_epoch")


@dataclass
class RunResult:
    """One seed: final (test) metrics, selection, cost, history, and its run id."""

    seed: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    selection: dict[str, Any]
    cost: dict[str, Any]
    loader: str
    table_versions: dict[str, int]
    run_id: str | None = None
    events: list[tuple[str, str]] = field(default_factory=list)
    cv: dict[str, Any] | None = None

    def flat(self) -> dict[str, Any]:
        """Headline numbers of this seed, flat (for tables and summaries)."""
        return {"accuracy": self.metrics["accuracy"], "macro_f1": self.metrics["macro_f1"],
                "roc_auc_ovr": self.metrics["roc_auc_ovr"], "selected_epoch": self.selection["selected_epoch"],
                "train_s_per_epoch": self.cost["train_s_per_epoch"],
                "infer_s_per_epoch": self.cost["infer_s_per_epoch"]}


@dataclass
class TrainResult:
    """All seeds of one training call, with mean and sd of the headline metrics."""

    dataset: str
    fusion: str
    mode: str
    runs: list[RunResult]
    group_id: str
    config: dict[str, Any]
    mean: dict[str, float] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    source: Source | None = field(default=None, repr=False)

    @property
    def run_ids(self) -> list[str | None]:
        """Run ids of the recorded seeds (``None`` when not recorded)."""
        return [r.run_id for r in self.runs]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what ``embedstore train --json`` prints)."""
        return {"dataset": self.dataset, "fusion": self.fusion, "mode": self.mode, "group_id": self.group_id,
                "run_ids": self.run_ids, "mean": self.mean, "sd": self.sd, "config": self.config,
                "runs": [{"run_id": r.run_id, "seed": r.seed, "metrics": r.metrics, "selection": r.selection,
                          "cost": r.cost, "loader": r.loader, "table_versions": r.table_versions,
                          **({"cv": r.cv} if r.cv else {})}
                         for r in self.runs]}


def _seeds(seeds: int | Sequence[int], start: int) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise InputError(f"seeds={seeds}: use a positive number of seeds")
        return list(range(start, start + seeds))
    return [int(s) for s in seeds]


def _settings(fusion: str, mode: str, epochs, dropout, batch_size, lr, kw: dict[str, Any]) -> Protocol:
    if fusion not in HEADS:
        raise InputError(f"unknown fusion {fusion!r}: use one of {', '.join(HEADS)}")
    return resolve_protocol(mode, epochs=epochs, dropout=dropout, batch_size=batch_size, lr=lr,
                            weight_decay=kw.pop("weight_decay", None), patience=kw.pop("patience", None))


def _head(fusion: str, n_classes: int, hidden, align_loss_weight: float, kw: dict[str, Any]) -> HeadSpec:
    output_size = kw.pop("output_size", None) or (1 if n_classes <= 2 else n_classes)
    hidden_image = kw.pop("hidden_image", None)
    return HeadSpec(fusion, int(output_size), None if hidden is None else tuple(int(h) for h in hidden),
                    None if hidden_image is None else tuple(int(h) for h in hidden_image),
                    tuple(kw.pop("block_order", BLOCK_ORDER)), float(align_loss_weight or 0.0))


def _check_splits(source: Source, proto: Protocol, where: str) -> None:
    need = ("train", "test") if proto.mode == "paper" else ("train", "val", "test")
    missing = [s for s in need if not source.has_split(s)]
    if missing:
        hint = ("honest mode needs train/val/test: pass a split that has them (e.g. --split grouped) "
                "or use --mode paper") if proto.mode == "honest" else "pass a split with train and test rows"
        raise InputError(f"{where} has no {'/'.join(missing)} rows: {hint}")


def fit_head(source: Source, spec: HeadSpec, proto: Protocol, seed: int, *, progress: bool = False,
             desc: str = "") -> SeedOutcome:
    """One seed of ``spec``'s head: the MLP training loop, or the linear probe's C selection."""
    if spec.fusion == "linear":
        from .linear import fit_linear

        return fit_linear(source, proto, seed)
    return fit_seed(source, spec, proto, seed, progress=progress, desc=desc)


def _scale_of(mode: str, scale) -> dict[str, str]:
    if mode == "paper" and scale is not None and parse_scale(scale) != parse_scale("none"):
        raise InputError("paper mode feeds the paper's raw inputs: drop --scale or use --mode honest")
    return parse_scale("none" if mode == "paper" else scale)


def _run_seeds(source: Source, spec: HeadSpec, proto: Protocol, seeds: list[int], *, dataset: str,
               config: dict[str, Any], store=None, record: bool, progress: bool, group_id: str | None,
               rerun_of: str | None = None) -> TrainResult:
    group_id = group_id or new_run_id().replace("run-", "grp-", 1)
    runs: list[RunResult] = []
    with torch_threads(config.get("threads")):
        env = capture()
        source = scaled(source, config.get("scale"))
        config = {**config, "scaling": getattr(source, "scaling", dict)()}
        for seed in seeds:
            start = len(source.events)
            source.mark(f"seed {seed}")
            out = fit_head(source, spec, proto, seed, progress=progress,
                           desc=f"{dataset} {spec.fusion} seed {seed}")
            runs.append(_finish(out, source, start, spec, proto, dataset, config, env, group_id, rerun_of,
                                store if record else None))
    return summarize_runs(TrainResult(dataset, spec.fusion, proto.mode, runs, group_id, config, source=source))


def summarize_runs(result: TrainResult) -> TrainResult:
    """Fill ``result.mean`` / ``result.sd`` over all its runs (seeds, or folds × seeds)."""
    for name in SUMMARY_METRICS:
        result.mean[name], result.sd[name] = summarize([r.flat()[name] for r in result.runs])
    return result


def _finish(out: SeedOutcome, source: Source, start: int, spec: HeadSpec, proto: Protocol, dataset: str,
            config: dict[str, Any], env: dict[str, Any], group_id: str, rerun_of: str | None, store) -> RunResult:
    res = _result(out, source, start)
    res.cv = config.get("cv")
    if store is not None:
        res.run_id = new_run_id()
        record_run(store, _record(res, out, source, spec, proto, dataset, config, env, group_id, rerun_of))
        from .predict import keep_head

        keep_head(store, out, source, spec, proto, config, res.run_id, group_id, dataset)
    return res


def _result(out: SeedOutcome, source: Source, start: int) -> RunResult:
    versions = dict(getattr(source, "versions", {}) or {})
    metrics = {**out.metrics, "classes": list(source.classes), "selected_epoch": out.selection["selected_epoch"]}
    return RunResult(out.seed, metrics, out.history, out.selection, out.cost, source.path, versions,
                     events=list(source.events[start:]))


def _record(res: RunResult, out: SeedOutcome, source: Source, spec: HeadSpec, proto: Protocol, dataset: str,
            config: dict[str, Any], env: dict[str, Any], group_id: str, rerun_of: str | None) -> RunRecord:
    return RunRecord(
        run_id=res.run_id, group_id=group_id, dataset=dataset, fusion=spec.fusion, mode=proto.mode,
        seed=res.seed, split=config.get("split_column", ""), loader=source.path,
        model_keys=dict(getattr(source, "model_keys", {})), alignment_keys=config.get("alignment_keys", {}),
        table_versions=res.table_versions, config=config, history=res.history,
        metrics={**res.metrics, "selection": res.selection, "cost": res.cost, "loss": out.loss,
                 "loader": source.describe()},
        environment=env, rerun_of=rerun_of)


def _alignments(store, dataset: str, source: StoreSource, proto: Protocol) -> dict[str, dict[str, Any]]:
    """Settings of the alignments read, per modality; honest mode refuses any not fitted on this split's train rows."""
    from embedstore.honest import alignment_summary, check_honest_alignments

    keys = {m: source.alignment_keys[m] for m in source.tables}
    if proto.mode == "honest":
        return check_honest_alignments(store, dataset, source.split_column, keys)
    return {m: alignment_summary(store, k) for m, k in keys.items() if k != NO_ALIGNMENT}


def train(store, dataset: str, *, image_model: str | None = None, text_model: str | None = None,
          fusion: str = "early", mode: str = "honest", split_by: str | None = None, epochs: int | None = None,
          seeds: int | Sequence[int] = 1, hidden: Sequence[int] | None = None, dropout: float | None = None,
          batch_size: int = 64, lr: float | None = None, image_alignment_key: str = NO_ALIGNMENT,
          text_alignment_key: str = NO_ALIGNMENT, alignment_key: str | None = None,
          align_loss_weight: float = 0.0, record: bool = True, progress: bool = False,
          cv: int | None = None, repeats: int = 1, scale: str | dict[str, str] | None = None,
          **kw: Any) -> TrainResult:
    """Train a fusion head on a dataset's stored embeddings, one run per seed.

    Parameters
    ----------
    store : embedstore.Store
    dataset : str
    image_model, text_model : str
        Model id or ``model_key`` (``store.model(ref)`` resolves). Only the
        modalities the head uses are read.
    fusion : {"early", "late", "image", "text", "linear"}
        ``linear`` is the logistic-regression probe (:mod:`trainers.linear`)
        on the modalities whose models are given.
    mode : {"honest", "paper"}
        See :mod:`trainers.protocol`.
    split_by : str, optional
        Split name; default ``paper`` in paper mode, else the store's default
        (``grouped`` when present).
    epochs, dropout, lr : optional
        Override the protocol (30, 0.0, 1e-3).
    seeds : int or list of int
        ``N`` runs seeds ``seed, seed+1, ...`` (``seed=`` in ``kw``, default 0).
    hidden : list of int, optional
        Hidden sizes (late fusion: per branch; ``hidden_image=`` sets the
        image branch separately).
    batch_size : int
    image_alignment_key, text_alignment_key, alignment_key : str
        Which stored vectors to read; ``alignment_key`` sets both. Aligned
        vectors may live in a wider table (``image_dim=``/``text_dim=`` pick
        it when ambiguous). Honest mode refuses an alignment not fitted on
        the training rows of the split it trains on (``fit_on="all"``,
        another split column, other source rows: :mod:`embedstore.honest`).
        Each run's config records the alignments' λ, method and ``fit_on``.
    align_loss_weight : float
        Weight ``w`` of the late-fusion intra-modal alignment loss
        ``w · mean(1 − cos(h_text, h_image))`` (off by default).
    record : bool
        Write each seed to the ``runs`` table.
    progress : bool
        Show a per-epoch progress bar.
    cv : int, optional
        Honest mode: ``K``-fold grouped, stratified cross-validation over
        every labelled row (:mod:`trainers.cv`) instead of the fixed split.
    repeats : int
        Cross-validation repeats, each with new folds (split seeds
        ``cv_seed, cv_seed+1, ...``; ``cv_seed=`` in ``kw``, default 0;
        ``val_fraction=`` in ``kw``, default 0.2).
    scale : str or dict, optional
        Input scaling per modality (:mod:`trainers.scaling`): ``none``,
        ``l2`` or ``standard``, or ``"image=standard,text=l2"``; fitted on
        training rows only and recorded. Default ``standard`` in honest
        mode; paper mode keeps raw inputs.
    **kw
        ``output_size``, ``hidden_image``, ``block_order``, ``weight_decay``,
        ``patience``, ``label_column``, ``loader`` (auto/memory/stream),
        ``versions`` ({table: version} to pin), ``image_dim``, ``text_dim``,
        ``seed``, ``readahead``, ``chunk_rows``, ``group_id``, ``save_heads`` (keep each
        seed's head in the ``heads`` table for ``predict``, default True), ``threads``
        (torch intra-op threads while training, default 1: the heads are
        tiny, and one thread is fastest on a shared CPU and independent of
        the core count; ``None`` keeps torch's setting).

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> res = train(store, "ham10000", image_model="builtin:efficientnet-lite0",  # doctest: +SKIP
    ...             text_model="builtin:minilm-l6", fusion="late", seeds=3)
    >>> res.mean["macro_f1"], res.sd["macro_f1"]  # doctest: +SKIP
    """
    if alignment_key is not None:
        image_alignment_key = text_alignment_key = alignment_key
    kw = dict(kw)
    proto = _settings(fusion, mode, epochs, dropout, batch_size, lr, kw)
    scale = _scale_of(mode, scale)
    uses = {"image": fusion in ("early", "late", "image"), "text": fusion in ("early", "late", "text")}
    if fusion == "linear":
        uses = {"image": bool(image_model), "text": bool(text_model)}
        if not any(uses.values()):
            raise InputError("the linear probe needs --image-model, --text-model or both")
    for modality, ref in (("image", image_model), ("text", text_model)):
        if uses[modality] and not ref:
            raise InputError(f"{fusion} fusion needs --{modality}-model (a model id or model_key)")
    if cv and mode != "honest":
        raise InputError("--cv is honest-mode cross-validation: use --mode honest (paper mode has one split)")
    check_training(store, dataset, fusion, uses)
    split_by = split_by if split_by is not None else ("paper" if mode == "paper" else None)
    source = StoreSource(
        store, dataset, image_model=image_model if uses["image"] else None,
        text_model=text_model if uses["text"] else None, split_by=split_by,
        image_alignment_key=image_alignment_key, text_alignment_key=text_alignment_key,
        image_dim=kw.pop("image_dim", None), text_dim=kw.pop("text_dim", None), versions=kw.pop("versions", None),
        setup_splits=("train", "test") if mode == "paper" else ("train", "val", "test") if cv else ("train", "val"),
        label_column=kw.pop("label_column", "label"), path=kw.pop("loader", "auto"),
        readahead=kw.pop("readahead", 4), chunk_rows=kw.pop("chunk_rows", 4096))
    if not source.classes and not source.has_split("train"):
        raise InputError(f"dataset '{dataset}' has no labelled training rows (a predict-only dataset): train on a "
                         f"labelled dataset, then 'embedstore predict {dataset} --run RUN_ID'")
    if not cv:
        _check_splits(source, proto, f"dataset '{dataset}' split column {source.split_column}")
    alignments = _alignments(store, dataset, source, proto)
    if not cv:
        source.prepare(("train", proto.select_on))
    preset = None
    if mode == "paper":
        from .presets import apply_paper_preset

        preset = apply_paper_preset(store, dataset, kw, source.versions[source.samples_table])
    spec = _head(fusion, len(source.classes), hidden, align_loss_weight, kw)
    seed_list = _seeds(seeds, int(kw.pop("seed", 0)))
    group_id = kw.pop("group_id", None)
    threads = kw.pop("threads", 1)
    save_heads = bool(kw.pop("save_heads", True))
    cv_kw = {"cv_seed": int(kw.pop("cv_seed", 0)), "val_fraction": float(kw.pop("val_fraction", 0.2))}
    if kw:
        raise InputError(f"unknown train options {sorted(kw)}")
    config = {"protocol": proto.to_dict(), "head": spec.to_dict(), "split_column": source.split_column,
              "threads": threads, "scale": scale, "save_heads": save_heads, **({"paper_preset": preset} if preset else {}),
              "label_column": source.label_column, "classes": source.classes,
              "alignment_keys": {m: source.alignment_keys[m] for m in source.tables}, "alignments": alignments,
              "tables": dict(source.tables), "image_dim": source.image_dim, "text_dim": source.text_dim,
              "loader": source.path, "readahead": source.readahead, "chunk_rows": source.chunk_rows}
    if cv:
        from .cv import run_cv, store_folds

        return run_cv(store_folds(source), spec, proto, seed_list, k=int(cv), repeats=int(repeats), **cv_kw,
                      dataset=dataset, config=config, store=store, record=record, progress=progress,
                      group_id=group_id)
    return _run_seeds(source, spec, proto, seed_list, dataset=dataset, config=config, store=store,
                      record=record, progress=progress, group_id=group_id)


def train_arrays(x_image: Any, x_text: Any, y: Sequence[Any], split: Sequence[str], *, fusion: str = "early",
                 mode: str = "honest", epochs: int | None = None, seeds: int | Sequence[int] = 1,
                 hidden: Sequence[int] | None = None, dropout: float | None = None, batch_size: int = 64,
                 lr: float | None = None, align_loss_weight: float = 0.0, classes: Sequence[str] | None = None,
                 store=None, dataset: str = "arrays", record: bool = False, progress: bool = False,
                 cv: int | None = None, groups: Sequence[Any] | None = None, repeats: int = 1,
                 scale: str | dict[str, str] | None = None, **kw: Any) -> TrainResult:
    """Train from in-memory arrays with the same heads, protocols, metrics and records.

    ``split`` holds ``train``/``test`` (paper) or ``train``/``val``/``test``
    (honest) per row; ``x_image``/``x_text`` may be ``None`` when the head
    does not use them. With ``cv=K`` the split is ignored (pass ``None``)
    and ``groups`` (one group id per row; default: each row its own group)
    drive grouped cross-validation as in :func:`train`; ``scale`` as there.
    With ``store`` and ``record=True`` each seed is written to the ``runs``
    table (``table_versions`` empty; put provenance in ``kw["provenance"]``,
    stored in the config).
    """
    kw = dict(kw)
    proto = _settings(fusion, mode, epochs, dropout, batch_size, lr, kw)
    scale = _scale_of(mode, scale)
    if cv and mode != "honest":
        raise InputError("cv is honest-mode cross-validation: use mode='honest'")
    source = ArraySource(x_image, x_text, y, ["train"] * len(y) if cv else split, classes)
    if not cv:
        _check_splits(source, proto, "the split array")
    spec = _head(fusion, len(source.classes), hidden, align_loss_weight, kw)
    seed_list = _seeds(seeds, int(kw.pop("seed", 0)))
    group_id = kw.pop("group_id", None)
    cv_kw = {"cv_seed": int(kw.pop("cv_seed", 0)), "val_fraction": float(kw.pop("val_fraction", 0.2))}
    config = {"protocol": proto.to_dict(), "head": spec.to_dict(), "classes": source.classes, "scale": scale,
              "loader": source.path, "provenance": kw.pop("provenance", None), "threads": kw.pop("threads", 1)}
    if kw:
        raise InputError(f"unknown train options {sorted(kw)}")
    if cv:
        from .cv import array_folds, run_cv

        folds = array_folds(x_image, x_text, source.labels("train"),
                            np.arange(len(y)) if groups is None else groups, source.classes)
        return run_cv(folds, spec, proto, seed_list, k=int(cv), repeats=int(repeats), **cv_kw, dataset=dataset,
                      config=config, store=store, record=record, progress=progress, group_id=group_id)
    return _run_seeds(source, spec, proto, seed_list, dataset=dataset, config=config, store=store,
                      record=record, progress=progress, group_id=group_id)


def rerun(store, run_id: str, *, record: bool = False, loader: str | None = None) -> RunResult:
    """Re-execute run ``run_id`` from its record, reading the same pinned table versions.

    With the same seed on the same machine the final metrics are identical
    (``loader`` may switch between ``memory`` and ``stream``: both yield the
    same batches). With ``record=True`` the rerun is recorded with
    ``rerun_of`` set.

    Examples
    --------
    >>> first = train(store, "toy", image_model="m", text_model="t").runs[0]  # doctest: +SKIP
    >>> rerun(store, first.run_id).metrics == first.metrics  # doctest: +SKIP
    True
    """
    rec = get_run(store, run_id)
    if rec.kind != "fusion" or "tables" not in rec.config:
        raise InputError(f"run '{run_id}' is a {rec.kind} run without store tables; it cannot be re-run here")
    cfg = rec.config
    if cfg.get("cv"):
        raise InputError(f"run '{run_id}' is one fold of a cross-validation: re-run the setting with train --cv")
    proto = Protocol(**cfg["protocol"])
    head = cfg["head"]
    spec = HeadSpec(head["fusion"], int(head["output_size"]),
                    None if head["hidden"] is None else tuple(head["hidden"]),
                    None if head["hidden_image"] is None else tuple(head["hidden_image"]),
                    tuple(head["block_order"]), float(head["align_loss_weight"]))
    tables = cfg["tables"]
    source = StoreSource(
        store, rec.dataset, image_model=rec.model_keys.get("image"), text_model=rec.model_keys.get("text"),
        split_by=cfg["split_column"], image_alignment_key=cfg["alignment_keys"].get("image", NO_ALIGNMENT),
        text_alignment_key=cfg["alignment_keys"].get("text", NO_ALIGNMENT),
        image_dim=cfg["image_dim"] if "image" in tables else None,
        text_dim=cfg["text_dim"] if "text" in tables else None, versions=rec.table_versions,
        setup_splits=("train", "test") if proto.mode == "paper" else ("train", "val"),
        label_column=cfg["label_column"], path=loader or rec.loader,
        readahead=cfg.get("readahead", 4), chunk_rows=cfg.get("chunk_rows", 4096))
    source.prepare(("train", proto.select_on))
    result = _run_seeds(source, spec, proto, [rec.seed], dataset=rec.dataset, config=cfg, store=store,
                        record=record, progress=False, group_id=None, rerun_of=run_id)
    return result.runs[0]
