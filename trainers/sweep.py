"""The λ sweep (paper figures 4-6): align, train and record for each λ.

For each λ the sweep aligns the dataset with
:func:`embedstore.alignment.align` (stored, and reused when it exists),
trains a head with :func:`embedstore.trainers.train.train` on the aligned vectors for
every seed, and records the runs under ``group_id = <sweep_id>.<alignment_key>``.
The same seeds are also trained once on the unaligned vectors with the
mode's default input scaling (``<sweep_id>.none``, reused like every λ): the
one "no alignment" row (:data:`embedstore.sweep_records.REFERENCE`), equal to
the results table's row of the same setting. Each λ point carries paired t
intervals (:mod:`embedstore.sweep_intervals`) against it and against λ=0
(the normalisation alone).

* ``mode="honest"`` fits the gap on the train split only, selects the epoch
  and then λ on validation macro-F1, and reports the test score at that λ.
* ``mode="paper"`` fits the gap on all rows (train and test, as the code
  did), picks the epoch on test and reports the best-on-test curve.

The ``sweep_id`` is a hash of everything but the λ grid, so running the same
sweep again (or after an interruption) reuses every λ whose seeds are all
recorded, and a wider grid only trains the new λ values. ``resume=False``
starts a new sweep.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from embedstore.alignment import align
from embedstore.transform_align import align_method
from embedstore.errors import InputError
from embedstore.numbers import check_number
from embedstore.keys import stable_hash
from embedstore.refs import lookup_model
from embedstore.sweep_intervals import sweep_intervals
from embedstore.sweep_records import (REFERENCE, SWEEP_PREFIX, SweepPoint, plot_rows, point_from_records, select,
                               sweep_group_id, sweep_records, table_rows)


def _check_options(mode: str, epochs: int | None, train_kw: Mapping[str, Any], noise_std: float, align_seed: int,
                   align_loss_weight: float) -> None:
    """Every number of a sweep, checked before its first alignment is written (each λ's train checks them late)."""
    from embedstore.numbers import check_alignment_params

    from .options import HeadOptions
    from .protocol import resolve_protocol

    resolve_protocol(mode, epochs=epochs, **{k: train_kw.get(k) for k in
                                             ("lr", "dropout", "weight_decay", "patience", "batch_size")})
    HeadOptions(hidden=train_kw.get("hidden"), hidden_image=train_kw.get("hidden_image"),
                output_size=train_kw.get("output_size"), align_loss_weight=align_loss_weight)
    check_alignment_params({"noise_std": noise_std, "seed": align_seed})


#: Most λ values one sweep takes (each trains every seed).
MAX_LAMBDAS = 1000


def parse_lambdas(spec: str | Sequence[float]) -> list[float]:
    """``"start:stop:step"`` (inclusive) or ``"a,b,c"`` → sorted unique λ values.

    Examples
    --------
    >>> parse_lambdas("-1:1:0.5")
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    >>> parse_lambdas("0, 1,0.8")
    [0.0, 0.8, 1.0]
    """
    if not isinstance(spec, str):
        values = [float(v) for v in spec]
    elif ":" in spec:
        try:
            start, stop, step = (float(p) for p in spec.split(":"))
        except ValueError:
            raise InputError(f"lambdas={spec!r}: use START:STOP:STEP, e.g. -1:1:0.1") from None
        for v in (start, stop, step):
            check_number("lambdas", v, fix="START:STOP:STEP of finite numbers, e.g. -1:1:0.1")
        if step <= 0 or stop < start:
            raise InputError(f"lambdas={spec!r}: need STEP > 0 and STOP >= START")
        n = int(np.floor((stop - start) / step + 1e-9)) + 1
        if n > MAX_LAMBDAS:
            raise InputError(f"lambdas={spec!r}: {n} values; a sweep takes at most {MAX_LAMBDAS}: use a larger STEP")
        values = [start + i * step for i in range(n)]
    else:
        try:
            values = [float(p) for p in spec.split(",") if p.strip()]
        except ValueError:
            raise InputError(f"lambdas={spec!r}: use numbers separated by commas, or START:STOP:STEP") from None
    for v in values:
        check_number("lambdas", v, fix="every λ must be a finite number, e.g. -1:1:0.1")
    values = sorted({round(v, 10) + 0.0 for v in values})
    if not values:
        raise InputError("lambdas= needs at least one value")
    return values


@dataclass
class SweepResult:
    """A finished sweep: per-λ points, the selection, and where the plot went."""

    sweep_id: str
    dataset: str
    fusion: str
    mode: str
    seeds: list[int]
    points: list[SweepPoint]
    selection: dict[str, Any]
    settings: dict[str, Any]
    png: str | None = None
    trained: list[float] = field(default_factory=list)
    reused: list[float] = field(default_factory=list)
    reference: SweepPoint | None = None

    def table(self) -> list[dict[str, Any]]:
        """Printable rows, one per λ (with the paired intervals vs no alignment and vs λ=0)."""
        return table_rows(self.points, self.mode, self.reference)

    def intervals(self) -> list[dict[str, Any]]:
        """Per λ: paired t intervals of test macro-F1 vs no alignment and vs λ=0 (JSON-able)."""
        return [{k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in row.items()}
                for row in sweep_intervals(self.points, self.reference)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"sweep_id": self.sweep_id, "dataset": self.dataset, "fusion": self.fusion, "mode": self.mode,
                "seeds": self.seeds, "settings": self.settings, "selection": self.selection, "png": self.png,
                "trained": self.trained, "reused": self.reused, "points": [p.to_dict() for p in self.points],
                "reference": self.reference.to_dict() if self.reference else None, "intervals": self.intervals()}


def sweep(store, dataset: str, *, image_model: str, text_model: str, fusion: str = "early",
          lambdas: str | Sequence[float] = "-1:1:0.1", mode: Literal["honest", "paper"] = "honest",
          seeds: int | Sequence[int] = 1, split_by: str | None = None,
          match: Literal["auto", "interp"] | None = "auto", noise_std: float = 0.0, align_seed: int = 0,
          epochs: int | None = None, align_loss_weight: float = 0.0, out: str | Path | None = None,
          resume: bool = True, progress: bool = True, method: str = "gapshift", n_components: int | None = None,
          seed: int = 0, lr: float | None = None, scale: str | dict[str, str] | None = "none",
          train_options: Mapping[str, Any] | None = None, record: bool = True) -> SweepResult:
    """Run a λ sweep; see the module docstring.

    Parameters
    ----------
    store : embedstore.Store
    dataset : str
    image_model, text_model : str
        Model ids or keys.
    fusion : {"early", "late", "image", "text"}
    lambdas : str or sequence of float
        See :func:`parse_lambdas`.
    mode : {"honest", "paper"}
    seeds : int or list of int
    split_by : str, optional
        Split column, used both to fit the gap and to train (default:
        ``paper`` in paper mode, else the store's default).
    match : {"auto", "interp", None}
        Width matching; ``auto`` interpolates only when the widths differ.
    noise_std, align_seed : float, int
        GapShift noise (off by default) and its seed.
    epochs, align_loss_weight, lr : optional
        Passed to :func:`embedstore.trainers.train.train` (paper mode: the
        paper's sweep epochs and lr unless given).
    seed : int
        First seed when ``seeds`` is a count.
    scale : str or dict
        Input scaling of the λ points' runs: ``none`` (default; a per-feature
        standardisation would subtract the shift again). The no-alignment
        reference always uses the mode's default scaling: it is the one
        "no alignment" row (:data:`embedstore.sweep_records.REFERENCE`).
    train_options : mapping, optional
        Further keywords of :func:`~embedstore.trainers.train.train` (e.g.
        ``batch_size``, ``patience``, ``loader``), recorded in the sweep's settings.
        ``{"save_heads": True}`` keeps every run's head for ``predict``
        (default: not kept, like scikit-learn's ``validation_curve``; the
        chosen λ is then trained with ``train``).
    out : path, optional
        PNG of accuracy and macro-F1 against λ.
    record : bool
        Record every run (default). ``False`` trains every seed and writes no
        run: the sweep of a member who may only read the store (its
        alignments then live in their cache, :mod:`embedstore.alignment_home`).
    resume : bool
        Reuse the recorded seeds of an identical sweep.
    method, n_components : str, int
        Transform fitted before each λ shift (:mod:`embedstore.transforms`;
        default the paper's mean shift alone), through the same honest rule.

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> res = sweep(store, "ham10000", image_model="builtin:efficientnet-lite0",  # doctest: +SKIP
    ...             text_model="builtin:minilm-l6", lambdas="-1:1:0.5", seeds=2, out="sweep.png")
    >>> res.selection["lam"]  # doctest: +SKIP
    """
    from .protocol import resolve_protocol
    from .seed_runs import recorded_seeds, seeds_from
    from .train import train

    rules = resolve_protocol(mode).rules
    grid = parse_lambdas(lambdas)
    # the aligned vectors are unit-norm and the shift is a constant vector: a per-feature standardisation
    # would subtract it again, so the sweep measures the shift on its own (λ=0 = normalisation only)
    train_kw: dict[str, Any] = {"scale": scale, **dict(train_options or {}), **({"lr": lr} if lr is not None else {})}
    # a sweep keeps its runs' scores, not their heads (scikit-learn's validation_curve), unless
    # train_options={"save_heads": True}; not part of the sweep's identity (same numbers either way)
    heads_kw = {"save_heads": bool(train_kw.pop("save_heads", False))}
    if "seed" in train_kw or "group_id" in train_kw:
        raise InputError("sweep(): pass seed= as its own argument; the sweep sets each λ's group_id")
    seed_list = seeds_from(seeds, int(seed))
    _check_options(mode, epochs, train_kw, noise_std, align_seed, align_loss_weight)
    split_col = store.split_column(dataset, split_by if split_by is not None else rules.default_split)
    image_id, text_id = lookup_model(store, image_model, "image"), lookup_model(store, text_model, "text")
    if match == "auto":
        match = "interp" if image_id.dim("image") != text_id.dim("text") else None
    fit_on = rules.fit_on
    preset = None
    if rules.presets:  # the sweep runs' own epochs and lr (protocol §5.3), not the main runs'
        from .presets import dataset_profile, embedding_family, sweep_preset

        preset = sweep_preset(dataset_profile(store, dataset)["kind"],
                              embedding_family(image_id.model_id, text_id.model_id))
        epochs = epochs if epochs is not None else preset["epochs"]
        if train_kw.get("lr") is None:
            train_kw["lr"] = preset["lr"]
    settings = {"dataset": dataset, "image_model_key": image_id.key, "text_model_key": text_id.key,
                "fusion": fusion, "mode": mode, "seeds": seed_list, "split_column": split_col, "epochs": epochs,
                "match": match, "fit_on": fit_on, "noise_std": float(noise_std), "align_seed": int(align_seed),
                "align_loss_weight": float(align_loss_weight), "train": dict(sorted(train_kw.items())),
                "reference": f"no alignment, {mode} mode's default input scaling",
                **({"paper_preset": preset} if preset else {}),
                **({"method": method, "n_components": n_components} if method != "gapshift" else {})}
    nonce = None if resume else uuid.uuid4().hex
    sweep_id = SWEEP_PREFIX + stable_hash({**settings, "nonce": nonce}, 12)
    done = sweep_records(store, dataset, sweep_id)
    points, trained, reused = [], [], []
    bar = None
    if progress:
        from embedstore.progress import progress as progress_bar

        bar = progress_bar(total=len(grid), desc=f"sweep {dataset} {fusion} {mode}", unit="λ", leave=True)
    t0 = time.perf_counter()

    def seed_records(gid: str, **align_kw: Any) -> tuple[list[Any], bool]:
        """The records of ``gid`` for every seed, training the missing seeds; (records, trained?)."""
        if not record:  # in memory only: nothing is written
            from embedstore.runs import RunRecord

            res = train(store, dataset, image_model=image_id.key, text_model=text_id.key, fusion=fusion, mode=mode,
                        split_by=split_col, epochs=epochs, seeds=seed_list, align_loss_weight=align_loss_weight,
                        record=False, group_id=gid, **{**train_kw, **align_kw}, **heads_kw)
            return [RunRecord(run_id=r.run_id or f"unrecorded-{gid}-{r.seed}", group_id=gid, dataset=dataset,
                              fusion=fusion, mode=mode, seed=r.seed, table_versions=dict(r.table_versions),
                              metrics={**r.metrics, "selection": r.selection}) for r in res.runs], True
        return recorded_seeds(
            store, dataset, gid, seed_list, lambda missing: train(
                store, dataset, image_model=image_id.key, text_model=text_id.key, fusion=fusion, mode=mode,
                split_by=split_col, epochs=epochs, seeds=missing, align_loss_weight=align_loss_weight,
                record=True, group_id=gid, **{**train_kw, **align_kw}, **heads_kw), known=done.get(gid, []))

    # the one "no alignment" row (embedstore.sweep_records.REFERENCE): the mode's default input scaling, as a plain
    # train records it (with its independent baseline), whatever scale the λ points use; the λ points skip the
    # baseline (it is the reference's: the same rows, unaligned vectors)
    ref_records, _ = seed_records(sweep_group_id(sweep_id, REFERENCE), scale=None)
    reference = point_from_records(None, REFERENCE, ref_records)
    for lam in grid:
        if method == "gapshift":
            res = align(store, dataset, image_model=image_id.key, text_model=text_id.key, lam=lam,
                        noise_std=noise_std, seed=align_seed, match=match, fit_on=fit_on, split_by=split_col)
        else:
            res = align_method(store, dataset, method=method, image_model=image_id.key, text_model=text_id.key,
                               lam=lam, n_components=n_components, match=match, fit_on=fit_on, split_by=split_col)
        records, fresh = seed_records(sweep_group_id(sweep_id, res.alignment_key), alignment_key=res.alignment_key,
                                      image_dim=res.dim, text_dim=res.dim,
                                      **({"baseline": False} if rules.tests_once else {}))
        (trained if fresh else reused).append(lam)
        points.append(point_from_records(lam, res.alignment_key, records))
        if bar is not None:
            p = points[-1]
            bar.update(1)
            bar.set_postfix({"λ": f"{lam:+.2f}", "test_f1": f"{p.test_f1:.3f}",
                             "s": f"{time.perf_counter() - t0:.0f}"})
    if bar is not None:
        bar.close()
    selection = select(points, mode, reference)
    png = None
    if out is not None:
        from embedstore.figures import sweep_plot

        marker = {f"{fusion} test": selection["lam"]} if rules.selects_on_val else None
        png = str(sweep_plot(plot_rows(points, fusion, mode), out, selected=marker,
                             title=f"{dataset} {fusion} ({mode}{'' if method == 'gapshift' else ', ' + method})"))
    return SweepResult(sweep_id, dataset, fusion, mode, seed_list, points, selection, settings, png,
                       trained, reused, reference)
