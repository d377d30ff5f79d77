"""The report's λ sweeps: the alignment-methods figures, each sweep folded, and the gap shift's Results rows.

* :func:`methods_section`: per fusion and mode, one figure with a panel per
  swept method (test macro-F1 against λ with 95 % t intervals over seeds and
  the sweep's no-alignment reference);
* :func:`sweep_section`: one sweep's plot, its selection and its per-λ table
  (paired intervals against no alignment and against λ=0), folded, with the
  run-table rows of its λ=0 and selected λ;
* :func:`gap_shift_entries`: per honest sweep, the λ chosen on validation and
  its reference runs, for :func:`embedstore.results.results_section`.
"""

from __future__ import annotations

import io
from typing import Any

from ._html import embed_png, escape, table
from .modes import mode_rules
from .plain_names import FUSIONS as FUSION_NAMES, METHODS
from .sweep_records import (
    REFERENCE,
    plot_rows,
    select,
    sweep_group_id,
    sweep_method,
    sweep_points,
    sweep_records,
    sweep_reference,
    table_rows,
)


def sweep_section(store, dataset: str, info: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """HTML of one λ sweep (folded) and its rows for the table of every run group.

    Parameters
    ----------
    store : Store
    dataset : str
    info : dict
        One entry of :func:`embedstore.sweep_records.list_sweeps`.

    Returns
    -------
    tuple of (str, list of dict)
        ``("", [])`` when the sweep has no point.
    """
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
    if reference is not None:  # the one "no alignment" row (sweep_records.REFERENCE), as the results table shows it
        text += (f" No alignment (<code>{escape(reference.group_id)}</code>, the mode's default input scaling): "
                 f"test macro-F1 {reference.test_f1:.3f} ± {reference.test_f1_sd or 0.0:.3f} over {reference.seeds} "
                 "seeds; every ΔF1 vs none below is paired with it on the same test rows.")
    rows = [dict(r, **{"store versions": p.table_versions})
            for r, p in zip(table_rows(points, mode, reference), points)]
    method = sweep_method(store, dataset, info["sweep_id"])
    html_part = (f"<details><summary>λ sweep of {escape(FUSION_NAMES.get(fusion, fusion))}, {escape(mode)} "
                 f"protocol, {escape(METHODS.get(method, method))} ({len(points)} λ values, sweep <code>"
                 f"{escape(info['sweep_id'])}</code>, method {escape(method)})</summary>"
                 f"<p>{text}</p>" + embed_png(buf.getvalue(), f"λ sweep {fusion} {mode}") + table(rows)
                 + "</details>")
    extra = []
    picks = [("λ", 0.0)] + ([("selected λ", sel["lam"])] if on_val else
                            [("best-on-test λ", sel["best_acc_lam"])])
    for label, lam in picks:
        p = next((q for q in points if abs(q.lam - lam) < 1e-12), None)
        if p is not None:
            extra.append({"setting": f"{FUSION_NAMES.get(fusion, fusion)}, {METHODS.get(method, method)} "
                                     f"λ={p.lam:+.1f} ({label} of the sweep)",
                          "fusion": fusion, "mode": mode, "alignment": f"sweep {label}={p.lam:g} ({p.alignment_key})",
                          "seeds": p.seeds, "test accuracy": f"{p.test_acc:.4f} ± {p.test_acc_sd:.4f}",
                          "test macro-F1": f"{p.test_f1:.4f} ± {p.test_f1_sd:.4f}", "split": info["split"],
                          "group": p.group_id, "store versions": p.table_versions})
    return html_part, extra


def methods_section(store, dataset: str, sweeps: list[dict[str, Any]]) -> tuple[str, int]:
    """HTML of the method-comparison figures (per fusion and mode, one panel per swept method) and their count.

    Parameters
    ----------
    store : Store
    dataset : str
    sweeps : list of dict
        Entries of :func:`embedstore.sweep_records.list_sweeps`.

    Returns
    -------
    tuple of (str, int)
        ``("", 0)`` when no sweep has a point.
    """
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
        parts.append(f"<h3>{escape(FUSION_NAMES.get(fusion, fusion))}, {escape(mode)} protocol</h3>"
                     + embed_png(buf.getvalue(), f"methods {fusion} {mode}"))
    if not parts:
        return "", 0
    note = (f'<p class="note">Test macro-F1 against λ, one panel per alignment method; bars: 95% t intervals over '
            f"seeds, clipped to [0, 1]; dashed line and band: the sweep's no-alignment runs (same seeds and split), "
            f"the reference the Results table compares the gap shift with. Paired differences ({escape(METHOD)}) "
            f"are in each sweep's table below.</p>")
    return "<h2>Alignment methods: the gap shift and others</h2>" + note + "".join(parts), len(parts)


def gap_shift_entries(store, dataset: str, sweeps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Results table's gap-shift rows: per honest sweep, the λ chosen on validation and its reference runs.

    Parameters
    ----------
    store : Store
    dataset : str
    sweeps : list of dict
        Entries of :func:`embedstore.sweep_records.list_sweeps`; paper-mode
        sweeps are skipped.

    Returns
    -------
    list of dict
        The ``shifts`` of :func:`embedstore.results.results_section`.
    """
    out = []
    for info in sweeps:
        if not mode_rules(info["mode"]).selects_on_val:
            continue
        points = sweep_points(store, dataset, info["sweep_id"])
        sel = select(points, info["mode"])
        pick = next((p for p in points if sel and p.lam == sel.get("lam")), None)
        if pick is None:
            continue
        recs = sweep_records(store, dataset, info["sweep_id"])
        ref_gid = sweep_group_id(info["sweep_id"], REFERENCE)
        method = sweep_method(store, dataset, info["sweep_id"])
        name = (f"{FUSION_NAMES.get(info['fusion'], info['fusion'])}, {METHODS.get(method, method)} "
                f"λ={pick.lam:+.1f} (chosen on validation among {len(points)} λ values)")
        out.append({"name": name, "records": recs[pick.group_id], "group": pick.group_id,
                    "reference": recs.get(ref_gid, []), "reference_group": ref_gid})
    return out
