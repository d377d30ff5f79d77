"""The report's first section: the answer, with intervals, that cannot mislead.

From the honest runs (not the sweeps) of a dataset:

1. one row per setting (group of runs), named in plain words
   (:func:`embedstore.plain_names.setting_name`): test macro-F1 with a 95%
   bootstrap interval over test rows (:func:`embedstore.compare.setting_interval`,
   clipped to [0, 1]), accuracy mean ± sd, runs (folds × seeds), and beside it the
   independent scikit-learn baseline of the same rows with the paired
   difference and its interval (:func:`embedstore.compare.baseline_cells`);
2. the best setting, chosen by mean macro-F1 **only among the settings
   evaluated on the same folds or split and test rows** (the protocol with
   the most settings; :func:`embedstore.plain_names.protocol_of`), never by
   test score across protocols; every other setting of that protocol is
   compared with it on those rows (paired difference and interval, "no
   evidence of a difference" when it covers 0); settings of other protocols
   are listed apart, unranked;
3. the gap shift's effect: each ``shifts`` entry (the λ a sweep chose on
   validation) against the one "no alignment" row of its sweep, paired on
   the same test rows, in the same table;
4. folded: the best setting's per-class precision / recall / F1
   (scikit-learn, on its test predictions pooled over seeds; support counts
   each test row once) and its confusion matrix as a figure.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> from embedstore.runs import RunRecord, new_run_id, record_run
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> y = [0, 1, 1, 0, 1, 0]
>>> for gid, pred in (("good", y), ("bad", [0] * 6)):
...     _ = record_run(s, RunRecord(new_run_id(), "toy", "early", "honest", 0, group_id=gid, split="split_grouped",
...                                 metrics={"macro_f1": 0.5, "accuracy": 0.5, "test_y": y, "test_pred": pred,
...                                          "classes": ["a", "b"]}))
>>> html, images, best = results_section(s, "toy")
>>> best, images, "The best head per class" in html
('good', 1, True)
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from ._html import embed_png, escape, table
from .stats import format_mean_sd
from .compare import baseline_cells, compare_records, fold_predictions, setting_interval
from .errors import InputError
from .modes import MODES, mode_rules
from .plain_names import interval_text, protocol_of, protocol_text, runs_text, setting_name, count_test_rows
from .runs import RunRecord, group_runs, list_runs
from .sweep_records import SWEEP_PREFIX

#: The columns of the top table; cells other rows carry (e.g. an independent baseline's) go between the two.
COLUMNS = ("setting", "test macro-F1 (95% CI)", "test accuracy", "runs")
COMPARISON = ("compared with", "difference (95% CI)", "verdict")


def columns(rows: Sequence[dict[str, Any]], comparison: bool = True) -> list[str]:
    """The top table's columns: :data:`COLUMNS`, every other visible cell of ``rows``, then :data:`COMPARISON`."""
    extra = [k for r in rows for k in r if k not in COLUMNS + COMPARISON and not k.startswith("_") and k != "group"]
    return list(COLUMNS) + list(dict.fromkeys(extra)) + (list(COMPARISON) if comparison else [])


def setting_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per honest setting with recorded test predictions, best mean macro-F1 first."""
    rows = []
    for gid, recs in group_runs([r for r in records if r.mode in MODES and mode_rules(r.mode).tests_once
                                 and not r.group_id.startswith(SWEEP_PREFIX)]).items():
        ci = setting_interval(recs)
        if ci is None:
            continue
        rows.append({**_row(recs, gid, ci), **baseline_cells(recs)})
    return sorted(rows, key=lambda r: -r["_f1"])


def _row(recs: Sequence[RunRecord], gid: str, ci: tuple[float, float, float], name: str | None = None) -> dict[str, Any]:
    acc = [r.metrics.get("accuracy") for r in recs if r.metrics.get("accuracy") is not None]
    return {"setting": name or setting_name(recs), "test macro-F1 (95% CI)": interval_text(*ci),
            "test accuracy": format_mean_sd(acc, digits=3), "runs": runs_text(recs), "group": gid,
            "_f1": ci[0], "_recs": recs, "_protocol": protocol_of(recs), "_created": recs[0].created_at}


def primary_protocol(rows: Sequence[dict[str, Any]]) -> tuple | None:
    """The protocol whose settings are ranked: the most settings, then the most test rows, then the newest."""
    by: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["_protocol"], []).append(r)
    if not by:
        return None
    return max(by, key=lambda p: (len(by[p]), count_test_rows(by[p][0]["_recs"]), max(r["_created"] for r in by[p])))


def _compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str]:
    """``a − b`` on their common test rows: the comparison cells of the top table."""
    try:
        cmp = compare_records(a["_recs"], b["_recs"])
    except InputError as exc:  # not on the same test rows: say so in full instead of a number
        return {"compared with": b["setting"], "difference (95% CI)": "", "verdict": f"not compared: {exc}"}
    if cmp.low > 0:
        verdict = f"better than {b['setting']}"
    elif cmp.high < 0:
        verdict = f"worse than {b['setting']}"
    else:
        verdict = "no evidence of a difference"
    return {"compared with": b["setting"],
            "difference (95% CI)": interval_text(cmp.difference, cmp.low, cmp.high, bounds=(-1.0, 1.0), signed=True),
            "verdict": verdict}


def shift_rows(shifts: Sequence[dict[str, Any]], heads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the gap shift's effect: each shift against its "no alignment" reference, paired.

    ``shifts`` entries hold ``name``, ``records`` (the chosen λ's runs),
    ``reference`` (the no-alignment runs of the same sweep) and optional
    ``group`` ids. A reference identical to a head row (same definition and
    test predictions) is that row; otherwise it gets its own row.
    """
    from .plain_names import definition, predictions_key

    out: list[dict[str, Any]] = []
    known = {(definition(h["_recs"]), predictions_key(h["_recs"])): h for h in heads}
    for sh in shifts:
        ci = setting_interval(sh["records"])
        ref_recs = sh.get("reference") or []
        ref_ci = setting_interval(ref_recs) if ref_recs else None
        if ci is None:
            continue
        row = _row(sh["records"], sh.get("group", ""), ci, sh.get("name"))
        ref = None
        if ref_ci is not None:
            ref = known.get((definition(ref_recs), predictions_key(ref_recs)))
            if ref is None:
                ref = _row(ref_recs, sh.get("reference_group", ""), ref_ci,
                           setting_name(ref_recs) + ", no alignment (the λ sweep's reference runs)")
                ref.update({"compared with": "", "difference (95% CI)": "", "verdict": "reference of the row below"})
                known[(definition(ref_recs), predictions_key(ref_recs))] = ref
                out.append(ref)
            row.update(_compare(row, ref))
        else:
            row.update({"compared with": "", "difference (95% CI)": "",
                        "verdict": "its sweep recorded no no-alignment runs: re-run the sweep to compare"})
        out.append(row)
    return out


def per_class(recs: Sequence[RunRecord]) -> tuple[list[dict[str, Any]], np.ndarray, list[str], str]:
    """Per-class precision/recall/F1/support and the confusion matrix of pooled test predictions.

    Predictions of every seed are pooled (each test row counts once per
    seed in precision, recall, F1 and the confusion matrix); ``support`` counts
    each test row once. The last item says what was pooled.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    pairs, k = fold_predictions(recs)
    classes = list(recs[0].metrics.get("classes") or range(k))
    y = np.concatenate([np.tile(yy, len(pa)) for yy, pa, _ in pairs])
    pred = np.concatenate([np.concatenate(pa) for _, pa, _ in pairs])
    labels = list(range(len(classes)))
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    once = np.bincount(np.concatenate([np.asarray(yy, dtype=np.int64) for yy, _, _ in pairs]),
                       minlength=len(classes))
    rows = [{"class": c, "precision": f"{p[i]:.3f}", "recall": f"{r[i]:.3f}", "F1": f"{f[i]:.3f}",
             "support (test rows)": int(once[i])} for i, c in enumerate(classes)]
    seeds = max(len(pa) for _, pa, _ in pairs)
    folds = len(pairs)
    pooled = (f"{int(once.sum())} test rows" + (f" over {folds} folds" if folds > 1 else "")
              + (f", predictions of {seeds} seeds pooled: each test row counts {seeds} times in precision, recall, "
                 f"F1 and the confusion matrix ({len(y)} predictions)" if seeds > 1 else ""))
    return rows, confusion_matrix(y, pred, labels=labels), [str(c) for c in classes], pooled


def results_section(store, dataset: str, records: Sequence[RunRecord] | None = None,
                    shifts: Sequence[dict[str, Any]] = ()) -> tuple[str, int, str | None]:
    """``(html, n_images, best group id)`` of the results section (see the module docstring)."""
    from .figures import confusion_plot

    records = list_runs(store, dataset) if records is None else list(records)
    rows = setting_rows(records)
    parts = ["<h2>Results</h2>"]
    if not rows:
        parts.append('<p class="note">No honest run with recorded test predictions: train with '
                     "<code>--mode honest</code> (e.g. <code>--cv 5</code>) to see results with intervals.</p>")
        top = shift_rows(shifts, [])
        if top:
            parts.append(_rows_table(top, columns(top)))
        return "".join(parts), 0, None
    primary = primary_protocol(rows)
    ranked = [r for r in rows if r["_protocol"] == primary]
    others = [r for r in rows if r["_protocol"] != primary]
    best = ranked[0]
    best.update({"compared with": "", "difference (95% CI)": "", "verdict": "best head"})
    for other in ranked[1:]:
        other.update(_compare(other, best))
    top = ranked + shift_rows(shifts, ranked)
    for r in top:  # a row tested on other rows than the best head says on which
        if r["_protocol"] != primary:
            r["runs"] = f"{r['runs']} ({protocol_text(r['_recs']).rsplit(', ', 1)[0]})"
    n_rows = count_test_rows(best["_recs"])
    behind = [r["setting"] for r in ranked[1:] if r["verdict"].startswith("worse")]
    tied = [r["setting"] for r in ranked[1:] if r["verdict"] == "no evidence of a difference"]
    answer = (f"Best head: <b>{escape(best['setting'])}</b>, test macro-F1 "
              f"{escape(best['test macro-F1 (95% CI)'])}, on {escape(protocol_text(best['_recs']))} ({n_rows} test "
              f"rows). Chosen by mean test macro-F1 among the {len(ranked)} "
              f"setting{'s' if len(ranked) != 1 else ''} evaluated on these same test rows"
              + (f"; {len(others)} other setting{'s' if len(others) != 1 else ''} tested on other rows "
                 "are listed below, not ranked" if others else "") + ". "
              + (f"It is ahead, beyond the noise, of {_names(behind)}. " if behind else "")
              + (f"No evidence that it beats {_names(tied)}." if tied else ""))
    parts.append(f'<p class="answer">{answer}</p>')
    parts.append(_rows_table(top, columns(top)))
    parts.append('<p class="note">Honest runs only (epoch, C and λ chosen on validation; test touched once). '
                 "Intervals: 95% percentile bootstrap over test rows, per fold, clipped to [0, 1]; differences: "
                 "the row minus the setting it is compared with, paired on the same test rows (the same bootstrap "
                 "resamples). \"No evidence of a difference\" means the interval covers 0.</p>")
    if others:
        for r in others:
            r["runs"] = protocol_text(r["_recs"])
        parts.append("<h3>Settings tested on other rows (not ranked against the best head)</h3>"
                     + _rows_table(others, columns(others, comparison=False)))
    cls_rows, conf, classes, pooled = per_class(best["_recs"])
    buf = confusion_plot(conf, classes, io.BytesIO(), title=f"{best['setting']}: test predictions"
                         + (f", {len({r.seed for r in best['_recs']})} seeds pooled"
                            if len({r.seed for r in best["_recs"]}) > 1 else ""))
    parts.append(f"<details><summary>The best head per class: precision, recall, F1 and confusion matrix</summary>"
                 f'<p class="note">{escape(pooled)}.</p>{table(cls_rows, render=escape)}'
                 f'{embed_png(buf.getvalue(), "confusion matrix")}</details>')
    return "".join(parts), 1, best["group"]


def _names(names: Sequence[str]) -> str:
    """``<i>a</i>, <i>b</i> and <i>c</i>`` (the names hold commas themselves)."""
    items = [f"<i>{escape(n)}</i>" for n in names]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _rows_table(rows: Sequence[dict[str, Any]], cols: Sequence[str]) -> str:
    """The table of ``rows`` without their hidden keys; its cells are text already, escaped as they are."""
    return table([{k: v for k, v in r.items() if not k.startswith("_") and k != "group"} for r in rows], cols,
                 render=escape)
