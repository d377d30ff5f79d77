"""Alignment methods compared on real and synthetic data (issue 19's acceptance table).

For each method of :mod:`embedstore.transforms` (λ chosen on validation
macro-F1 by an honest ``sweep --method``, grid ``--lambdas``), on the
test split: image→text recall@1/@10 over distinct texts (a hit = the
retrieved text equals the paired text) with its chance level, RMG and
paired cosine; and the honest test macro-F1 of early and late fusion with
two paired intervals against no alignment, trained by the sweep on the same
split with the same seeds: a Student t interval over seeds
(:mod:`embedstore.sweep_intervals`) and a percentile bootstrap over test
rows (:func:`embedstore.compare.compare_settings`).

Usage::

    python benchmarks/methods.py --datasets dev270,synthetic   # writes benchmarks/results/methods.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import machine, machine_md, md_table  # noqa: E402

IMAGE, TEXT = "builtin:efficientnet-lite0", "builtin:minilm-l6"
METHOD_OPTS = {"gapshift": {}, "center": {}, "standardize": {}, "whiten": {"n_components": 32},
               "procrustes": {"n_components": 32}, "cca": {"n_components": 16}}


def prepare(store, ds: str, work: Path) -> None:
    from embedstore.extract import extract
    from embedstore.ingest import ingest
    from embedstore.synthetic import make_synthetic

    if ds in store.datasets():
        return
    if ds == "dev270":
        root = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", "/work/shared/data")) / "ham10000-dev270"
        ingest(store, "ham10000", root, name=ds, progress=False)
    else:
        syn = make_synthetic(work / ds, n=400)
        ingest(store, "manifest", syn.root, name=ds, progress=False, id_column="sample_id", group_column="group",
               text_column="text")
    extract(store, ds, IMAGE, modality="image", progress=False)
    extract(store, ds, TEXT, modality="text", progress=False)


def test_measures(store, ds: str, key: str, dim: int, split_col: str) -> dict[str, float]:
    from embedstore.gap_measures import exact_text_recall, relative_modality_gap
    from embedstore.pairs import paired_sources

    from embedstore.alignment import l2_normalize, interp_rows

    kw = {} if key is None else {"alignment_key": key, "dim": dim}
    src = paired_sources(store, ds, IMAGE, TEXT, split_by=split_col[len("split_"):], **kw)
    t = np.asarray(src.splits) == "test"
    img, txt = l2_normalize(src.image_vectors[t]), l2_normalize(src.text_vectors[t])
    if img.shape[1] != txt.shape[1]:  # unaligned: compare at the wider width, as the alignments do
        width = max(img.shape[1], txt.shape[1])
        img, txt = l2_normalize(interp_rows(img, width)), l2_normalize(interp_rows(txt, width))
    r = exact_text_recall(img, txt, np.asarray(src.text_hashes)[t], ks=(1, 10))
    return {"r1": r["recall"][1], "r10": r["recall"][10], "c1": r["chance"][1], "c10": r["chance"][10],
            "rmg": relative_modality_gap(img, txt),
            "cos": float(np.einsum("ij,ij->i", img, txt).mean() / 1.0)}


def run(store, ds: str, seeds: int, epochs: int, lambdas: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """One row per method; and the raw numbers (for the summary) keyed by method and fusion."""
    from embedstore.compare import compare_settings
    from embedstore.sweep_intervals import point_interval
    from embedstore.trainers.sweep import sweep

    split_col = store.split_column(ds, None)
    rows, raw, norm = [], {}, {}
    for method, opts in METHOD_OPTS.items():
        cells = {"method": method}
        for fusion in ("early", "late"):
            res = sweep(store, ds, image_model=IMAGE, text_model=TEXT, fusion=fusion, lambdas=lambdas, seeds=seeds,
                        epochs=epochs, method=method, progress=False, out=None, **opts)
            lam = res.selection["lam"]
            point = next(p for p in res.points if p.lam == lam)
            if method == "gapshift":  # λ=0 of the mean shift: L2 normalisation (and width matching) alone
                norm[fusion] = next(p for p in res.points if p.lam == 0.0)
            t_iv = point_interval(point, res.reference)
            boot = compare_settings(store, point.group_id, res.reference.group_id)
            t_norm = point_interval(point, norm[fusion]) if point.group_id != norm[fusion].group_id else None
            raw[(method, fusion)] = {"f1": point.test_f1, "none": res.reference.test_f1, "t": t_iv, "boot": boot,
                                     "lam": lam, "t_norm": t_norm,
                                     "norm_vs_none": point_interval(norm[fusion], res.reference)}
            cells[f"{fusion} F1 (λ)"] = f"{point.test_f1:.3f} (λ={lam:g})"
            cells[f"{fusion} Δ vs none, t [95% CI]"] = t_iv.text()
            cells[f"{fusion} Δ vs none, bootstrap [95% CI]"] = (f"{boot.difference:+.3f} [{boot.low:+.3f}, "
                                                                 f"{boot.high:+.3f}]")
            cells[f"{fusion} Δ vs L2 norm only, t [95% CI]"] = t_norm.text() if t_norm else "(is it)"
            if fusion == "early":
                dim = int(store.alignment(point.alignment_key).settings["dim"])
                m = test_measures(store, ds, point.alignment_key, dim, split_col)
        cells.update(_measure_cells(m))
        rows.append(cells)
        raw[method] = m
        print(cells, flush=True)
    rows.insert(0, {"method": "none (no alignment)", **{k: "" for k in rows[0] if k != "method"}})
    for fusion in ("early", "late"):
        rows[0][f"{fusion} F1 (λ)"] = f"{raw[('gapshift', fusion)]['none']:.3f}"
    m = raw["none"] = test_measures(store, ds, None, None, split_col)
    rows[0].update(_measure_cells(m))
    return rows, raw


def _measure_cells(m: dict[str, float]) -> dict[str, str]:
    return {"R@1 (chance)": f"{m['r1']:.3f} ({m['c1']:.3f})", "R@10 (chance)": f"{m['r10']:.3f} ({m['c10']:.3f})",
            "RMG": f"{m['rmg']:.3f}", "paired cos": f"{m['cos']:.3f}"}


def verdicts(raw: dict[Any, Any]) -> list[str]:
    """One plain sentence per method: does it help early/late fusion, by how much, and retrieval."""
    out = []
    for method in METHOD_OPTS:
        parts = []
        for fusion in ("early", "late"):
            r = raw[(method, fusion)]
            b = r["boot"]
            t = r["t"]
            sure = t.low is not None and (t.low > 0 or t.high < 0) and (b.low > 0 or b.high < 0)
            word = ("helps" if t.difference > 0 else "hurts") if sure else "no clear effect on"
            vs_norm = f"; vs L2 normalisation alone {r['t_norm'].text()}" if r["t_norm"] else ""
            parts.append(f"{word} {fusion} fusion (λ={r['lam']:g}: Δ macro-F1 vs none {t.text()} over seeds, "
                         f"bootstrap [{b.low:+.3f}, {b.high:+.3f}]{vs_norm})")
        m, none = raw[method], raw["none"]
        parts.append(f"image→text R@10 {m['r10']:.3f} vs {none['r10']:.3f} unaligned (chance {m['c10']:.3f})")
        out.append(f"- **{method}**: " + "; ".join(parts) + ".")
    return out


def _sign(iv: Any) -> int:
    """+1 / −1 when the t interval excludes 0 above / below, else 0."""
    if iv is None or iv.low is None:
        return 0
    return 1 if iv.low > 0 else -1 if iv.high < 0 else 0


def summary(raws: dict[str, dict[Any, Any]]) -> list[str]:
    """The plain finding per method over every dataset: against no alignment and beyond L2 normalisation."""
    lines, helps, hurts = [], [], []
    for method in METHOD_OPTS:
        cells, beyond = [], []
        for ds, raw in raws.items():
            for fusion in ("early", "late"):
                r = raw[(method, fusion)]
                norm = r["t_norm"]
                cells.append(f"{ds} {fusion} {r['t'].text()} vs none"
                             + (f", {norm.text()} vs L2 norm" if norm else ""))
                beyond.append(_sign(norm))
            m, none = raw[method], raw["none"]
            cells.append(f"{ds} R@10 {m['r10']:.3f} (unaligned {none['r10']:.3f}, chance {m['c10']:.3f})")
        if method == "gapshift":
            verdict = "the reference for 'beyond normalisation' (its λ=0)"
        elif any(b < 0 for b in beyond) and not any(b > 0 for b in beyond):
            verdict = f"hurts beyond L2 normalisation in {sum(b < 0 for b in beyond)} of {len(beyond)} cases"
        elif any(b > 0 for b in beyond):
            verdict = f"helps beyond L2 normalisation in {sum(b > 0 for b in beyond)} of {len(beyond)} cases"
        else:
            verdict = "no effect beyond L2 normalisation (every interval covers 0)"
        lines.append(f"- **{method}**: {verdict}. " + "; ".join(cells) + ".")
        if method != "gapshift":
            (helps if any(b > 0 for b in beyond) else hurts if any(b < 0 for b in beyond) else []).append(method)
    head = (f"Beyond L2 normalisation (the mean shift's λ=0), methods that help honest macro-F1: "
            f"{', '.join(helps) or 'none'}; that hurt it somewhere: {', '.join(hurts) or 'none'}; the rest change "
            "nothing measurable. L2 normalisation alone against raw unaligned vectors: "
            + "; ".join(f"{ds} {f} {raw[('gapshift', f)]['norm_vs_none'].text()}" for ds, raw in raws.items()
                        for f in ("early", "late")) + ".")
    return [head, ""] + lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None)
    ap.add_argument("--datasets", default="dev270,synthetic")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lambdas", default="0,0.5,1", help="λ grid of every sweep (chosen on validation)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "methods.md"))
    args = ap.parse_args()
    from embedstore import Store

    work = Path(tempfile.mkdtemp(prefix="embedstore-methods-"))
    print(f"store: {args.store or work / 'store'}", flush=True)
    store = Store(args.store or work / "store")
    parts = [f"# Alignment methods (issue 19)\n\n{machine_md(machine())}\n",
             f"seeds {args.seeds}, epochs {args.epochs}, λ ∈ {{{args.lambdas}}} chosen on validation macro-F1 "
             "(honest sweep, fit on train rows only); retrieval, RMG and paired cosine on the test split at the "
             "early-fusion λ; Δ = selected λ − no alignment (same split, same seeds), as a paired t interval over "
             "seeds and as a paired bootstrap over test rows. A method 'helps' only when both intervals exclude 0.\n"]
    raws = {}
    for ds in args.datasets.split(","):
        prepare(store, ds, work)
        rows, raws[ds] = run(store, ds, args.seeds, args.epochs, args.lambdas)
        parts.append(f"## {ds}\n\n" + "\n".join(verdicts(raws[ds])) + "\n\n"
                     + md_table(list(rows[1]), [[r.get(c, "") for c in rows[1]] for r in rows]) + "\n")
        Path(args.out).write_text("\n".join(parts))
    parts.insert(2, "## Summary (Δ test macro-F1, paired t interval over seeds)\n\n" + "\n".join(summary(raws))
                 + "\n")
    Path(args.out).write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
