"""λ-sweep summaries, read back from the ``runs`` table.

A sweep (``embedstore.trainers.sweep.sweep``) records every seed of every λ as an
ordinary run whose ``group_id`` is ``<sweep_id>.<alignment_key>``; λ itself
is read from the run records (which carry their alignment's settings). This module turns those records into
per-λ points (mean ± sd over seeds) and makes the selection:

* ``honest``: λ is chosen on **validation** macro-F1 (mean over seeds; ties
  go to the smaller |λ|), and the test score at that λ is reported;
* ``paper``: the curve of test accuracy and of the F1 at the best-accuracy
  epoch, both picked on test, exactly as the paper plotted it, and the λ
  with the best test accuracy / F1.

It never imports ``trainers``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .modes import mode_rules
from .runs import RunRecord, list_runs
from .stats import mean_sd

SWEEP_PREFIX = "sweep-"
#: Group suffix of a sweep's "no alignment" reference runs (``<sweep_id>.none``).
#:
#: "No alignment" has one definition everywhere (results table, sweep, report): the head trained on the
#: unaligned stored vectors with its mode's default input scaling (:attr:`embedstore.modes.ModeRules.input_scale`:
#: honest standardises on the training rows, paper feeds raw vectors), i.e. exactly what ``train`` records when
#: given no alignment and no ``scale=``. A sweep trains its reference that way on its own split and seeds
#: (whatever ``scale`` its λ points use), so the reference equals the results table's row of that setting and
#: every λ is judged against it, paired on the same test rows.
REFERENCE = "none"


def sweep_group_id(sweep_id: str, alignment_key: str) -> str:
    """The ``group_id`` of one λ of a sweep.

    Examples
    --------
    >>> sweep_group_id("sweep-abc", "gs-123")
    'sweep-abc.gs-123'
    """
    return f"{sweep_id}.{alignment_key}"


@dataclass
class SweepPoint:
    """One λ of a sweep: test (and, honest, validation) metrics over seeds (``lam=None``: no alignment)."""

    lam: float | None
    alignment_key: str
    group_id: str
    seeds: int
    run_ids: list[str]
    test_acc: float | None
    test_acc_sd: float | None
    test_f1: float | None
    test_f1_sd: float | None
    val_acc: float | None = None
    val_acc_sd: float | None = None
    val_f1: float | None = None
    val_f1_sd: float | None = None
    table_versions: dict[str, int] = field(default_factory=dict)
    seed_list: list[int] = field(default_factory=list)
    test_f1_by_seed: list[float | None] = field(default_factory=list)
    test_acc_by_seed: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)


def point_from_records(lam: float | None, alignment_key: str, records: list[RunRecord]) -> SweepPoint:
    """Aggregate the seeds of one λ (records ordered by seed; ``lam=None``: the no-alignment reference)."""
    records = sorted(records, key=lambda r: (r.seed, r.run_id))
    vals = {"test_acc": [r.metrics.get("accuracy") for r in records],
            "test_f1": [r.metrics.get("macro_f1") for r in records],
            "val_acc": [(r.metrics.get("selection") or {}).get("val", {}).get("accuracy") for r in records],
            "val_f1": [(r.metrics.get("selection") or {}).get("val", {}).get("macro_f1") for r in records]}
    stats: dict[str, Any] = {}
    for name, v in vals.items():
        stats[name], stats[f"{name}_sd"] = mean_sd(v)
    return SweepPoint(lam=None if lam is None else float(lam), alignment_key=alignment_key,
                      group_id=records[0].group_id, seeds=len(records), run_ids=[r.run_id for r in records],
                      table_versions=dict(records[0].table_versions), seed_list=[int(r.seed) for r in records],
                      test_f1_by_seed=vals["test_f1"], test_acc_by_seed=vals["test_acc"], **stats)


def sweep_records(store, dataset: str, sweep_id: str) -> dict[str, list[RunRecord]]:
    """``{group_id: [records]}`` of one sweep."""
    out: dict[str, list[RunRecord]] = {}
    for rec in list_runs(store, dataset):
        if rec.group_id.startswith(sweep_id + "."):
            out.setdefault(rec.group_id, []).append(rec)
    return out


def sweep_points(store, dataset: str, sweep_id: str) -> list[SweepPoint]:
    """Per-λ points of one sweep, sorted by λ (from the run records; older records: the alignment registry)."""
    points = []
    for gid, recs in sweep_records(store, dataset, sweep_id).items():
        key = gid[len(sweep_id) + 1:]
        if key == REFERENCE:
            continue
        recorded = next(iter((recs[0].config.get("alignments") or {}).values()), {})
        lam = recorded["lam"] if "lam" in recorded else store.alignment(key).settings["lam"]
        points.append(point_from_records(lam, key, recs))
    return sorted(points, key=lambda p: p.lam)


def sweep_reference(store, dataset: str, sweep_id: str) -> SweepPoint | None:
    """The "no alignment" reference of one sweep (its ``<sweep_id>.none`` runs), or ``None`` (older sweeps)."""
    recs = sweep_records(store, dataset, sweep_id).get(sweep_group_id(sweep_id, REFERENCE))
    return point_from_records(None, REFERENCE, recs) if recs else None


def sweep_method(store, dataset: str, sweep_id: str) -> str:
    """The alignment method of a sweep's λ points (``gapshift`` for the paper's shift), from its run records."""
    for gid, recs in sweep_records(store, dataset, sweep_id).items():
        if not gid.endswith("." + REFERENCE):
            recorded = next(iter((recs[0].config.get("alignments") or {}).values()), {})
            return str(recorded.get("method", "gapshift"))
    return "gapshift"


def list_sweeps(store, dataset: str | None = None) -> list[dict[str, Any]]:
    """Recorded sweeps, oldest first: ``sweep_id``, dataset, fusion, mode, split, runs, λ count."""
    seen: dict[str, dict[str, Any]] = {}
    for rec in list_runs(store, dataset):
        if not rec.group_id.startswith(SWEEP_PREFIX) or "." not in rec.group_id:
            continue
        sid = rec.group_id.split(".", 1)[0]
        row = seen.setdefault(sid, {"sweep_id": sid, "dataset": rec.dataset, "fusion": rec.fusion,
                                    "mode": rec.mode, "split": rec.split, "groups": set(), "runs": 0,
                                    "created_at": rec.created_at})
        if not rec.group_id.endswith("." + REFERENCE):
            row["groups"].add(rec.group_id)
        row["runs"] += 1
    return [{**{k: v for k, v in r.items() if k != "groups"}, "lambdas": len(r["groups"])} for r in seen.values()]


def select(points: list[SweepPoint], mode: str, reference: SweepPoint | None = None) -> dict[str, Any]:
    """The λ a sweep reports (see the module docstring).

    With the sweep's ``reference`` (no alignment), the honest selection also
    carries ``vs_none`` and ``vs_lam0``: the paired t intervals
    (:mod:`embedstore.sweep_intervals`) of the selected λ's test macro-F1
    against no alignment and against λ=0.

    Examples
    --------
    >>> pts = [SweepPoint(l, "k", "g", 2, [], 0.5 + a, 0.0, 0.4 + a, 0.0, 0.6, 0.0, 0.3 + v, 0.0)
    ...        for l, a, v in ((-1.0, 0.0, 0.0), (0.0, 0.1, 0.2), (1.0, 0.2, 0.1))]
    >>> select(pts, "honest")["lam"], select(pts, "paper")["best_acc_lam"]
    (0.0, 1.0)
    """
    if not points:
        return {}
    base = next((p for p in points if abs(p.lam) < 1e-12), None)
    out: dict[str, Any] = {"mode": mode}
    if base is not None:
        out["lam0"] = {"test_acc": base.test_acc, "test_acc_sd": base.test_acc_sd,
                       "test_f1": base.test_f1, "test_f1_sd": base.test_f1_sd}
    if mode_rules(mode).selects_on_val:
        pick = max(points, key=lambda p: (p.val_f1 if p.val_f1 is not None else -1.0, -abs(p.lam)))
        out.update({"criterion": "mean validation macro-F1", "lam": pick.lam,
                    "val_f1": pick.val_f1, "val_f1_sd": pick.val_f1_sd,
                    "test_acc": pick.test_acc, "test_acc_sd": pick.test_acc_sd,
                    "test_f1": pick.test_f1, "test_f1_sd": pick.test_f1_sd})
        from .sweep_intervals import point_interval

        for name, ref in (("vs_none", reference), ("vs_lam0", base)):
            iv = point_interval(pick, ref) if ref is not pick else None
            out[name] = iv.to_dict() if iv is not None else None
    else:
        best_acc = max(points, key=lambda p: (p.test_acc or -1.0, -abs(p.lam)))
        best_f1 = max(points, key=lambda p: (p.test_f1 or -1.0, -abs(p.lam)))
        out.update({"criterion": "best on test (the paper's selection; optimistic)",
                    "best_acc_lam": best_acc.lam, "best_acc": best_acc.test_acc,
                    "best_f1_lam": best_f1.lam, "best_f1": best_f1.test_f1})
    return out


def plot_rows(points: list[SweepPoint], fusion: str, mode: str) -> list[dict[str, Any]]:
    """Rows for :func:`embedstore.figures.sweep_plot` (test, plus validation in honest mode)."""
    rules = mode_rules(mode)
    label = f"{fusion} test" + (" (best epoch on test)" if rules.select_on == "test" else "")
    rows = [{"series": label, "lam": p.lam, "acc_mean": p.test_acc, "acc_sd": p.test_acc_sd,
             "f1_mean": p.test_f1, "f1_sd": p.test_f1_sd} for p in points]
    if "val" in rules.splits:
        rows += [{"series": f"{fusion} val", "lam": p.lam, "acc_mean": p.val_acc, "acc_sd": p.val_acc_sd,
                  "f1_mean": p.val_f1, "f1_sd": p.val_f1_sd} for p in points if p.val_f1 is not None]
    return rows


def table_rows(points: list[SweepPoint], mode: str, reference: SweepPoint | None = None) -> list[dict[str, Any]]:
    """One printable row per λ (mean ± sd strings; paired test-F1 intervals vs no alignment and vs λ=0)."""
    from .sweep_intervals import sweep_intervals

    def fmt(m, s):
        return "" if m is None else f"{m:.4f} ± {s or 0.0:.4f}"

    rows = []
    for p, iv in zip(points, sweep_intervals(points, reference)):
        row = {"lam": f"{p.lam:+.2f}", "seeds": p.seeds, "test_acc": fmt(p.test_acc, p.test_acc_sd),
               "test_f1": fmt(p.test_f1, p.test_f1_sd)}
        if "val" in mode_rules(mode).splits:
            row.update({"val_acc": fmt(p.val_acc, p.val_acc_sd), "val_f1": fmt(p.val_f1, p.val_f1_sd)})
        for name, label in (("vs_none", "ΔF1 vs none [95% CI]"), ("vs_lam0", "ΔF1 vs λ=0 [95% CI]")):
            row[label] = iv[name].text() if iv[name] is not None else ""
        row["alignment"] = p.alignment_key
        rows.append(row)
    return rows
