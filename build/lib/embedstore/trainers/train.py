"""Public training API: :func:`train` (from the store), :func:`train_arrays`, :func:`rerun`.

:func:`train` reads a dataset's embeddings at pinned table versions (see
:mod:`embedstore.trainers.loader`), trains one head per seed under the ``paper`` or
``honest`` protocol (:mod:`embedstore.trainers.protocol`, :mod:`embedstore.trainers.fit_loop`) and
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

from typing import Any, Sequence

import numpy as np  # noqa: F401 (used by the module doctest)

from embedstore.errors import InputError
from embedstore.keys import NO_ALIGNMENT
from embedstore.modalities import check_training
from embedstore.runs import get_run

from .fit_loop import HeadSpec
from .loader import ArraySource
from .store_source import StoreSource
from .protocol import Protocol
from .seed_runs import (HEADS, RunResult, TrainResult, check_splits, head_spec, protocol_from, run_seeds,  # noqa: F401
                        scale_of, seeds_from, summarize_runs)



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
        ``linear`` is the logistic-regression probe (:mod:`embedstore.trainers.linear`)
        on the modalities whose models are given.
    mode : {"honest", "paper"}
        See :mod:`embedstore.trainers.protocol`.
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
        every labelled row (:mod:`embedstore.trainers.cv`) instead of the fixed split.
    repeats : int
        Cross-validation repeats, each with new folds (split seeds
        ``cv_seed, cv_seed+1, ...``; ``cv_seed=`` in ``kw``, default 0;
        ``val_fraction=`` in ``kw``, default 0.2).
    scale : str or dict, optional
        Input scaling per modality (:mod:`embedstore.trainers.scaling`): ``none``,
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
    proto = protocol_from(fusion, mode, epochs, dropout, batch_size, lr, kw)
    scale = scale_of(mode, scale)
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
        check_splits(source, proto, f"dataset '{dataset}' split column {source.split_column}")
    alignments = _alignments(store, dataset, source, proto)
    if not cv:
        source.prepare(("train", proto.select_on))
    preset = None
    if mode == "paper":
        from .presets import apply_paper_preset

        preset = apply_paper_preset(store, dataset, kw, source.versions[source.samples_table])
    spec = head_spec(fusion, len(source.classes), hidden, align_loss_weight, kw)
    seed_list = seeds_from(seeds, int(kw.pop("seed", 0)))
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
    return run_seeds(source, spec, proto, seed_list, dataset=dataset, config=config, store=store,
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
    proto = protocol_from(fusion, mode, epochs, dropout, batch_size, lr, kw)
    scale = scale_of(mode, scale)
    if cv and mode != "honest":
        raise InputError("cv is honest-mode cross-validation: use mode='honest'")
    source = ArraySource(x_image, x_text, y, ["train"] * len(y) if cv else split, classes)
    if not cv:
        check_splits(source, proto, "the split array")
    spec = head_spec(fusion, len(source.classes), hidden, align_loss_weight, kw)
    seed_list = seeds_from(seeds, int(kw.pop("seed", 0)))
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
    return run_seeds(source, spec, proto, seed_list, dataset=dataset, config=config, store=store,
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
    result = run_seeds(source, spec, proto, [rec.seed], dataset=rec.dataset, config=cfg, store=store,
                        record=record, progress=False, group_id=None, rerun_of=run_id)
    return result.runs[0]
