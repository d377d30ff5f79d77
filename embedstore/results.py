"""The report's first section: the best honest head and the baselines, with intervals.

From the honest runs (not the sweeps) of a dataset:

1. one row per setting (group of runs): test macro-F1 with a 95% bootstrap
   interval over test rows (:func:`embedstore.compare.setting_interval`),
   accuracy mean ± sd, runs (folds × seeds), and beside it the independent
   scikit-learn baseline of the same rows with the paired difference and its
   interval (:func:`embedstore.compare.baseline_cells`);
2. the best setting by mean macro-F1, compared with every other setting on
   the same folds (paired difference and interval, "no evidence of a
   difference" when it covers 0);
3. the best setting's per-class precision / recall / F1 (scikit-learn, on
   its pooled test predictions) and its confusion matrix as a figure.

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
>>> best, images, "Per-class" in html
('good', 1, True)
"""

from __future__ import annotations

import html as _html
import io
from typing import Any, Sequence

import numpy as np

from .stats import format_mean_sd
from .compare import baseline_cells, compare_records, fold_predictions, setting_interval
from .errors import InputError
from .modes import MODES, mode_rules
from .runs import RunRecord, group_runs, list_runs
from .sweep_records import SWEEP_PREFIX


def _e(value: Any) -> str:
    return _html.escape("" if value is None else str(value))


def _rows_html(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="note">(none)</p>'
    cols = list(rows[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_e(r[c])}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _label(recs: Sequence[RunRecord]) -> str:
    first = recs[0]
    cv = first.config.get("cv")
    scale = first.config.get("scale") or {}
    used = [m for m in ("image", "text") if m in first.model_keys] or list(scale)
    scale_txt = ",".join(f"{m}={scale[m]}" for m in used if m in scale) or "none"
    split = f"{cv['k']}-fold CV" if cv else (first.split or "split")
    return f"{first.fusion} ({split}, scale {scale_txt})"


def setting_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per honest setting with recorded test predictions, best mean macro-F1 first."""
    rows = []
    for gid, recs in group_runs([r for r in records if r.mode in MODES and mode_rules(r.mode).tests_once
                                 and not r.group_id.startswith(SWEEP_PREFIX)]).items():
        ci = setting_interval(recs)
        if ci is None:
            continue
        acc = [r.metrics.get("accuracy") for r in recs if r.metrics.get("accuracy") is not None]
        rows.append({"setting": _label(recs), "test macro-F1 (95% CI)": f"{ci[0]:.3f} ({ci[1]:.3f}–{ci[2]:.3f})",
                     "test accuracy": format_mean_sd(acc, digits=3),
                     "runs": len(recs), **baseline_cells(recs), "group": gid, "_f1": ci[0], "_recs": recs})
    return sorted(rows, key=lambda r: -r["_f1"])


def per_class(recs: Sequence[RunRecord]) -> tuple[list[dict[str, Any]], np.ndarray, list[str]]:
    """Per-class precision/recall/F1/support and the confusion matrix of pooled test predictions."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    pairs, k = fold_predictions(recs)
    classes = list(recs[0].metrics.get("classes") or range(k))
    y = np.concatenate([np.tile(yy, len(pa)) for yy, pa, _ in pairs])
    pred = np.concatenate([np.concatenate(pa) for _, pa, _ in pairs])
    labels = list(range(len(classes)))
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    rows = [{"class": c, "precision": f"{p[i]:.3f}", "recall": f"{r[i]:.3f}", "F1": f"{f[i]:.3f}",
             "support": int(n[i])} for i, c in enumerate(classes)]
    return rows, confusion_matrix(y, pred, labels=labels), [str(c) for c in classes]


def results_section(store, dataset: str, records: Sequence[RunRecord] | None = None) -> tuple[str, int, str | None]:
    """``(html, n_images, best group id)`` of the results section (see the module docstring)."""
    import base64

    from .figures import confusion_plot

    records = list_runs(store, dataset) if records is None else list(records)
    rows = setting_rows(records)
    parts = ["<h2>Results</h2>"]
    if not rows:
        parts.append('<p class="note">No honest run with recorded test predictions: train with '
                     "<code>--mode honest</code> (e.g. <code>--cv 5</code>) to see results with intervals.</p>")
        return "".join(parts), 0, None
    best = rows[0]
    parts.append(f'<p class="note">Honest runs only (epoch / C / λ chosen on validation, test touched once). '
                 f"Interval: 95% percentile bootstrap over test rows, per fold. Best head: "
                 f"<b>{_e(best['setting'])}</b>.</p>")
    parts.append(_rows_html([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]))
    diffs = []
    for other in rows[1:]:
        try:
            cmp = compare_records(best["_recs"], other["_recs"])
        except InputError as exc:  # not on the same folds: say so instead of a number
            diffs.append({"best − setting": other["setting"], "difference (95% CI)": "", "verdict": str(exc)[:80]})
            continue
        diffs.append({"best − setting": other["setting"],
                      "difference (95% CI)": f"{cmp.difference:+.3f} ({cmp.low:+.3f} to {cmp.high:+.3f})",
                      "verdict": cmp.verdict})
    if diffs:
        parts.append("<h3>Best head against each other setting (paired, same test rows)</h3>" + _rows_html(diffs))
    cls_rows, conf, classes = per_class(best["_recs"])
    buf = confusion_plot(conf, classes, io.BytesIO(), title=f"{best['setting']}: pooled test predictions")
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    parts.append(f"<h3>Per-class precision / recall / F1 of the best head</h3>{_rows_html(cls_rows)}"
                 f'<img alt="confusion matrix" src="data:image/png;base64,{png}">')
    return "".join(parts), 1, best["group"]
