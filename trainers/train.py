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
('inner-cv', True)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np  # noqa: F401 (used by the module doctest)

from embedstore.errors import InputError
from embedstore.keys import NO_ALIGNMENT
from embedstore.modalities import check_training
from embedstore.runs import get_run

from .loader import ArraySource
from .options import CVOptions, HeadOptions, LoaderOptions, SelectOptions, grouped
from .protocol import Protocol
from .cv import AUTO_CV_K, AUTO_CV_MAX_SAMPLES, auto_cv  # noqa: F401 (cv="auto")
from .honest_runs import run_split, split_runner
from .seed_runs import (HEADS, RunResult, TrainResult, check_splits, protocol_from, resume_seeds, run_seeds,  # noqa: F401
                        scale_of, seeds_from, summarize_runs)
from .store_source import StoreSource
from .trainable import check_labels, store_labels


def _alignments(store, dataset: str, source: StoreSource, proto: Protocol) -> dict[str, dict[str, Any]]:
    """Settings of the alignments read, per modality; honest mode refuses any not fitted on this split's train rows."""
    from embedstore.honest import alignment_summary, check_honest_alignments

    keys = {m: source.alignment_keys[m] for m in source.tables}
    if proto.rules.audits_alignments:
        return check_honest_alignments(store, dataset, source.split_column, keys)
    return {m: alignment_summary(store, k) for m, k in keys.items() if k != NO_ALIGNMENT}


def _cv_options(proto: Protocol, cv: int | CVOptions | None, repeats: int, cv_seed: int, val_fraction: float,
                refusal: str) -> CVOptions | None:
    """The cross-validation of a call (``cv=K`` with the flat keywords, or a :class:`CVOptions`), if any.

    ``refusal`` is the message when the protocol does not cross-validate.
    """
    if not cv:
        return None
    if not proto.rules.cross_validation:
        raise InputError(refusal)
    if isinstance(cv, CVOptions):
        return grouped(CVOptions, cv, repeats=repeats, cv_seed=cv_seed, val_fraction=val_fraction)
    if isinstance(cv, str):
        raise InputError(f"cv={cv!r}: use an integer K >= 2, 'auto' or None")
    return CVOptions(int(cv), int(repeats), int(cv_seed), float(val_fraction))


def _cv_kw(folds: CVOptions | None, val_fraction: float) -> dict[str, Any]:
    """The cross-validation settings :func:`~embedstore.trainers.trainable.check_labels` checks the labels against."""
    if folds is None:
        return {"val_fraction": val_fraction}
    return {"cv": folds.k, "repeats": folds.repeats, "cv_seed": folds.cv_seed, "val_fraction": folds.val_fraction}


def _selection(select_on: str, inner_k: int, search, selection: SelectOptions | None,
               fixed: dict[str, Any]) -> SelectOptions:
    """The :class:`SelectOptions` of a call, with the MLP search less the settings given explicitly."""
    from .select import SELECT_ON, search_of

    sel = grouped(SelectOptions, selection, on=select_on, inner_k=inner_k, search=search)
    if sel.on not in SELECT_ON:
        raise InputError(f"select_on={sel.on!r}: use 'inner' (inner grouped CV of the training rows) or 'val'")
    if int(sel.inner_k) < 2:
        raise InputError(f"inner_k={sel.inner_k}: use 2 or more inner folds")
    return replace(sel, search=search_of(sel.search, fixed))


def train(store, dataset: str, *, image_model: str | None = None, text_model: str | None = None,
          fusion: str = "early", mode: str = "honest", split_by: str | None = None, epochs: int | None = None,
          seeds: int | Sequence[int] = 1, seed: int = 0, hidden: Sequence[int] | None = None,
          dropout: float | None = None, batch_size: int = 64, lr: float | None = None,
          weight_decay: float | None = None, patience: int | None = None,
          image_alignment_key: str = NO_ALIGNMENT, text_alignment_key: str = NO_ALIGNMENT,
          alignment_key: str | None = None, align_loss_weight: float = 0.0, record: bool = True,
          progress: bool = False, cv: int | CVOptions | None = None, repeats: int = 1, cv_seed: int = 0,
          val_fraction: float = 0.2, scale: str | dict[str, str] | None = None,
          output_size: int | None = None, hidden_image: Sequence[int] | None = None,
          block_order: Sequence[str] | None = None, label_column: str = "label", loader: str = "auto",
          versions: dict[str, int] | None = None, image_dim: int | None = None, text_dim: int | None = None,
          readahead: int = 4, chunk_rows: int = 4096, threads: int | None = 1, group_id: str | None = None,
          save_heads: bool | None = None, head: HeadOptions | None = None,
          loading: LoaderOptions | None = None, resume: bool = False, select_on: str = "inner",
          inner_k: int = 3, search: dict[str, Sequence] | None = None, selection: SelectOptions | None = None,
          baseline: bool = True) -> TrainResult:
    """Train a fusion head on a dataset's stored embeddings, one run per seed.

    Options come flat (as below) or grouped: ``head=`` a
    :class:`~embedstore.trainers.options.HeadOptions` (``hidden``,
    ``hidden_image``, ``output_size``, ``block_order``, ``align_loss_weight``),
    ``loading=`` a :class:`~embedstore.trainers.options.LoaderOptions`
    (``loader``, ``readahead``, ``chunk_rows``, ``label_column``, ``versions``,
    ``image_dim``, ``text_dim``, ``threads``), ``cv=`` a
    :class:`~embedstore.trainers.options.CVOptions`; a group and its flat
    keywords together are refused.

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
        See :mod:`embedstore.trainers.protocol` and :mod:`embedstore.modes`.
    split_by : str, optional
        Split name; default ``paper`` in paper mode, else the store's default
        (``grouped`` when present).
    epochs, dropout, lr, weight_decay, patience : optional
        Override the protocol (30, 0.0, 1e-3, 0.01, 10 in honest mode).
    seeds : int or list of int
        ``N`` runs seeds ``seed, seed+1, ...``.
    seed : int
        First seed when ``seeds`` is a count.
    hidden, hidden_image, output_size, block_order, align_loss_weight
        The head (:class:`~embedstore.trainers.options.HeadOptions`): hidden
        sizes (late fusion: per branch; ``hidden_image`` sets the image branch
        separately), logits (default 1 for two classes, else one per class),
        layer order, and the weight ``w`` of the late-fusion intra-modal
        alignment loss ``w · mean(1 − cos(h_text, h_image))`` (off by default).
    batch_size : int
    image_alignment_key, text_alignment_key, alignment_key : str
        Which stored vectors to read; ``alignment_key`` sets both. Aligned
        vectors may live in a wider table (``image_dim``/``text_dim`` pick
        it when ambiguous). Honest mode refuses an alignment not fitted on
        the training rows of the split it trains on (``fit_on="all"``,
        another split column, other source rows: :mod:`embedstore.honest`).
        Each run's config records the alignments' λ, method and ``fit_on``.
    record : bool
        Write each seed to the ``runs`` table.
    progress : bool
        Show a per-epoch progress bar.
    cv, repeats, cv_seed, val_fraction
        Honest mode: ``K``-fold grouped, stratified cross-validation over
        every labelled row (:mod:`embedstore.trainers.cv`) instead of the
        fixed split, ``repeats`` times with new folds (split seeds
        ``cv_seed, cv_seed+1, ...``), ``val_fraction`` of each training fold
        held out as its validation part (used with ``select_on="val"``).
        ``cv="auto"`` (what ``embedstore train`` does by default) is
        grouped 5-fold CV on datasets of at most
        :data:`AUTO_CV_MAX_SAMPLES` labelled samples when no ``split_by`` is
        named, else the single split (:func:`auto_cv`).
    select_on, inner_k, search, selection
        Honest heads choose their settings on the training rows of the split
        or fold, then are refitted on all of them
        (:mod:`embedstore.trainers.select`): ``select_on="inner"`` (default)
        scores every candidate by inner grouped ``inner_k``-fold CV,
        ``"val"`` on the validation part. ``search`` lists MLP settings to
        try (default :data:`embedstore.trainers.select.MLP_SEARCH`; the epoch
        is always chosen; ``dropout=``, ``weight_decay=``, ``lr=``,
        ``hidden=`` given explicitly are fixed instead). Or pass a
        :class:`~embedstore.trainers.options.SelectOptions` as ``selection=``.
    baseline : bool
        Honest mode: fit the independent scikit-learn baseline
        (:mod:`embedstore.trainers.baseline`) on the same rows and record
        its test predictions with every run (``metrics["baseline"]``).
    scale : str or dict, optional
        Input scaling per modality (:mod:`embedstore.trainers.scaling`): ``none``,
        ``l2`` or ``standard``, or ``"image=standard,text=l2"``; fitted on
        training rows only and recorded. Default ``standard`` in honest
        mode; paper mode keeps raw inputs.
    label_column, loader, versions, image_dim, text_dim, readahead, chunk_rows, threads
        Reading (:class:`~embedstore.trainers.options.LoaderOptions`):
        ``loader`` auto/memory/stream, ``versions`` ({table: version} to
        pin), torch intra-op ``threads`` while training (default 1: the heads
        are tiny, and one thread is fastest on a shared CPU and independent
        of the core count; ``None`` keeps torch's setting).
    group_id : str, optional
        Record the seeds under this group (default: a new ``grp-`` id).
    save_heads : bool, optional
        Keep each seed's head in the ``heads`` table for ``predict``. Default
        (``None``): kept for a single split and for the folds ``cv="auto"``
        chose (a plain ``train`` leaves heads to predict with), not for the
        folds of an explicit ``cv=K`` (scikit-learn's ``cross_validate``
        keeps fold estimators only when asked: ``save_heads=True``);
        ``False``: never.
    resume : bool
        With ``group_id=``: reuse the seeds of that group already recorded
        (same setting and table versions) and train only the missing ones, so
        an interrupted many-seed run completes on re-run (the seed cache the
        sweep and the demo use).

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
    head = grouped(HeadOptions, head, hidden=hidden, hidden_image=hidden_image, output_size=output_size,
                   block_order=block_order, align_loss_weight=align_loss_weight)
    loading = grouped(LoaderOptions, loading, loader=loader, readahead=readahead, chunk_rows=chunk_rows,
                      label_column=label_column, versions=versions, image_dim=image_dim, text_dim=text_dim,
                      threads=threads)
    proto = protocol_from(fusion, mode, epochs, dropout, batch_size, lr, weight_decay, patience)
    scale = scale_of(mode, scale)
    select = _selection(select_on, inner_k, search, selection,
                        {"dropout": dropout, "weight_decay": weight_decay, "lr": lr, "hidden": head.hidden})
    uses = {"image": fusion in ("early", "late", "image"), "text": fusion in ("early", "late", "text")}
    if fusion == "linear":
        uses = {"image": bool(image_model), "text": bool(text_model)}
        if not any(uses.values()):
            raise InputError("the linear probe needs image_model=, text_model= or both")
    for modality, ref in (("image", image_model), ("text", text_model)):
        if uses[modality] and not ref:
            raise InputError(f"{fusion} fusion needs {modality}_model= (a model id or model_key)")
    check_training(store, dataset, fusion, uses)
    if isinstance(cv, str) and cv == "auto":
        labels = store.dataset(dataset).samples(columns=[loading.label_column]).to_arrow()[loading.label_column]
        cv = auto_cv(len(labels) - labels.null_count, mode, split_by)
        if save_heads is None:  # a plain train leaves heads to predict with, whichever protocol it chose
            save_heads = True
    folds = _cv_options(proto, cv, repeats, cv_seed, val_fraction,
                        "cv= is honest-mode cross-validation: use mode='honest' (paper mode has one split)")
    source = StoreSource.open(store, dataset, image_model=image_model if uses["image"] else None,
                              text_model=text_model if uses["text"] else None,
                              split_by=split_by if split_by is not None else proto.default_split,
                              alignment_keys={"image": image_alignment_key, "text": text_alignment_key},
                              options=loading, setup_splits=proto.setup_splits(cv=folds is not None))
    if not source.classes and not source.has_split("train"):
        raise InputError(f"dataset '{dataset}' has no labelled training rows (a predict-only dataset): train on a "
                         f"labelled dataset, then embedstore.trainers.predict(store, '{dataset}', run_id=RUN_ID)")
    check_labels(*store_labels(source), mode=proto.mode, where=f"dataset '{dataset}' split column "
                 f"{source.split_column}", splits=proto.splits, computed_split=source.split_column == "split_grouped",
                 **_cv_kw(folds, val_fraction))
    if folds is None:
        check_splits(source, proto, f"dataset '{dataset}' split column {source.split_column}")
    alignments = _alignments(store, dataset, source, proto)
    if folds is None and not proto.rules.tests_once:  # honest heads read through the folds (select.py)
        source.prepare(proto.setup_splits())
    preset = None
    if proto.rules.presets:
        from .presets import apply_paper_preset

        options = {"output_size": head.output_size} if head.output_size is not None else {}
        preset = apply_paper_preset(store, dataset, options, source.versions[source.samples_table])
        head = replace(head, output_size=options.get("output_size"))
    spec = head.spec(fusion, len(source.classes))
    seed_list = seeds_from(seeds, int(seed))
    config = {"protocol": proto.to_dict(), "head": spec.to_dict(), "split_column": source.split_column,
              "threads": loading.threads, "scale": scale, "save_heads": save_heads,
              **({"selection": select.to_dict()} if proto.rules.tests_once else {}),
              **({"paper_preset": preset} if preset else {}),
              "label_column": source.label_column, "classes": source.classes,
              "alignment_keys": {m: source.alignment_keys[m] for m in source.tables}, "alignments": alignments,
              "tables": dict(source.tables), "image_dim": source.image_dim, "text_dim": source.text_dim,
              "loader": source.path, "readahead": source.readahead, "chunk_rows": source.chunk_rows}
    if resume and (not group_id or not record or folds is not None):
        raise InputError("resume=True reuses the recorded seeds of one group: pass group_id= and record=True "
                         "(cross-validation runs are not resumed)")
    try:
        if folds is not None:
            from .cv import run_cv, store_folds

            return run_cv(store_folds(source), spec, proto, seed_list, k=folds.k, repeats=folds.repeats,
                          cv_seed=folds.cv_seed, val_fraction=folds.val_fraction, dataset=dataset, config=config,
                          store=store, record=record, progress=progress, group_id=group_id, select=select,
                          baseline=baseline)
        run = split_runner(select, baseline)
        if resume:
            return resume_seeds(store, source, spec, proto, seed_list, dataset=dataset, config=config,
                                group_id=group_id, progress=progress, run=run)
        return run(source, spec, proto, seed_list, dataset=dataset, config=config, store=store, record=record,
                   progress=progress, group_id=group_id)
    finally:  # the versions read are recorded in the runs; the read's lease ends with the training
        source.snapshot.lease.release()


def train_arrays(x_image: Any, x_text: Any, y: Sequence[Any], split: Sequence[str] | None, *,
                 fusion: str = "early", mode: str = "honest", epochs: int | None = None,
                 seeds: int | Sequence[int] = 1, seed: int = 0, hidden: Sequence[int] | None = None,
                 dropout: float | None = None, batch_size: int = 64, lr: float | None = None,
                 weight_decay: float | None = None, patience: int | None = None, align_loss_weight: float = 0.0,
                 output_size: int | None = None, hidden_image: Sequence[int] | None = None,
                 block_order: Sequence[str] | None = None, classes: Sequence[str] | None = None,
                 store=None, dataset: str = "arrays", record: bool = False, progress: bool = False,
                 cv: int | CVOptions | None = None, groups: Sequence[Any] | None = None, repeats: int = 1,
                 cv_seed: int = 0, val_fraction: float = 0.2, scale: str | dict[str, str] | None = None,
                 threads: int | None = 1, group_id: str | None = None, provenance: Any = None,
                 head: HeadOptions | None = None, select_on: str = "inner", inner_k: int = 3,
                 search: dict[str, Sequence] | None = None, selection: SelectOptions | None = None,
                 baseline: bool = True) -> TrainResult:
    """Train from in-memory arrays with the same heads, protocols, metrics and records.

    ``split`` holds ``train``/``test`` (paper) or ``train``/``val``/``test``
    (honest) per row; ``x_image``/``x_text`` may be ``None`` when the head
    does not use them. With ``cv=K`` (or a :class:`~embedstore.trainers.options.CVOptions`)
    the split is ignored (pass ``None``) and ``groups`` (one group id per
    row; default: each row its own group) drive grouped cross-validation as
    in :func:`train` (and the inner selection folds on a split); the head,
    protocol, selection, baseline and ``scale`` options as there.
    With ``store`` and ``record=True`` each seed is written to the ``runs``
    table (``table_versions`` empty; ``provenance`` is stored in the config).
    """
    head = grouped(HeadOptions, head, hidden=hidden, hidden_image=hidden_image, output_size=output_size,
                   block_order=block_order, align_loss_weight=align_loss_weight)
    proto = protocol_from(fusion, mode, epochs, dropout, batch_size, lr, weight_decay, patience)
    scale = scale_of(mode, scale)
    select = _selection(select_on, inner_k, search, selection,
                        {"dropout": dropout, "weight_decay": weight_decay, "lr": lr, "hidden": head.hidden})
    folds = _cv_options(proto, cv, repeats, cv_seed, val_fraction,
                        "cv is honest-mode cross-validation: use mode='honest'")
    source = ArraySource(x_image, x_text, y, ["train"] * len(y) if folds else split, classes)
    check_labels(y, split, groups, mode=proto.mode, where="the arrays", splits=proto.splits,
                 **_cv_kw(folds, val_fraction))
    if folds is None:
        check_splits(source, proto, "the split array")
    spec = head.spec(fusion, len(source.classes))
    seed_list = seeds_from(seeds, int(seed))
    config = {"protocol": proto.to_dict(), "head": spec.to_dict(), "classes": source.classes, "scale": scale,
              "loader": source.path, "provenance": provenance, "threads": threads,
              **({"selection": select.to_dict()} if proto.rules.tests_once else {})}
    if folds is not None:
        from .cv import array_folds, run_cv

        parts = array_folds(x_image, x_text, source.labels("train"),
                            np.arange(len(y)) if groups is None else groups, source.classes)
        return run_cv(parts, spec, proto, seed_list, k=folds.k, repeats=folds.repeats, cv_seed=folds.cv_seed,
                      val_fraction=folds.val_fraction, dataset=dataset, config=config, store=store, record=record,
                      progress=progress, group_id=group_id, select=select, baseline=baseline)
    if not proto.rules.tests_once:
        return run_seeds(source, spec, proto, seed_list, dataset=dataset, config=config, store=store,
                         record=record, progress=progress, group_id=group_id)
    from .cv import array_split

    return run_split(source, spec, proto, seed_list, dataset=dataset, config=config, store=store, record=record,
                     progress=progress, group_id=group_id, select=select, baseline=baseline,
                     parts=array_split(source, groups), threads=threads)


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
        raise InputError(f"run '{run_id}' is one fold of a cross-validation: re-run the setting with "
                         "embedstore.trainers.train(..., cv=K)")
    proto = Protocol(**cfg["protocol"])
    if proto.rules.tests_once and cfg.get("selection") is None:
        raise InputError(f"run '{run_id}' was trained before honest heads were refitted (selection on the "
                         "validation part, no refit): train the setting again with embedstore.trainers.train")
    head = cfg["head"]
    spec = HeadOptions(head["hidden"], head["hidden_image"], int(head["output_size"]), tuple(head["block_order"]),
                       float(head["align_loss_weight"])).spec(head["fusion"], 0)
    keys = cfg["alignment_keys"]
    source = StoreSource.open(store, rec.dataset, image_model=rec.model_keys.get("image"),
                              text_model=rec.model_keys.get("text"), split_by=cfg["split_column"],
                              alignment_keys={m: keys.get(m, NO_ALIGNMENT) for m in ("image", "text")},
                              options=LoaderOptions.from_config(cfg, rec.table_versions, loader or rec.loader),
                              setup_splits=proto.setup_splits())
    select = None
    if cfg.get("selection") is not None:
        sel = cfg["selection"]
        select = SelectOptions(sel["on"], int(sel["inner_k"]),
                               None if sel["search"] is None else {k: tuple(tuple(v) if isinstance(v, list) else v
                                                                            for v in vs)
                                                                   for k, vs in sel["search"].items()})
    else:
        source.prepare(proto.setup_splits())
    config = {k: v for k, v in cfg.items() if k not in ("scaling",)}
    result = run_split(source, spec, proto, [rec.seed], dataset=rec.dataset, config=config, store=store,
                       record=record, progress=False, group_id=None, rerun_of=run_id, select=select,
                       baseline="baseline" in rec.metrics)
    return result.runs[0]
