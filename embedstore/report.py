"""One self-contained HTML report of a dataset's gap, runs and λ sweeps.

:func:`write_report` writes a single ``.html`` file with no external
reference: figures are embedded as ``data:image/png;base64`` URIs, styles are
inline, there are no scripts and no links. It holds

* the gap diagnostics before and after an alignment
  (:func:`embedstore.diagnostics.gap_diagnostics`) and their figures;
* the run comparison table read from the ``runs`` table: one row per
  group of seeds (fusion early/late/image/text, mode paper/honest, with or
  without alignment), plus the λ=0 and reported λ of each sweep;
* the method comparison: one figure per fusion and mode, one panel per
  swept alignment method (test macro-F1 against λ with 95 % t intervals
  over seeds, and the sweep's no-alignment reference);
* each λ sweep: its plot and per-λ table (with paired intervals against no
  alignment and against λ=0);
* optionally, predictions of a few samples by stored heads (the demo's
  held-back samples: sample, true label, predicted label, probability);
* the data checks of the latest ``embedstore check`` (:mod:`embedstore.datacheck.section`);
* the store table versions behind every number.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import InputError, NotFoundError
from .formats import ToDict
from .keys import NO_ALIGNMENT
from .modes import mode_rules
from .runs import RunRecord, group_runs, list_runs
from .stats import format_mean_sd
from .sweep_records import (
    SWEEP_PREFIX,
    list_sweeps,
    plot_rows,
    select,
    sweep_method,
    sweep_points,
    sweep_reference,
    table_rows,
)

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}code,.v{font-family:ui-monospace,monospace;font-size:12px}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}.note{color:#555;font-size:13px}
.banner{background:#fff4c2;border:2px solid #e0b000;padding:.6em 1em;font-weight:600}
.figs{display:flex;flex-wrap:wrap;gap:8px}.figs img{max-width:48%}"""


@dataclass(frozen=True)
class ReportResult(ToDict):
    """What :func:`write_report` wrote."""

    path: str
    images: int
    run_groups: int
    sweeps: int
    gap: bool


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return '<p class="note">(none)</p>'
    columns = list(columns or rows[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return '<span class="v">' + "<br>".join(f"{_e(k)}@{_e(v)}" for k, v in sorted(value.items())) + "</span>"
    return _e(value)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _lam_of(store, keys: dict[str, str]) -> str:
    aligned = sorted({k for k in keys.values() if k and k != NO_ALIGNMENT})
    if not aligned:
        return "none"
    out = []
    for key in aligned:
        try:
            s = store.alignment(key).settings
            out.append(f"λ={s['lam']:g} ({s['fit_on']}) {key}")
        except NotFoundError:  # an alignment missing from the registry: show the key only
            out.append(key)
    return "; ".join(out)


def comparison_rows(store, records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per group of seeds, sorted by fusion, mode and alignment."""
    rows = []
    for gid, recs in group_runs(records).items():
        first = recs[0]
        rows.append({"fusion": first.fusion, "mode": first.mode, "alignment": _lam_of(store, first.alignment_keys),
                     "seeds": len(recs), "test accuracy": format_mean_sd([r.metrics.get("accuracy") for r in recs]),
                     "test macro-F1": format_mean_sd([r.metrics.get("macro_f1") for r in recs]),
                     "split": first.split, "group": gid, "store versions": first.table_versions})
    return _sorted(rows)


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"early": 0, "late": 1, "image": 2, "text": 3}
    return sorted(rows, key=lambda r: (order.get(r["fusion"], 9), r["mode"], r["alignment"] != "none",
                                       r["alignment"], r["group"]))


def _gap_section(store, dataset: str, kwargs: dict[str, Any]) -> tuple[str, int]:
    from .diagnostics import gap_diagnostics, report_rows
    from .figures import gap_figures

    rep = kwargs.pop("report", None) or gap_diagnostics(store, dataset, **kwargs)
    s = rep.settings
    parts = ["<h2>Modality gap</h2>",
             f'<p>Image model <code>{_e(rep.image_model)}</code> ({_e(s["image_model_key"])}), text model '
             f'<code>{_e(rep.text_model)}</code> ({_e(s["text_model_key"])}). Alignment '
             f'<code>{_e(rep.after.alignment_key)}</code>: λ={s["lam"]:g}, gap fitted on {_e(s["fit_on"])} rows'
             f' ({_e(s.get("split_column") or "all splits")}), match={_e(s["match"])}, '
             f'noise_std={s["noise_std"]:g}, width {s["dim"]}. "Before" is the same pipeline with λ=0 '
             f'(L2-normalised{", interpolated" if s["match"] else ""}).</p>',
             _table(report_rows(rep)),
             f'<p class="note">Rows: {rep.before.rows}; retrieval and kNN over {rep.before.retrieval_queries} '
             f'queries; samples without a pair: {_e(rep.unpaired)}.</p>',
             "<h3>Store versions behind these numbers</h3>",
             _table([{"stage": st.stage, "alignment": st.alignment_key, "versions": st.versions}
                     for st in (rep.before, rep.after)])]
    with tempfile.TemporaryDirectory() as tmp:
        paths = gap_figures(store, rep, tmp)
        imgs = {name: Path(p).read_bytes() for name, p in paths.items()}
    parts.append('<div class="figs">' + "".join(_img(imgs[n], n) for n in
                                                ("2d_before", "2d_after", "3d_before", "3d_after")) + "</div>")
    parts.append(_img(imgs["before_after"], "before and after") + _img(imgs["paired_cosine"], "paired cosine"))
    return "\n".join(parts), len(imgs)


def _sweep_section(store, dataset: str, info: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    from .figures import sweep_plot

    points = sweep_points(store, dataset, info["sweep_id"])
    if not points:
        return "", []
    mode, fusion = info["mode"], info["fusion"]
    reference = sweep_reference(store, dataset, info["sweep_id"])
    sel = select(points, mode, reference)
    buf = io.BytesIO()
    on_val = mode_rules(mode).selects_on_val
    marker = {f"{fusion} test": sel["lam"]} if on_val else None
    sweep_plot(plot_rows(points, fusion, mode), buf, selected=marker, title=f"{dataset} {fusion} ({mode})")
    if on_val:
        text = (f"λ selected on mean validation macro-F1: <b>{sel['lam']:+.2f}</b>; test at that λ: accuracy "
                f"{sel['test_acc']:.4f} ± {sel['test_acc_sd']:.4f}, macro-F1 {sel['test_f1']:.4f} ± "
                f"{sel['test_f1_sd']:.4f}.")
    else:
        text = (f"Paper selection (best on test, optimistic): best accuracy {sel['best_acc']:.4f} at λ="
                f"{sel['best_acc_lam']:+.2f}; best F1 (at the best-accuracy epoch) {sel['best_f1']:.4f} at λ="
                f"{sel['best_f1_lam']:+.2f}.")
    rows = [dict(r, **{"store versions": p.table_versions})
            for r, p in zip(table_rows(points, mode, reference), points)]
    method = sweep_method(store, dataset, info["sweep_id"])
    html_part = (f"<h3>Sweep <code>{_e(info['sweep_id'])}</code>: {_e(fusion)} fusion, {_e(mode)} mode, "
                 f"method {_e(method)}</h3>"
                 f"<p>{text}</p>" + _img(buf.getvalue(), f"λ sweep {fusion} {mode}") + _table(rows))
    extra = []
    picks = [("λ", 0.0)] + ([("selected λ", sel["lam"])] if on_val else
                            [("best-on-test λ", sel["best_acc_lam"])])
    for label, lam in picks:
        p = next((q for q in points if abs(q.lam - lam) < 1e-12), None)
        if p is not None:
            extra.append({"fusion": fusion, "mode": mode, "alignment": f"sweep {label}={p.lam:g} ({p.alignment_key})",
                          "seeds": p.seeds, "test accuracy": f"{p.test_acc:.4f} ± {p.test_acc_sd:.4f}",
                          "test macro-F1": f"{p.test_f1:.4f} ± {p.test_f1_sd:.4f}", "split": info["split"],
                          "group": p.group_id, "store versions": p.table_versions})
    return html_part, extra


def _thumbnail(ref: str | None) -> str:
    """A small inline PNG of the sample's image ('' when it has none or it cannot be read now)."""
    if not ref:
        return ""
    from .images import load_image

    try:
        img = load_image(ref)
    except (InputError, OSError):
        return ""
    img.thumbnail((64, 64))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _img(buf.getvalue(), "sample")


def predictions_section(predictions: dict[str, Any]) -> tuple[str, int]:
    """HTML of a predictions section (see :func:`write_report`) and the thumbnails it embeds."""
    cols = ["sample", "true label", "predicted", "probability"]
    rows, images = [], 0
    for r in predictions.get("rows", []):
        thumb = _thumbnail(r.get("image_ref"))
        images += bool(thumb)
        cells = [thumb + "<br>" + _e(r["sample"]) if thumb else _e(r["sample"]),
                 _e("unknown" if r.get("true label") is None else r["true label"]), _e(r["predicted"]),
                 _cell(r["probability"])]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body = (f"<table><tr>{''.join(f'<th>{_e(c)}</th>' for c in cols)}</tr>{''.join(rows)}</table>" if rows
            else '<p class="note">(none)</p>')
    title = predictions.get("title", "Predictions")
    return f"<h2>{_e(title)}</h2><p class=\"note\">{_e(predictions.get('note', ''))}</p>" + body, images


def _method_section(store, dataset: str, sweeps: list[dict[str, Any]]) -> tuple[str, int]:
    """The method-comparison figures: per (fusion, mode), one panel per swept method."""
    from .figures import method_comparison_plot
    from .sweep_intervals import METHOD, comparison_panel

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for info in sweeps:
        points = sweep_points(store, dataset, info["sweep_id"])
        if not points:
            continue
        reference = sweep_reference(store, dataset, info["sweep_id"])
        sel = select(points, info["mode"])
        label = sweep_method(store, dataset, info["sweep_id"])
        panels = groups.setdefault((info["fusion"], info["mode"]), {})
        if label in panels:
            label = f"{label} ({info['sweep_id']})"
        panels[label] = comparison_panel(points, reference, sel.get("lam"))
    parts = []
    for (fusion, mode), panels in sorted(groups.items()):
        buf = io.BytesIO()
        method_comparison_plot(panels, buf, title=f"{dataset} {fusion} ({mode})")
        parts.append(f"<h3>{_e(fusion)} fusion, {_e(mode)} mode</h3>" + _img(buf.getvalue(),
                                                                               f"methods {fusion} {mode}"))
    if not parts:
        return "", 0
    note = (f'<p class="note">Test macro-F1 against λ, one panel per alignment method; bars: 95% t intervals over '
            f"seeds; dashed line and band: the sweep's no-alignment reference (same seeds and split). Paired "
            f"differences ({_e(METHOD)}) are in each sweep's table below.</p>")
    return "<h2>Alignment methods</h2>" + note + "".join(parts), len(parts)


def write_report(store, dataset: str, out: str | Path, *, runs: Sequence[str] | None = None,
                 image_model: str | None = None, text_model: str | None = None,
                 alignment_key: str | None = None, lam: float = 1.0, max_queries: int = 1000,
                 gap: bool = True, banner: str | None = None, gap_report: Any = None,
                 predictions: dict[str, Any] | None = None) -> ReportResult:
    """Write the HTML report of ``dataset`` to ``out``.

    Parameters
    ----------
    store : Store
    dataset : str
    out : path
        The ``.html`` file to write.
    runs : sequence of str, optional
        Run ids, group ids or sweep ids to include (default: every run of
        the dataset).
    image_model, text_model, alignment_key, lam
        The alignment whose gap is diagnosed (see
        :func:`~embedstore.diagnostics.gap_diagnostics`). Without them the
        models of the most recent run that used both modalities are taken.
    gap : bool
        Include the gap section.
    banner : str, optional
        Text shown in a highlighted box under the title (e.g. "SYNTHETIC DATA").
    gap_report : GapReport, optional
        Already computed :func:`~embedstore.diagnostics.gap_diagnostics` of
        this dataset; used instead of computing it again.
    predictions : dict, optional
        A "Predictions" section: ``title``, ``note`` and ``rows`` with
        ``sample``, ``true label``, ``predicted``, ``probability`` and an
        optional ``image_ref`` (shown as a thumbnail), e.g. from
        :func:`embedstore.trainers.demo_predict.predict_held_back`.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.pairs import toy_pairs
    >>> d = tempfile.mkdtemp()
    >>> s = Store(d + "/s")
    >>> img, txt = toy_pairs(s, "toy", n=20)
    >>> write_report(s, "toy", d + "/r.html", image_model=img, text_model=txt, max_queries=5).images
    6
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"report target {out}: the file name must end in .html")
    records = list_runs(store, dataset)
    if runs:
        wanted = set(runs)
        records = [r for r in records if r.run_id in wanted or r.group_id in wanted
                   or r.group_id.split(".", 1)[0] in wanted]
    sweeps = [s for s in list_sweeps(store, dataset)
              if not runs or any(r.group_id.startswith(s["sweep_id"] + ".") for r in records)]
    plain = [r for r in records if not r.group_id.startswith(SWEEP_PREFIX)]
    if not (image_model and text_model) and not alignment_key:
        both = [r for r in records if {"image", "text"} <= set(r.model_keys)]
        if both:
            image_model, text_model = both[-1].model_keys["image"], both[-1].model_keys["text"]
    from .results import results_section

    results_html, images, _ = results_section(store, dataset, plain)
    sections, extra_rows = [results_html], []
    if gap_report is not None:
        image_model, text_model = gap_report.settings["image_model_key"], gap_report.settings["text_model_key"]
    if gap and (alignment_key or (image_model and text_model)):
        part, n = _gap_section(store, dataset, {"image_model": image_model, "text_model": text_model,
                                                "alignment_key": alignment_key, "lam": lam,
                                                "max_queries": max_queries, "report": gap_report})
        sections.append(part)
        images += n
    elif gap:
        sections.append('<h2>Modality gap</h2><p class="note">No models given and no run with both modalities: '
                        "pass image and text models to include the gap diagnostics.</p>")
    sweep_parts = []
    for info in sweeps:
        part, extra = _sweep_section(store, dataset, info)
        if part:
            sweep_parts.append(part)
            extra_rows += extra
            images += 1
    method_part, n_method = _method_section(store, dataset, sweeps)
    images += n_method
    comp = _sorted(comparison_rows(store, plain) + extra_rows)
    sections.append("<h2>Run comparison</h2><p class=\"note\">Mean ± sd over seeds of the test metrics. Paper "
                    "mode picks the epoch on test (optimistic, as the paper did); honest mode picks it on "
                    "validation and touches test once. Store versions are the exact table versions the runs "
                    "read.</p>" + _table(comp))
    if method_part:
        sections.append(method_part)
    sections.append("<h2>λ sweeps</h2>" + ("".join(sweep_parts) or '<p class="note">(no sweep recorded)</p>'))
    if predictions is not None:
        part, n = predictions_section(predictions)
        sections.append(part)
        images += n
    from .datacheck.section import data_checks_section

    part, n = data_checks_section(store, dataset)
    sections.append(part)
    images += n
    from . import __version__

    head = (f"<h1>embedstore report: {_e(dataset)}</h1><p class=\"note\">Store <code>{_e(store.uri)}</code>; "
            f"generated {_e(time.strftime('%Y-%m-%d %H:%M:%S'))} by embedstore {_e(__version__)}; "
            f"{len(records)} runs in {len({r.group_id for r in records})} groups.</p>")
    if banner:
        head += f'<p class="banner">{_e(banner)}</p>'
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>embedstore report: {_e(dataset)}'
           f"</title><style>{_CSS}</style></head><body>{head}{''.join(sections)}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return ReportResult(str(out), images, len({r["group"] for r in comp}), len(sweep_parts),
                        bool(gap and (alignment_key or (image_model and text_model))))
