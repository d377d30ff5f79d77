"""The report's "Data checks" section: counts and the top suspects of the latest ``check``, with thumbnails.

:func:`data_checks_section` reads the most recent ``check`` record of a
dataset (it computes nothing) and renders self-contained HTML: the counts,
the near-duplicate threshold, the near-duplicate pairs that cross splits
(both photos side by side), the most suspect labels (given → suggested),
groups in two splits, shortcut-column warnings, and the recorded runs that
read flagged rows. Thumbnails are inline JPEG data URIs; there are no
scripts and no links, like the rest of the report.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> from embedstore.pairs import toy_pairs
>>> from embedstore.datacheck.check import run_checks
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> _ = toy_pairs(s, "toy", n=60)
>>> "embedstore check toy" in data_checks_section(s, "toy")[0]
True
>>> _ = run_checks(s, "toy")
>>> html, images = data_checks_section(s, "toy")
>>> "Data checks" in html and "near-duplicate" in html, images
(True, 0)
"""

from __future__ import annotations

from .._html import escape, grid
from .records import CheckRecord, flag_summary, flagged_runs, latest_check

TOP = 8
_IMG = '<img alt="{alt}" src="{src}" style="width:56px;height:56px;object-fit:cover;margin:0 2px 0 0">'


def _refs(store, rec: CheckRecord, ids: set[str]) -> dict[str, str]:
    """``{sample_id: image_ref}`` of ``ids`` at the samples version the check read."""
    from ..schema import samples_table
    from ..sql import isin

    table = samples_table(rec.dataset)
    if not ids or not store.has_table(table) or "image_ref" not in store.open_table(table).schema.names:
        return {}
    try:
        rows = store.read(table, version=rec.table_versions.get(table), columns=["sample_id", "image_ref"],
                          where=isin("sample_id", sorted(ids))).to_pylist()
    except Exception:  # the checked version was cleaned up: show the ids without pictures
        return {}
    return {r["sample_id"]: r["image_ref"] for r in rows if r["image_ref"]}


class _Thumbs:
    """Thumbnails of sample ids, counted (the report totals its images)."""

    def __init__(self, refs: dict[str, str]) -> None:
        self.refs, self.count = refs, 0

    def __call__(self, sid: str) -> str:
        from .explore import thumbnail_uri

        uri = thumbnail_uri(self.refs.get(sid))
        if uri is None:
            return escape(sid)
        self.count += 1
        return f'<span class="thumb">{_IMG.format(alt=escape(sid), src=uri)}{escape(sid)}</span>'


def data_checks_section(store, dataset: str, top: int = TOP) -> tuple[str, int]:
    """HTML of the "Data checks" section of ``dataset`` and the number of thumbnails it embeds."""
    rec = latest_check(store, dataset)
    title = "<h2>Data checks</h2>"
    if rec is None:
        return (title + f'<p class="note">No check recorded for this dataset: run <code>embedstore check '
                f"{escape(dataset)}</code> to look for leaks, duplicates, label issues and shortcut columns.</p>", 0)
    res = rec.result
    c = res["counts"]
    leaks = [p for p in res["near_duplicates"] if p["leak_columns"]][:top]
    suspects = res.get("label_ranking", [])[:top]
    thumbs = _Thumbs(_refs(store, rec, {p[k] for p in leaks for k in ("a", "b")} | {s["sample_id"] for s in suspects}))
    models = ", ".join(f"{m} {i}" for m, i in sorted(res["models"].items()))
    versions = ", ".join(f"{t}@{v}" for t, v in sorted(rec.table_versions.items()))
    parts = [title, f'<p class="note">Check <code>{escape(rec.check_id)}</code> of {escape(rec.created_at)} over '
                    f"{c['rows']} rows; models {escape(models)}; store versions {escape(versions)}.</p>"]
    parts.append(grid([
        ["near-duplicate pairs", str(c["near_duplicate_pairs"]), f"{c['near_duplicate_leaks']} across splits"],
        ["exact duplicate groups (same content hash)", str(c["exact_duplicate_groups"]),
         f"{c['exact_duplicate_leaks']} across splits"],
        ["groups (patient, lesion) in two splits", str(c["group_leaks"]), ""],
        ["label issues (cleanlab, out-of-fold probabilities)", str(c["label_issues"]),
         f"of {len(res.get('label_ranking', []))} ranked rows"],
        ["shortcut columns", str(c["shortcuts"]), ", ".join(s["column"] for s in res["shortcuts"] if s["shortcut"])],
    ], ["finding", "n", "detail"]))
    for modality, t in sorted(res.get("thresholds", {}).items()):
        parts.append(f'<p class="note">Near-duplicates ({escape(modality)}): locally scaled distance below '
                     f"{t['threshold']:.3f} ({escape(t.get('source'))} for this model and dataset: intrinsic "
                     f"dimension {t.get('intrinsic_dim', float('nan')):.1f}, {t.get('dims')} whitened components).</p>")
    if leaks:
        parts.append("<h3>Near-duplicates across splits</h3>" + grid(
            [[thumbs(p["a"]), thumbs(p["b"]), f"{p['scaled']:.3f}", escape(", ".join(p["leak_columns"]))]
             for p in leaks],
            ["sample", "near-duplicate", "scaled distance", "different splits in"]))
    if suspects:
        parts.append("<h3>Most suspect labels</h3>" + grid(
            [[thumbs(s["sample_id"]), escape(s["given"]), escape(s["suggested"]), f"{s['quality']:.3f}",
              "yes" if s["issue"] else ""] for s in suspects],
            ["sample", "given label", "suggested", "p(given label)", "flagged"]))
    if res["group_leaks"]:
        parts.append("<h3>Groups in two splits</h3>" + grid(
            [[escape(g["split_column"]), escape(g["group"]),
              escape(", ".join(f"{s} {n}" for s, n in g["splits"].items()))] for g in res["group_leaks"][:top]],
            ["split column", "group", "rows per split"]))
    for s in (s for s in res["shortcuts"] if s["shortcut"]):
        rule = s.get("rule") or {}
        parts.append(f'<p class="banner">Shortcut: column <code>{escape(s["column"])}</code> predicts the label on its '
                     f"own ({escape(s['column'])}={escape(rule.get('value'))} → {escape(rule.get('label'))} in "
                     f"{100 * (rule.get('precision') or 0):.0f} % of {escape(rule.get('support'))} rows)"
                     + (" and is in the prompt: the text vectors carry it." if s["in_prompt"] else ".") + "</p>")
    runs = flagged_runs(store, dataset)
    if runs:
        parts.append(f"<h3>Runs trained on flagged rows ({len(runs)})</h3>" + grid(
            [[f"<code>{escape(r)}</code>", escape(flag_summary(v))] for r, v in sorted(runs.items())[:top]],
            ["run", "flagged rows it read"]))
    parts += [f'<p class="note">{escape(n)}</p>' for n in res.get("notes", [])]
    return "\n".join(parts), thumbs.count
