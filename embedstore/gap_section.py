"""The report's "Modality gap" section: headline numbers with their chance levels, the views before and after.

:func:`gap_section` renders :func:`embedstore.diagnostics.gap_diagnostics`
of a dataset: a few headline numbers and image→text retrieval (on rows the
fitted map never saw) with both chance levels, the 2-D views before and
after; folded, every diagnostic, the 3-D views, the paired cosines and the
store versions behind the numbers.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ._html import embed_png, escape, table
from .plain_names import METHODS

#: The gap numbers shown unfolded (``metric`` labels of :func:`embedstore.diagnostics.report_rows`).
_GAP_HEADLINE = ("gap norm ||mu_img - mu_txt||", "centroid cosine", "paired cos mean", "relative modality gap (RMG)",
                 "modality separability (CV logistic acc.)")


def gap_section(store, dataset: str, report: Any = None, **options: Any) -> tuple[str, int]:
    """HTML of the "Modality gap" section of ``dataset`` and the number of figures it embeds.

    Parameters
    ----------
    store : Store
    dataset : str
    report : GapReport, optional
        Already computed :func:`~embedstore.diagnostics.gap_diagnostics` of
        ``dataset``; used instead of computing it.
    **options
        Passed to :func:`~embedstore.diagnostics.gap_diagnostics` when
        ``report`` is not given (``image_model``, ``text_model``,
        ``alignment_key``, ``lam``, ``max_queries``).

    Returns
    -------
    tuple of (str, int)
    """
    from .diagnostics import gap_diagnostics, report_rows
    from .figures import gap_figures

    rep = report or gap_diagnostics(store, dataset, **options)
    s = rep.settings
    rows = report_rows(rep)
    headline = [r for r in rows if r["metric"] in _GAP_HEADLINE]
    retrieval = _retrieval_rows(rep)
    method = METHODS.get(s.get("method", "gapshift"), s.get("method", "gapshift"))
    parts = ["<h2>Modality gap</h2>",
             f'<p>Image model <code>{escape(rep.image_model)}</code>, text model <code>{escape(rep.text_model)}'
             f"</code>. Before: both L2-normalised"
             f"{' (the narrower interpolated to the wider width)' if s['match'] else ''}"
             f"; after: {escape(method)} with λ={s['lam']:g}, fitted on {escape(s['fit_on'])} rows"
             f" of {escape(s.get('split_column') or 'all splits')}.</p>",
             table(headline + retrieval, ["metric", "before", "after", "chance"]),
             f'<p class="note">Retrieval: {escape(rep.after.retrieval_rows)}; {rep.before.retrieval_queries} queries. '
             "A random ranking finds a query's own text among k candidates k/N of the time; always answering the "
             "k most common texts scores the share of queries whose text is one of them (repeated texts make "
             "this the higher bar).</p>"]
    names = ("before_after", "3d_before", "3d_after", "paired_cosine")
    with tempfile.TemporaryDirectory() as tmp:
        paths = gap_figures(store, rep, tmp, names=names)
        imgs = {name: Path(p).read_bytes() for name, p in paths.items()}
    parts.append(embed_png(imgs["before_after"], "2-D PCA before and after"))
    parts.append("<details><summary>All gap diagnostics, 3-D views, paired cosines and store versions</summary>"
                 + table(rows)
                 + f'<p class="note">Rows: {rep.before.rows}; samples without a pair: {escape(rep.unpaired)}. '
                 f"Alignment <code>{escape(rep.after.alignment_key)}</code> (before: <code>"
                 f"{escape(rep.before.alignment_key)}</code>), match={escape(s['match'])}, "
                 f"noise_std={s['noise_std']:g}, width {s['dim']}.</p>"
                 + '<div class="figs">' + embed_png(imgs["3d_before"], "3-D PCA before")
                 + embed_png(imgs["3d_after"], "3-D PCA after")
                 + "</div>" + embed_png(imgs["paired_cosine"], "paired cosine")
                 + "<h3>Store versions behind these numbers</h3>"
                 + table([{"stage": st.stage, "alignment": st.alignment_key, "versions": st.versions}
                          for st in (rep.before, rep.after)]) + "</details>")
    return "\n".join(parts), len(imgs)


def _retrieval_rows(rep) -> list[dict[str, str]]:
    """Image→text recall@1 and @10 over distinct texts, with both chance levels, before and after."""
    out = []
    for k in (1, 10):
        cells = {}
        for stage in ("before", "after"):
            r = getattr(rep, stage).measures.get("exact_text_recall") or {}
            if k not in r.get("recall", {}):
                return out
            cells[stage] = f"{r['recall'][k]:.3f}"
        r = rep.after.measures["exact_text_recall"]
        common = r.get("most_common", {}).get(k)
        out.append({"metric": f"recall@{k} image→text (exact text, {r['distinct_texts']} distinct texts)",
                    **cells, "chance": f"{r['chance'][k]:.3f} random; "
                    + (f"{common:.3f} always the {k} most common" if common is not None else "")})
    return out
