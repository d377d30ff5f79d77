"""``check``: duplicates, leaks, label issues and shortcut columns of one dataset, recorded in the store.

:func:`run_checks` pins the samples table and each embeddings table it
reads, and looks up the ``checks`` record of exactly those versions and
settings: when there is one it is returned (``cached=True``) and nothing is
computed. Otherwise it runs

* exact duplicates by content hash and near-duplicates by vector
  (:mod:`~embedstore.datacheck.duplicates`) of the image vectors (the text
  vectors for a text-only dataset; pairs of identical bytes are listed
  once, as exact duplicates); a pair in different splits of any split
  column is a **leak**, otherwise it is listed;
* group leaks of every split column (:mod:`~embedstore.datacheck.leaks`);
* label issues (:mod:`~embedstore.datacheck.labels`) from out-of-fold
  probabilities given by ``probabilities`` (the probe lives in
  ``embedstore.trainers``: :func:`embedstore.trainers.checks.check` passes it);
* shortcut columns (:mod:`~embedstore.datacheck.shortcuts`);

and records what it found, with the flagged rows' fingerprints
(:mod:`~embedstore.datacheck.records`).

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> from embedstore.pairs import toy_pairs
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> _ = toy_pairs(s, "toy", n=60)
>>> rep = run_checks(s, "toy")
>>> rep.counts["rows"], rep.counts["group_leaks"], rep.cached, run_checks(s, "toy").cached
(60, 0, False, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..formats import ToDict
from ..identity import ModelIdentity
from . import duplicates as dup
from .inputs import CheckData, pick_models, pinned_versions, read_check_data, snapshots
from .labels import ProbabilityFn
from .leaks import crossing, group_leaks, split_values
from .records import CheckRecord, check_key, find_record, row_fingerprint, save_record
from .shortcuts import DEFAULT_GAIN, DEFAULT_MIN_SUPPORT, DEFAULT_RULE_ERROR, shortcut_columns

#: Bumped when what a check computes changes, so older records are not reused for new code.
ALGORITHM = 1
#: Suspects shown by default (text output, the report); the record keeps every row's rank.
TOP = 10


@dataclass
class CheckReport(ToDict):
    """What :func:`run_checks` found (or found before: ``cached``).

    Attributes
    ----------
    check_id, dataset : str
    cached : bool
        True when the record of the same versions and settings was reused.
    table_versions, settings : dict
    models : dict
        ``{modality: model_id}`` read.
    counts : dict
        ``rows``, ``exact_duplicate_groups``, ``exact_duplicate_leaks``,
        ``near_duplicate_pairs``, ``near_duplicate_leaks``, ``group_leaks``,
        ``label_issues``, ``shortcuts``.
    exact_duplicates, near_duplicates, group_leaks, shortcuts : list of dict
    thresholds : dict
        ``{modality: {"threshold": t, ...calibration}}`` of the near-duplicate search.
    label_ranking : list of dict
        Every labelled row, most suspect first (:func:`~embedstore.datacheck.labels.label_issues`).
    prompt_shortcuts : dict
        ``{column: [templates]}`` of shortcut columns used by a prompt.
    notes : list of str
    timings : dict
        Seconds each step took when the record was computed.
    created_at : str
    """

    check_id: str
    dataset: str
    cached: bool
    table_versions: dict[str, int]
    settings: dict[str, Any]
    models: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    exact_duplicates: list[dict[str, Any]] = field(default_factory=list)
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    group_leaks: list[dict[str, Any]] = field(default_factory=list)
    label_ranking: list[dict[str, Any]] = field(default_factory=list)
    shortcuts: list[dict[str, Any]] = field(default_factory=list)
    prompt_shortcuts: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    created_at: str = ""

    @property
    def label_issues(self) -> list[dict[str, Any]]:
        """The rows cleanlab's finder flagged, most suspect first."""
        return [r for r in self.label_ranking if r["issue"]]

    def suspects(self, n: int = TOP) -> list[dict[str, Any]]:
        """The ``n`` most suspect labels (flagged or not), most suspect first."""
        return self.label_ranking[:n]

    @classmethod
    def from_record(cls, rec: CheckRecord, cached: bool) -> "CheckReport":
        res = rec.result
        return cls(rec.check_id, rec.dataset, cached, rec.table_versions, rec.settings,
                   **{k: res[k] for k in ("models", "counts", "exact_duplicates", "near_duplicates", "thresholds",
                                          "group_leaks", "label_ranking", "shortcuts", "prompt_shortcuts",
                                          "notes", "timings") if k in res},
                   created_at=rec.created_at)


def check_settings(models: dict[str, ModelIdentity], *, duplicates_on: Sequence[str] | None, k: int, p: float,
                   dims: int, threshold: float | None, group_columns: Sequence[str],
                   probe: dict[str, Any] | None, shortcut_options: dict[str, Any]) -> dict[str, Any]:
    """The settings that key a check record (with the model keys and :data:`ALGORITHM`)."""
    on = list(duplicates_on) if duplicates_on is not None else (["image"] if "image" in models else
                                                                 ["text"] if "text" in models else [])
    return {"algorithm": ALGORITHM, "models": {m: i.key for m, i in sorted(models.items())},
            "duplicates": {"on": on, "k": k, "p": p, "dims": dims, "threshold": threshold},
            "group_columns": list(group_columns), "labels": probe, "shortcuts": shortcut_options}


def run_checks(store, dataset: str, *, image_model: str | ModelIdentity | None = None,
               text_model: str | ModelIdentity | None = None, modalities: Sequence[str] | None = None,
               versions: dict[str, int] | None = None, duplicates_on: Sequence[str] | None = None,
               k: int = dup.DEFAULT_K, p: float = dup.DEFAULT_P, dims: int = dup.DEFAULT_DIMS,
               threshold: float | None = None, group_columns: Sequence[str] = ("group_id",),
               probabilities: ProbabilityFn | None = None, probe: dict[str, Any] | None = None,
               min_support: int = DEFAULT_MIN_SUPPORT, rule_error: float = DEFAULT_RULE_ERROR,
               gain: float = DEFAULT_GAIN, recompute: bool = False, progress: bool = False) -> CheckReport:
    """Check ``dataset`` from its stored vectors at pinned versions; reuse the record of an identical check.

    Parameters
    ----------
    store : Store
    dataset : str
    image_model, text_model : str or ModelIdentity, optional
        The models whose vectors are read; by default the only model of each
        modality with vectors of ``dataset`` (see :func:`~embedstore.datacheck.inputs.pick_models`).
    modalities : sequence of str, optional
        Read only these modalities.
    versions : dict, optional
        ``{table: version}`` to pin (``"samples"`` names the samples table); latest otherwise.
    duplicates_on : sequence of str, optional
        Modalities searched for near- and exact duplicates (default: image,
        or text for a text-only dataset).
    k, p, dims, threshold
        Near-duplicate search (:func:`~embedstore.datacheck.duplicates.near_duplicates`).
    group_columns : sequence of str
        Columns whose values must not cross splits.
    probabilities : callable, optional
        ``probabilities(x, y, groups, classes, k=, seed=) -> (n, K)`` out-of-fold
        probabilities; without it label issues are not computed (a note says so).
    probe : dict, optional
        The probability source's settings (part of the record's key).
    min_support, rule_error, gain
        Shortcut columns (:func:`~embedstore.datacheck.shortcuts.shortcut_columns`).
    recompute : bool
        Compute (and record again) even when a record exists.
    progress : bool
        Report each step on stderr.

    Returns
    -------
    CheckReport
    """
    models = pick_models(store, dataset, image_model, text_model, modalities)
    snaps = snapshots(store, dataset, models, versions)
    pinned = pinned_versions(snaps)
    probe = dict(probe or {}) if probabilities is not None else None
    settings = check_settings(models, duplicates_on=duplicates_on, k=k, p=p, dims=dims, threshold=threshold,
                              group_columns=group_columns, probe=probe,
                              shortcut_options={"min_support": min_support, "rule_error": rule_error, "gain": gain})
    for m in settings["duplicates"]["on"]:
        if m not in models:
            raise InputError(f"duplicates_on={m!r}: dataset '{dataset}' has no {m} vectors read by this check "
                             f"(read: {sorted(models) or 'none'}); extract them first or pass duplicates_on=")
    key = check_key("check", dataset, pinned, settings)
    if not recompute:
        found = find_record(store, key)
        if found is not None:
            return CheckReport.from_record(found, cached=True)
    steps = _Steps(progress, dataset)
    steps("reading rows and vectors")
    data = read_check_data(snaps, dataset)
    result, flagged = _compute(data, settings, probabilities, steps)
    steps.close()
    result["timings"] = steps.timings
    rec = CheckRecord(key, "check", dataset, pinned, settings, result, flagged)
    save_record(store, rec)
    return CheckReport.from_record(rec, cached=False)


class _Steps:
    """One stderr line per step when asked (a check is a handful of steps, each seconds)."""

    def __init__(self, enabled: bool, dataset: str) -> None:
        import time

        self.enabled, self.dataset, self.t0 = enabled, dataset, time.perf_counter()
        self.timings: dict[str, float] = {}
        self._last: tuple[str, float] | None = None

    def __call__(self, what: str) -> None:
        import sys
        import time

        now = time.perf_counter()
        if self._last is not None:
            self.timings[self._last[0]] = round(now - self._last[1], 3)
        self._last = (what, now)
        if self.enabled:
            print(f"check {self.dataset}: {what} ({now - self.t0:.1f}s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        self("done")


def _compute(data: CheckData, settings: dict[str, Any], probabilities: ProbabilityFn | None,
             steps: _Steps) -> tuple[dict[str, Any], dict[str, Any]]:
    rows, ids = data.rows, data.ids
    splits = split_values(rows)
    flags: dict[int, set[str]] = {}
    notes = [f"{n} row(s) without a current {m} vector ({data.stale.get(m, 0)} stale)"
             for m, n in ((m, data.missing.get(m, 0) + data.stale.get(m, 0)) for m in data.models) if n]

    def flag(i: int, reason: str) -> None:
        flags.setdefault(int(i), set()).add(reason)

    steps("exact and near duplicates")
    exact, near, thresholds = [], [], {}
    opts = settings["duplicates"]
    for modality in opts["on"]:
        hash_col = f"{modality}_sha256"
        for group in dup.exact_duplicates(data.column(hash_col)):
            cols = sorted({c for a in group for b in group if a < b for c in crossing(rows, a, b, splits)})
            exact.append({"modality": modality, "sample_ids": [ids[i] for i in group], "leak_columns": cols,
                          "splits": {c: [splits[c][i] for i in group] for c in splits}})
            for i in group:
                for c in cols:
                    flag(i, f"exact duplicate leak:{c}")
                flag(i, "exact duplicate")
        pos = data.positions[modality]
        found = dup.near_duplicates(data.vectors[modality], k=opts["k"], p=opts["p"], dims=opts["dims"],
                                    threshold=opts["threshold"])
        thresholds[modality] = {"threshold": found.threshold, **found.calibration}
        hashes = data.column(hash_col)
        for i, j, dist, scaled in found.pairs:
            a, b = int(pos[int(i)]), int(pos[int(j)])
            if hashes[a] is not None and hashes[a] == hashes[b]:
                continue  # the same bytes: listed with the exact duplicates
            cols = crossing(rows, a, b, splits)
            near.append({"modality": modality, "a": ids[a], "b": ids[b], "distance": float(dist),
                         "scaled": float(scaled), "leak_columns": cols,
                         "splits": {c: [splits[c][a], splits[c][b]] for c in splits}})
            for x in (a, b):
                for c in cols:
                    flag(x, f"near-duplicate leak:{c}")
                flag(x, "near-duplicate")
    steps("group leaks")
    leaks = group_leaks(rows, settings["group_columns"])
    index = {s: i for i, s in enumerate(ids)}
    for leak in leaks:
        for sid in leak["sample_ids"]:
            flag(index[sid], f"group leak:{leak['split_column']}")
    ranking: list[dict[str, Any]] = []
    if settings["labels"] is not None and probabilities is not None:
        steps("label issues (out-of-fold probabilities)")
        ranking, note = _label_ranking(data, settings["labels"], probabilities)
        notes += [note] if note else []
        for r in ranking:
            if r["issue"]:
                flag(index[r["sample_id"]], "label issue")
    else:
        notes.append("label issues not computed: no probability source (embedstore.trainers.checks.check "
                     "passes the linear probe)")
    steps("shortcut columns")
    sopts = settings["shortcuts"]
    shortcuts = shortcut_columns(rows, min_support=sopts["min_support"], rule_error=sopts["rule_error"],
                                 gain=sopts["gain"])
    prompt_shortcuts = {s["column"]: s["templates"] for s in shortcuts if s["shortcut"] and s.get("templates")}
    counts = {"rows": rows.num_rows, "exact_duplicate_groups": len(exact),
              "exact_duplicate_leaks": sum(bool(e["leak_columns"]) for e in exact),
              "near_duplicate_pairs": len(near), "near_duplicate_leaks": sum(bool(p["leak_columns"]) for p in near),
              "group_leaks": len(leaks), "label_issues": sum(r["issue"] for r in ranking),
              "shortcuts": sum(s["shortcut"] for s in shortcuts)}
    result = {"models": {m: i.model_id for m, i in data.models.items()}, "counts": counts,
              "exact_duplicates": exact, "near_duplicates": near, "thresholds": thresholds, "group_leaks": leaks,
              "label_ranking": ranking, "shortcuts": shortcuts, "prompt_shortcuts": prompt_shortcuts,
              "notes": notes}
    cols = rows.column_names
    flagged = {ids[i]: {"reasons": sorted(reasons), "fingerprint": row_fingerprint(
        {c: rows[c][i].as_py() for c in cols if c in ("image_sha256", "text_sha256", "label")
         or c.startswith(("split_", "label_"))})} for i, reasons in sorted(flags.items())}
    return result, flagged


def _label_ranking(data: CheckData, probe: dict[str, Any],
                   probabilities: ProbabilityFn) -> tuple[list[dict[str, Any]], str | None]:
    """Rows with a label and a vector in every modality read, ranked by out-of-fold label quality."""
    from ..datasets.splits import PREDICT_ONLY
    from .labels import label_issues

    rows = data.paired()
    labels = data.column("label")[rows]
    first_split = sorted(c for c in data.rows.column_names if c.startswith("split_"))
    predict = (data.column(first_split[0])[rows] == PREDICT_ONLY) if first_split else np.zeros(len(rows), bool)
    keep = np.array([lab is not None for lab in labels]) & ~predict
    rows, labels = rows[keep], labels[keep]
    if len(rows) == 0 or not data.models:
        return [], "label issues not computed: no labelled row with a current vector"
    classes = sorted({str(v) for v in labels})
    if len(classes) < 2:
        return [], "label issues not computed: fewer than two classes"
    y = np.array([classes.index(str(v)) for v in labels], dtype=np.int64)
    ids = data.ids[rows]
    groups = (data.column("group_id")[rows] if "group_id" in data.rows.column_names
              else np.full(len(rows), None, dtype=object))
    groups = np.array([g if g else s for g, s in zip(groups, ids)], dtype=object).astype(str)
    x = {m: data.vectors_of(m, rows) for m in sorted(data.models)}
    probs = probabilities(x, y, groups, classes, k=int(probe.get("k", 5)), seed=int(probe.get("seed", 0)))
    return label_issues(ids, y, probs, classes), None
