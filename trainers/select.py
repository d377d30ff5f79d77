"""Honest heads: choose on the training rows, then refit on all of them (scikit-learn's ``refit=True``).

Every honest head (the MLP heads and the linear probe) is fitted in two steps
on the **training rows** of its split or fold (every row that is not test:
the split's train and val parts, or the other folds):

1. **Selection.** By default an inner grouped, stratified ``k``-fold
   cross-validation of the training rows (:func:`inner_splits`; ``k=3``, no
   group on both sides), or the given validation part when asked
   (``select_on="val"``). Input scaling is fitted on each inner training part
   only. The MLP heads train every configuration of their search
   (:data:`MLP_SEARCH`, e.g. dropout) on every inner part in lockstep and
   score each epoch on the inner validation parts; the configuration and
   epoch with the best **mean** validation macro-F1 win (first maximum;
   a configuration stops ``patience`` epochs after its best mean). The
   linear probe walks :data:`embedstore.trainers.linear.C_SEARCH` the same way
   (a warm-started path per inner part).
2. **Refit.** The chosen configuration is trained again on all training
   rows (scaling refitted on them) for the chosen number of epochs (or at
   the chosen ``C``); the source is marked ``selected`` and the test rows
   are read and scored once.

The run's ``selection`` records what was searched, every candidate's mean
inner score, what was chosen, and the rows of each step, so a reviewer
can see the choice was made without the test rows.

Examples
--------
>>> y = np.array(["a", "b"] * 15)
>>> splits = inner_splits(y, np.arange(30).astype(str), np.arange(30), k=3, seed=0)
>>> [len(v) for _, v in splits], sorted(np.concatenate([v for _, v in splits]).tolist()) == list(range(30))
([10, 10, 10], True)
>>> [c["dropout"] for c, _, _ in candidates(HeadSpec("early", 2), resolve_protocol("honest"), {"dropout": (0.0, 0.5)})]
[0.0, 0.5]
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from embedstore.errors import InputError

from .fit_loop import HeadSpec, SeedOutcome, _train_epoch, cost_summary, predict
from .loader import Source
from .options import SelectOptions
from .metrics import classification_metrics, predictions, quick_scores
from .models import build_model, count_params, model_mib
from .protocol import Protocol, TaskLoss, resolve_protocol  # noqa: F401 (resolve_protocol: the doctest)
from .scaling import scaled

#: Selection methods: inner grouped K-fold CV of the training rows, or the given validation part.
SELECT_ON = ("inner", "val")
#: Inner folds of the selection (each scores about a third of the training rows).
INNER_K = 3
#: What the MLP heads search by default (keys: ``dropout``, ``weight_decay``, ``lr``, ``hidden``); the
#: epoch is always chosen. Chosen on ham10000-dev1000 (benchmarks/results/honest.md, "MLP recipe").
MLP_SEARCH: dict[str, tuple] = {"dropout": (0.0, 0.5)}
SEARCH_KEYS = ("dropout", "weight_decay", "lr", "hidden")


def search_of(search: Mapping[str, Sequence] | None, fixed: Mapping[str, Any]) -> dict[str, tuple]:
    """The MLP search of a call: ``search`` (default :data:`MLP_SEARCH`) without the settings the caller fixed.

    Examples
    --------
    >>> search_of(None, {"dropout": 0.2})
    {}
    >>> search_of({"weight_decay": [0.01, 0.1]}, {})
    {'weight_decay': (0.01, 0.1)}
    """
    grid = dict(MLP_SEARCH if search is None else search)
    unknown = sorted(set(grid) - set(SEARCH_KEYS))
    if unknown:
        raise InputError(f"search={dict(grid)}: unknown settings {unknown}; use {', '.join(SEARCH_KEYS)}")
    out = {}
    for key, values in grid.items():
        if fixed.get(key) is not None:
            continue
        values = tuple(tuple(int(h) for h in v) if key == "hidden" else float(v) for v in values)
        if not values:
            raise InputError(f"search={dict(grid)}: {key} has no value to try")
        out[key] = values
    return out


def inner_splits(y: np.ndarray, groups: np.ndarray, rows: np.ndarray, k: int,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` grouped, stratified ``(fit, val)`` parts of ``rows`` (absolute row indices)."""
    from sklearn.model_selection import StratifiedGroupKFold

    rows = np.asarray(rows)
    g = np.asarray(groups).astype(str)[rows]
    n_groups = len(np.unique(g))
    if n_groups < k:
        raise InputError(f"inner selection: {n_groups} training groups cannot make {k} inner folds; "
                         "use select_on='val' or more data")
    with warnings.catch_warnings():  # a class rarer than k: still grouped
        warnings.simplefilter("ignore", UserWarning)
        cv = StratifiedGroupKFold(k, shuffle=True, random_state=int(seed))
        return [(rows[a], rows[b]) for a, b in cv.split(np.zeros(len(rows)), np.asarray(y)[rows].astype(str), g)]


def candidates(spec: HeadSpec, proto: Protocol, search: Mapping[str, tuple]) -> list[tuple[dict, HeadSpec, Protocol]]:
    """Every configuration of ``search``: ``(settings, spec, protocol)`` in grid order."""
    keys = sorted(search)
    out = []
    for values in itertools.product(*(search[k] for k in keys)) if keys else [()]:
        cfg = dict(zip(keys, values))
        s = replace(spec, hidden=cfg["hidden"]) if "hidden" in cfg else spec
        p = replace(proto, **{k: v for k, v in cfg.items() if k != "hidden"})
        shown = {"dropout": p.dropout, "weight_decay": p.weight_decay, "lr": p.lr,
                 "hidden": list(s.hidden) if s.hidden is not None else None, **{k: cfg[k] for k in keys}}
        out.append(({k: (list(v) if isinstance(v, tuple) else v) for k, v in shown.items()}, s, p))
    return out


class MemoryParts(Source):
    """The scaled train / val parts of one inner split, held in memory (so every inner split trains in lockstep).

    Batches are index slices of an epoch order, exactly as
    :class:`~embedstore.trainers.loader.ArraySource` serves them.
    """

    def __init__(self, source: Source, parts: Sequence[str]) -> None:
        super().__init__()
        self.classes, self.image_dim, self.text_dim = source.classes, source.image_dim, source.text_dim
        self._data = {}
        for part in parts:
            xs = list(zip(*source.batches(part, 1 << 16, None)))
            self._data[part] = tuple(None if x[0] is None else torch.cat(x) for x in xs[:2]) + (torch.cat(xs[2]),)

    def has_split(self, split: str) -> bool:
        return split in self._data

    def labels(self, split: str) -> np.ndarray:
        return self._data[split][2].numpy()

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None):
        from .loader import _slices, epoch_order

        xi, xt, y = self._data[split]
        return _slices(xi, xt, y, epoch_order(len(y), generator), batch_size)


class HeadTrainer:
    """One MLP head being trained on ``source``'s train part, an epoch at a time (model seed ``seed``)."""

    def __init__(self, source: Source, spec: HeadSpec, proto: Protocol, seed: int) -> None:
        self.source, self.proto = source, proto
        self.n_classes = max(len(source.classes), 2)
        torch.manual_seed(seed)
        self.model = build_model(spec.fusion, image_dim=source.image_dim, text_dim=source.text_dim,
                                 output_size=spec.output_size, hidden=spec.hidden, dropout=proto.dropout,
                                 block_order=spec.block_order, hidden_image=spec.hidden_image)
        self.align_w = float(spec.align_loss_weight or 0.0)
        if self.align_w and spec.fusion != "late":
            raise InputError("align_loss_weight acts on the late-fusion branch outputs: use fusion='late'")
        self.loss_fn = TaskLoss(proto.mode, spec.output_size, source.labels("train"), self.n_classes)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=proto.lr, weight_decay=proto.weight_decay)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.history: list[dict[str, Any]] = []

    def epoch(self) -> dict[str, Any]:
        """Train one epoch; its history row."""
        t0 = time.perf_counter()
        loss = _train_epoch(self.model, self.source, self.proto, self.loss_fn, self.opt, self.gen, self.align_w)
        self.history.append({"epoch": len(self.history) + 1, "train_loss": loss,
                             "train_s": time.perf_counter() - t0, "infer_s": 0.0, "split": "train"})
        return self.history[-1]

    def score(self, part: str) -> dict[str, float]:
        """Accuracy and macro-F1 on ``part`` now (timed into the last history row)."""
        t0 = time.perf_counter()
        logits, y = predict(self.model, self.source, part, self.proto.batch_size)
        out = quick_scores(y, logits, self.n_classes)
        self.history[-1].update({"infer_s": time.perf_counter() - t0, "split": part, **out})
        return out


def select_mlp(folds, splits, spec: HeadSpec, proto: Protocol, seed: int, search: Mapping[str, tuple],
               scale, patience: int | None, bar=None) -> dict[str, Any]:
    """Score every configuration × epoch on the inner parts; the best mean validation macro-F1 wins.

    The inner splits of a configuration train in lockstep; after each epoch
    the mean validation macro-F1 over them is the curve, and training stops
    ``patience`` epochs after its best (``proto.epochs`` at most).
    """
    inner = []
    for fit_rows, val_rows in splits:
        folds.set_fold({"train": fit_rows, "val": val_rows})
        inner.append(MemoryParts(scaled(folds, scale), ("train", "val")))
    table, best, infer = [], None, []
    for settings, s, p in candidates(spec, proto, search):
        trainers = [HeadTrainer(src, s, p, seed) for src in inner]
        curve, scores, top = [], [], (-1.0, 0)
        for epoch in range(1, p.epochs + 1):
            now = []
            for t in trainers:
                t.epoch()
                now.append(t.score("val"))
                infer.append(t.history[-1]["infer_s"])
            scores.append(now)
            curve.append(float(np.mean([m["macro_f1"] for m in now])))
            if curve[-1] > top[0]:
                top = (curve[-1], epoch)
            if bar is not None:
                bar.update(len(trainers))
            if patience is not None and epoch - top[1] >= patience:
                break
        epoch = top[1]
        row = {**settings, "epoch": epoch, "val_macro_f1": top[0], "epochs_tried": len(curve),
               "curve": [round(v, 6) for v in curve]}
        table.append(row)
        if best is None or row["val_macro_f1"] > best[0]["val_macro_f1"]:
            val = {k: float(np.mean([m[k] for m in scores[epoch - 1]])) for k in ("accuracy", "macro_f1")}
            best = (row, s, p, val)
    row, s, p, val = best
    return {"table": table, "chosen": {k: v for k, v in row.items() if k != "curve"}, "spec": s, "proto": p,
            "epoch": row["epoch"], "val": val, "infer_s": float(np.mean(infer)) if infer else 0.0}


def fit_honest(folds, parts: Mapping[str, np.ndarray], spec: HeadSpec, proto: Protocol, seed: int, *,
               scale, select_on: str = "inner", inner_k: int = INNER_K, inner_seed: int = 0,
               search: Mapping[str, tuple] | None = None, progress: bool = False,
               desc: str = "") -> tuple[SeedOutcome, Source]:
    """One seed of an honest head: selection on ``parts["train"]``, refit on all of it, one test pass.

    Parameters
    ----------
    folds : FoldSource
        Serves the parts (:mod:`embedstore.trainers.cv`).
    parts : dict
        ``train`` (every training row), ``test``, and ``val`` (a subset of
        ``train``; used when ``select_on="val"``).
    spec, proto, seed
        The head, its protocol (``epochs`` is the most an MLP trains) and the model seed.
    scale : dict
        Input scaling per modality, fitted on each part's training rows.
    select_on : {"inner", "val"}
    inner_k, inner_seed : int
        Inner folds and their split seed (the same for every head and seed of a fold, so heads are
        selected on the same rows).
    search : dict, optional
        MLP configurations to try (:func:`search_of`); the epoch is always chosen.

    Returns
    -------
    (SeedOutcome, Source)
        The outcome (test metrics, refit history, ``selection``) and the scaled refit source (its
        scalers are stored with the head).
    """
    if select_on not in SELECT_ON:
        raise InputError(f"select_on={select_on!r}: use 'inner' (inner grouped CV) or 'val' (the validation part)")
    fit_rows, test_rows = np.asarray(parts["train"]), np.asarray(parts["test"])
    if select_on == "val":
        val = np.asarray(parts.get("val", ()))
        if not len(val):
            raise InputError("select_on='val' needs a validation part: use a split with val rows")
        splits = [(np.setdiff1d(fit_rows, val), val)]
        inner = {"on": "val", "rows": [[int(len(splits[0][0])), int(len(val))]]}
    else:
        splits = inner_splits(folds.y, folds.groups, fit_rows, inner_k, inner_seed)
        inner = {"on": f"inner {inner_k}-fold grouped CV of the training rows", "k": inner_k, "seed": inner_seed,
                 "rows": [[int(len(a)), int(len(b))] for a, b in splits]}
    bar = None
    if progress and spec.fusion != "linear":
        from embedstore.progress import progress as progress_bar

        n_cand = len(candidates(spec, proto, search or {}))
        bar = progress_bar(total=n_cand * len(splits) * proto.epochs, desc=desc or f"seed {seed}", unit="epoch")
    t0 = time.perf_counter()
    if spec.fusion == "linear":
        from .linear import select_linear

        chosen = select_linear(folds, splits, seed, scale)
    else:
        chosen = select_mlp(folds, splits, spec, proto, seed, search or {}, scale, proto.patience, bar)
    select_s = time.perf_counter() - t0
    folds.set_fold({"train": fit_rows, "test": test_rows})
    source = scaled(folds, scale)
    searched = chosen.get("searched") or {**{k: [list(v) if isinstance(v, tuple) else v for v in values]
                                             for k, values in (search or {}).items()}, "epochs": proto.epochs}
    selection: dict[str, Any] = {"selected_on": "val" if select_on == "val" else "inner-cv", "inner": inner,
                                 "searched": searched, "scores": chosen["table"], "chosen": chosen["chosen"],
                                 "val": chosen["val"], "select_s": round(select_s, 3),
                                 "refit": {"rows": int(len(fit_rows)), "on": "every training row"}}
    n_classes = max(len(source.classes), 2)
    if spec.fusion == "linear":
        from .linear import refit_linear

        out = refit_linear(source, chosen, seed, selection, proto)
        if bar is not None:
            bar.close()
        return out, source
    s, p, epochs = chosen["spec"], chosen["proto"], chosen["epoch"]
    refit = HeadTrainer(source, s, p, seed)
    for _ in range(epochs):
        refit.epoch()["infer_s"] = chosen["infer_s"]  # the inference cost of one pass, as measured in selection
    model, history, loss_fn = refit.model, refit.history, refit.loss_fn
    if bar is not None:
        bar.close()
    source.mark("selected")
    selection.update({"selected_epoch": epochs, "epochs_run": epochs, "stopped_early": False})
    t1 = time.perf_counter()
    logits, y = predict(model, source, "test", p.batch_size)
    metrics = classification_metrics(y, logits, n_classes)
    test_s = time.perf_counter() - t1
    metrics["test_y"], metrics["test_pred"] = y.tolist(), predictions(logits).tolist()
    metrics["test_logits"] = np.asarray(logits, dtype=np.float64).tolist()  # predict reproduces these
    cost = cost_summary(count_params(model), source, s.fusion, s.output_size, p, history, test_s, model_mib(model))
    cost["rows"]["inner"] = inner["rows"]
    return SeedOutcome(int(seed), metrics, history, selection, cost, loss_fn.describe(), model, s), source


def honest_seeds(folds, parts: Mapping[str, np.ndarray], spec: HeadSpec, proto: Protocol,
                 seeds: Sequence[int], *, select: SelectOptions, inner_seed: int, config: dict[str, Any],
                 env: dict[str, Any], dataset: str, group_id: str, store, progress: bool, baseline: bool, desc: str,
                 rerun_of: str | None = None) -> tuple[list, dict[str, Any]]:
    """:func:`~embedstore.trainers.select.fit_honest` for every seed on ``parts``, each a (recorded) ``RunResult``.

    With ``baseline`` the independent scikit-learn baseline of these rows
    (:mod:`embedstore.trainers.baseline`, computed once for all seeds) is
    kept in each run's ``metrics["baseline"]``. Returns the runs and the
    input scaling fitted for the refit (the same rows for every seed).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS on one thread throughout: the baseline fits in a thread beside the head
        return _honest_seeds(folds, parts, spec, proto, seeds, select=select, inner_seed=inner_seed, config=config,
                             env=env, dataset=dataset, group_id=group_id, store=store, progress=progress,
                             baseline=baseline, desc=desc, rerun_of=rerun_of)


def _honest_seeds(folds, parts, spec, proto, seeds, *, select, inner_seed, config, env, dataset, group_id, store,
                  progress, baseline, desc, rerun_of):
    from .seed_runs import finish_seed

    base, scaling = None, {}
    if baseline:
        from .baseline import baseline_later

        base = baseline_later(folds, parts)  # fitted beside the first seed's selection
    out = []
    for seed in seeds:
        start = len(folds.events)
        folds.mark(f"seed {seed}")
        outcome, source = fit_honest(folds, parts, spec, proto, seed, scale=config.get("scale"),
                                     select_on=select.on, inner_k=select.inner_k, inner_seed=inner_seed,
                                     search=select.search, progress=progress, desc=f"{desc} seed {seed}")
        if base is not None:
            base = base() if callable(base) else base
            outcome.metrics["baseline"] = base
        scaling = getattr(source, "scaling", dict)()
        cfg = {**config, "scaling": scaling, "selection": select.to_dict()}
        out.append(finish_seed(outcome, source, start, outcome.spec or spec, proto, dataset, cfg, env, group_id,
                               rerun_of, store))
    return out, scaling
