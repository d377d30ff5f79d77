"""Training seeds of one head and gathering them: :class:`RunResult`, :class:`TrainResult`, :func:`run_seeds`.

The shared machinery of :func:`embedstore.trainers.train.train`, :func:`embedstore.trainers.train.train_arrays`,
cross-validation (:mod:`embedstore.trainers.cv`) and the raw baseline (:mod:`embedstore.trainers.raw`): fit one
head per seed, turn each outcome into a :class:`RunResult` (and a recorded run), and
average over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from embedstore.errors import InputError
from embedstore.formats import ToDict
from embedstore.modes import mode_rules
from embedstore.runs import RunRecord, new_run_id, record_run

from .fit_loop import HeadSpec, SeedOutcome, fit_seed, torch_threads
from .environment import capture
from .loader import Source
from .metrics import summarize
from .models import FUSIONS
from .protocol import Protocol, resolve_protocol
from .scaling import parse_scale, scaled

#: Every head ``fusion=`` accepts: the MLP heads and the linear probe (:mod:`embedstore.trainers.linear`).
HEADS = (*FUSIONS, "linear")

#: Metrics averaged over seeds in :attr:`TrainResult.mean` / :attr:`TrainResult.sd`.
SUMMARY_METRICS = ("accuracy", "macro_f1", "roc_auc_ovr", "selected_epoch", "train_s_per_epoch",
                   "infer_s_per_epoch")


@dataclass
class RunResult(ToDict):
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

    def interval(self, metric: str = "macro_f1") -> tuple[float, float, float] | None:
        """Mean test ``metric`` over folds with its 95% bootstrap interval over test rows (honest runs; else ``None``)."""
        from embedstore.compare import setting_interval

        return setting_interval(self.runs, metric=metric)

    def against_baseline(self, metric: str = "macro_f1"):
        """This head − the independent scikit-learn baseline of the same rows, paired, with its 95% interval.

        A :class:`embedstore.compare.Comparison` (``None`` when the runs carry no baseline: paper mode,
        ``baseline=False``).
        """
        from embedstore.compare import baseline_comparison

        return baseline_comparison(self.runs, metric=metric, name=self.fusion)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what ``embedstore train --json`` prints)."""
        ci, base = self.interval(), self.against_baseline()
        return {"dataset": self.dataset, "fusion": self.fusion, "mode": self.mode, "group_id": self.group_id,
                "run_ids": self.run_ids, "mean": self.mean, "sd": self.sd,
                "macro_f1_interval": None if ci is None else {"mean": ci[0], "low": ci[1], "high": ci[2]},
                "against_baseline": None if base is None else base.to_dict(), "config": self.config,
                "runs": [{"run_id": r.run_id, "seed": r.seed, "metrics": r.metrics, "selection": r.selection,
                          "cost": r.cost, "loader": r.loader, "table_versions": r.table_versions,
                          **({"cv": r.cv} if r.cv else {})}
                         for r in self.runs]}


def seeds_from(seeds: int | Sequence[int], start: int) -> list[int]:
    if isinstance(seeds, int):
        if seeds < 1:
            raise InputError(f"seeds={seeds}: use a positive number of seeds")
        return list(range(start, start + seeds))
    return [int(s) for s in seeds]


def recorded_seeds(store, dataset: str, group_id: str, seeds: Sequence[int],
                   train_missing: Callable[[list[int]], Any],
                   known: Sequence[RunRecord] | None = None) -> tuple[list[RunRecord], bool]:
    """The recorded runs of ``group_id`` for every seed in ``seeds``, training only the missing seeds.

    The one seed cache of :func:`embedstore.trainers.sweep.sweep` (per λ) and
    the demo's baselines (:mod:`embedstore.trainers.demo`): ``train_missing(missing)``
    must record one run per missing seed under ``group_id``. ``known`` are
    the group's records when the caller has read them already.

    Returns
    -------
    (records, trained) : list of RunRecord (in the order of ``seeds``), bool
        ``trained`` is True when any seed had to be trained now.
    """
    from embedstore.runs import list_runs

    have = {r.seed: r for r in (list_runs(store, dataset, group_id=group_id) if known is None else known)}
    missing = [s for s in seeds if s not in have]
    if missing:
        train_missing(missing)
        have = {r.seed: r for r in list_runs(store, dataset, group_id=group_id)}
    return [have[s] for s in seeds], bool(missing)


def protocol_from(fusion: str, mode: str, epochs: int | None, dropout: float | None, batch_size: int | None,
                  lr: float | None, weight_decay: float | None = None, patience: int | None = None) -> Protocol:
    """The protocol of ``mode`` with the given (non-``None``) settings; refuses an unknown ``fusion``."""
    if fusion not in HEADS:
        raise InputError(f"unknown fusion {fusion!r}: use one of {', '.join(HEADS)}")
    return resolve_protocol(mode, epochs=epochs, dropout=dropout, batch_size=batch_size, lr=lr,
                            weight_decay=weight_decay, patience=patience)


def check_splits(source: Source, proto: Protocol, where: str) -> None:
    missing = [s for s in proto.splits if not source.has_split(s)]
    if missing:
        raise InputError(f"{where} has no {'/'.join(missing)} rows: {proto.rules.split_hint}")


def fit_head(source: Source, spec: HeadSpec, proto: Protocol, seed: int, *, progress: bool = False,
             desc: str = "") -> SeedOutcome:
    """One seed of ``spec``'s head: the MLP training loop, or the linear probe's C selection."""
    if spec.fusion == "linear":
        from .linear import fit_linear

        return fit_linear(source, proto, seed)
    return fit_seed(source, spec, proto, seed, progress=progress, desc=desc)


def scale_of(mode: str, scale) -> dict[str, str]:
    raw = mode_rules(mode).raw_inputs
    if raw and scale is not None and parse_scale(scale) != parse_scale("none"):
        raise InputError(f"{mode} mode feeds the paper's raw inputs: drop scale= or use mode='honest'")
    return parse_scale("none" if raw else scale)


def fit_seeds(log: Source, source: Source, spec: HeadSpec, proto: Protocol, seeds: Sequence[int], *,
              dataset: str, config: dict[str, Any], env: dict[str, Any], group_id: str, rerun_of: str | None,
              store, progress: bool, desc: str) -> list[RunResult]:
    """Fit one head per seed on ``source`` and turn each into a :class:`RunResult` (recorded when ``store``).

    ``log`` is the source whose event log is marked per seed (the CV folds, or
    ``source`` itself); ``desc`` prefixes the progress line.
    """
    out: list[RunResult] = []
    for seed in seeds:
        start = len(log.events)
        log.mark(f"seed {seed}")
        fitted = fit_head(source, spec, proto, seed, progress=progress, desc=f"{desc} seed {seed}")
        out.append(finish_seed(fitted, source, start, spec, proto, dataset, config, env, group_id, rerun_of, store))
    return out


def run_seeds(source: Source, spec: HeadSpec, proto: Protocol, seeds: list[int], *, dataset: str,
               config: dict[str, Any], store=None, record: bool, progress: bool, group_id: str | None,
               rerun_of: str | None = None) -> TrainResult:
    group_id = group_id or new_run_id().replace("run-", "grp-", 1)
    runs: list[RunResult] = []
    with torch_threads(config.get("threads")):
        env = capture()
        source = scaled(source, config.get("scale"))
        config = {**config, "scaling": getattr(source, "scaling", dict)()}
        runs += fit_seeds(source, source, spec, proto, seeds, dataset=dataset, config=config, env=env,
                          group_id=group_id, rerun_of=rerun_of, store=store if record else None,
                          progress=progress, desc=f"{dataset} {spec.fusion}")
    return summarize_runs(TrainResult(dataset, spec.fusion, proto.mode, runs, group_id, config, source=source))


def summarize_runs(result: TrainResult) -> TrainResult:
    """Fill ``result.mean`` / ``result.sd`` over all its runs (seeds, or folds × seeds)."""
    for name in SUMMARY_METRICS:
        result.mean[name], result.sd[name] = summarize([r.flat()[name] for r in result.runs])
    return result


def finish_seed(out: SeedOutcome, source: Source, start: int, spec: HeadSpec, proto: Protocol, dataset: str,
            config: dict[str, Any], env: dict[str, Any], group_id: str, rerun_of: str | None, store) -> RunResult:
    res = run_result(out, source, start)
    res.cv = config.get("cv")
    if store is not None:
        res.run_id = new_run_id()
        record_run(store, record_seed(res, out, source, spec, proto, dataset, config, env, group_id, rerun_of))
        from .predict import keep_head

        keep_head(store, out, source, spec, proto, config, res.run_id, group_id, dataset)
    return res


def run_result(out: SeedOutcome, source: Source, start: int) -> RunResult:
    versions = dict(getattr(source, "versions", {}) or {})
    metrics = {**out.metrics, "classes": list(source.classes), "selected_epoch": out.selection["selected_epoch"]}
    return RunResult(out.seed, metrics, out.history, out.selection, out.cost, source.path, versions,
                     events=list(source.events[start:]))


def record_seed(res: RunResult, out: SeedOutcome, source: Source, spec: HeadSpec, proto: Protocol, dataset: str,
            config: dict[str, Any], env: dict[str, Any], group_id: str, rerun_of: str | None) -> RunRecord:
    return RunRecord(
        run_id=res.run_id, group_id=group_id, dataset=dataset, fusion=spec.fusion, mode=proto.mode,
        seed=res.seed, split=config.get("split_column", ""), loader=source.path,
        model_keys=dict(getattr(source, "model_keys", {})), alignment_keys=config.get("alignment_keys", {}),
        table_versions=res.table_versions, config=config, history=res.history,
        metrics={**res.metrics, "selection": res.selection, "cost": res.cost, "loss": out.loss,
                 "loader": source.describe()},
        environment=env, rerun_of=rerun_of)


#: Config entries a reused seed must share with the run asked for (what changes its numbers).
RESUME_KEYS = ("protocol", "head", "split_column", "scale", "alignment_keys", "label_column", "tables", "selection")


def resume_seeds(store, source: Source, spec: HeadSpec, proto: Protocol, seeds: Sequence[int], *, dataset: str,
                 config: dict[str, Any], group_id: str, progress: bool, run: Callable = None) -> TrainResult:
    """Seeds of ``group_id`` already recorded are reused; only the missing ones are trained (and recorded).

    A reused run must be of the same head, protocol, inputs and table versions as
    the one asked for; anything else is refused in one line (train under a new
    ``group_id``). So an interrupted many-seed ``train`` completes on re-run. ``run`` trains the missing
    seeds (default :func:`run_seeds`; ``train`` passes its single-split runner).
    """
    from embedstore.runs import list_runs

    known = list_runs(store, dataset, group_id=group_id)
    versions = dict(getattr(source, "versions", {}) or {})
    for r in known:
        same = r.fusion == spec.fusion and r.mode == proto.mode and dict(r.table_versions) == versions and all(
            r.config.get(k) == config.get(k) for k in RESUME_KEYS)
        if not same:
            raise InputError(f"resume: group '{group_id}' holds run {r.run_id} of another setting or other table "
                             "versions; pass a new group_id= to train this setting afresh")
    fresh: dict[int, RunResult] = {}

    def train_missing(missing: list[int]) -> None:
        res = (run or run_seeds)(source, spec, proto, missing, dataset=dataset, config=config, store=store,
                                 record=True, progress=progress, group_id=group_id)
        fresh.update({r.seed: r for r in res.runs})

    records, _ = recorded_seeds(store, dataset, group_id, list(seeds), train_missing, known=known)
    runs = [fresh.get(r.seed) or _result_of(r) for r in records]
    return summarize_runs(TrainResult(dataset, spec.fusion, proto.mode, runs, group_id, config, source=source))


def _result_of(rec: RunRecord) -> RunResult:
    """The :class:`RunResult` of a recorded run (as :func:`record_seed` stored it)."""
    metrics = {k: v for k, v in rec.metrics.items() if k not in ("selection", "cost", "loss", "loader")}
    return RunResult(rec.seed, metrics, list(rec.history), dict(rec.metrics.get("selection", {})),
                     dict(rec.metrics.get("cost", {})), rec.loader, dict(rec.table_versions), rec.run_id,
                     cv=rec.config.get("cv"))

