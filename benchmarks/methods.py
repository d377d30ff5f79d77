"""Alignment methods compared on real and synthetic data (issue 19's acceptance table).

For each method of :mod:`embedstore.transforms` (λ chosen on validation
macro-F1 by an honest ``sweep --method``; λ ∈ {0, 1} to keep it small), on the
test split: image→text recall@1/@10 over distinct texts (a hit = the
retrieved text equals the paired text) with its chance level, RMG and
paired cosine; and the honest test macro-F1 of early and late fusion with a
paired bootstrap interval against no alignment (the same split, same seeds).

Usage::

    python benchmarks/methods.py --datasets dev270,synthetic   # writes benchmarks/results/methods.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

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

    src = paired_sources(store, ds, IMAGE, TEXT, split_by=split_col[len("split_"):], alignment_key=key, dim=dim)
    t = np.asarray(src.splits) == "test"
    img, txt = src.image_vectors[t], src.text_vectors[t]
    r = exact_text_recall(img, txt, np.asarray(src.text_hashes)[t], ks=(1, 10))
    return {"r1": r["recall"][1], "r10": r["recall"][10], "c1": r["chance"][1], "c10": r["chance"][10],
            "rmg": relative_modality_gap(img, txt),
            "cos": float(np.einsum("ij,ij->i", img, txt).mean() / 1.0)}


def run(store, ds: str, seeds: int, epochs: int) -> list[dict[str, str]]:
    from embedstore.compare import compare_settings
    from embedstore.sweeps import sweep_group_id
    from trainers.sweep import sweep
    from trainers.train import train

    split_col = store.split_column(ds, None)
    base = {f: train(store, ds, image_model=IMAGE, text_model=TEXT, fusion=f, seeds=seeds, epochs=epochs,
                     scale="none").group_id for f in ("early", "late")}
    rows = []
    for method, opts in METHOD_OPTS.items():
        cells = {"method": method}
        for fusion in ("early", "late"):
            res = sweep(store, ds, image_model=IMAGE, text_model=TEXT, fusion=fusion, lambdas="0,1", seeds=seeds,
                        epochs=epochs, method=method, progress=False, out=None, **opts)
            lam = res.selection["lam"]
            point = next(p for p in res.points if p.lam == lam)
            cmp = compare_settings(store, sweep_group_id(res.sweep_id, point.alignment_key), base[fusion])
            cells[f"{fusion} F1 (λ)"] = f"{cmp.mean_a:.3f} (λ={lam:g})"
            cells[f"{fusion} Δ vs none [95% CI]"] = f"{cmp.difference:+.3f} [{cmp.low:+.3f}, {cmp.high:+.3f}]"
            if fusion == "early":
                dim = int(store.alignment(point.alignment_key).settings["dim"])
                m = test_measures(store, ds, point.alignment_key, dim, split_col)
        cells.update({"R@1 (chance)": f"{m['r1']:.3f} ({m['c1']:.3f})", "R@10 (chance)": f"{m['r10']:.3f} "
                      f"({m['c10']:.3f})", "RMG": f"{m['rmg']:.3f}", "paired cos": f"{m['cos']:.3f}"})
        rows.append(cells)
        print(cells, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None)
    ap.add_argument("--datasets", default="dev270,synthetic")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "methods.md"))
    args = ap.parse_args()
    from embedstore import Store

    work = Path(tempfile.mkdtemp(prefix="embedstore-methods-"))
    store = Store(args.store or work / "store")
    parts = [f"# Alignment methods (issue 19)\n\n{machine_md(machine())}\n",
             f"seeds {args.seeds}, epochs {args.epochs}, λ ∈ {{0, 1}} chosen on validation macro-F1; retrieval, "
             "RMG and paired cosine on the test split at the early-fusion λ; Δ = paired bootstrap vs no alignment.\n"]
    for ds in args.datasets.split(","):
        prepare(store, ds, work)
        rows = run(store, ds, args.seeds, args.epochs)
        parts.append(f"## {ds}\n\n" + md_table(list(rows[0]), [list(r.values()) for r in rows]) + "\n")
        Path(args.out).write_text("\n".join(parts))
    print("\n".join(parts))


if __name__ == "__main__":
    main()
