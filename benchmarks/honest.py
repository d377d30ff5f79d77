"""Honest numbers on real data: every head under grouped 5-fold CV, by input scaling.

For each dataset and each ``--scale`` (none / l2 / standard) this trains the
early, late, image-only and text-only MLP heads and the linear probe with
``embedstore.trainers.train.train(..., cv=5)`` (grouped by lesion/patient, stratified,
epoch or C chosen on a grouped validation part of each fold's training
folds), then prints mean ± sd over folds of macro-F1 and accuracy. Each
MLP number is also given as a ratio to the linear probe of the **same run
and scaling**, and the best MLP head is compared with the probe on the
same folds (paired bootstrap, :mod:`embedstore.compare`).

Datasets (real, from ``../shared/data``; prepared into the store once with
the offline ``builtin:`` encoders):

* ``dev270``: 270 HAM10000 photos (one per lesion), leak-free ``default``
  prompt, EfficientNet-Lite0 (1280-d) + MiniLM-L6 (384-d);
* ``retina5`` / ``retina2``: RetinaMNIST (1,600 28×28 fundus photos; DR
  grade 0–4, and referable DR = grade ≥ 2), ingested through a generated
  manifest with a constant text, image-only heads (EfficientNet-Lite0).
  MedMNIST has no patient ids: each image is its own group.

Usage::

    python benchmarks/honest.py                       # writes benchmarks/results/honest.md
    python benchmarks/honest.py --datasets dev270 --scales none,standard
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import machine, machine_md, md_table  # noqa: E402

IMAGE, TEXT = "builtin:efficientnet-lite0", "builtin:minilm-l6"
HEADS = {"dev270": ("early", "late", "image", "text", "linear"), "retina5": ("image", "linear"),
         "retina2": ("image", "linear")}


def shared_data() -> Path:
    root = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not root.is_dir():
        raise SystemExit(f"no shared data at {root}: set EMBEDSTORE_SHARED_DATA")
    return root


def retina_manifest(out: Path) -> Path:
    """RetinaMNIST as PNG files + a manifest (grade, referable, official split), written once."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.csv").exists():
        return out
    data = np.load(shared_data() / "retinamnist" / "retinamnist.npz")
    (out / "images").mkdir(exist_ok=True)
    rows = ["id,image,grade,referable,official_split"]
    for split in ("train", "val", "test"):
        for i, (img, y) in enumerate(zip(data[f"{split}_images"], data[f"{split}_labels"].reshape(-1))):
            sid = f"{split}{i:04d}"
            Image.fromarray(img).save(out / "images" / f"{sid}.png")
            rows.append(f"{sid},images/{sid}.png,{int(y)},{int(y >= 2)},{split}")
    (out / "manifest.csv").write_text("\n".join(rows) + "\n")
    return out


def prepare(store, datasets: list[str], work: Path) -> None:
    """Ingest and extract the datasets not yet in the store."""
    from embedstore.extract import extract
    from embedstore.ingest import ingest

    have = set(store.datasets())
    for ds in datasets:
        if ds in have:
            continue
        if ds == "dev270":
            ingest(store, "ham10000", shared_data() / "ham10000-dev270", name=ds, progress=False)
            extract(store, ds, TEXT, modality="text", progress=False)
        else:
            ingest(store, "manifest", retina_manifest(work / "retina"), name=ds, manifest="manifest.csv",
                   label_column="grade" if ds == "retina5" else "referable",
                   text_template="A fundus photograph.", progress=False)
        extract(store, ds, IMAGE, modality="image", progress=False)


def run(store, ds: str, scale: str, k: int) -> dict[str, object]:
    from embedstore.trainers.train import train

    out = {}
    for head in HEADS[ds]:
        text = TEXT if head in ("early", "late", "text") or (head == "linear" and ds == "dev270") else None
        image = IMAGE if head != "text" else None
        t0 = time.perf_counter()
        out[head] = train(store, ds, image_model=image, text_model=text, fusion=head, cv=k, scale=scale)
        print(f"  {ds} scale={scale} {head}: macro-F1 {out[head].mean['macro_f1']:.4f} ± "
              f"{out[head].sd['macro_f1']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=None, help="store URI (default: a temporary store)")
    ap.add_argument("--datasets", default="dev270,retina5,retina2")
    ap.add_argument("--scales", default="none,l2,standard")
    ap.add_argument("--cv", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "honest.md"))
    args = ap.parse_args()

    from embedstore import Store
    from embedstore.compare import compare_settings

    work = Path(tempfile.mkdtemp(prefix="embedstore-honest-"))
    store = Store(args.store or work / "store")
    datasets = [d for d in args.datasets.split(",") if d]
    scales = [s for s in args.scales.split(",") if s]
    prepare(store, datasets, work)
    lines = ["# Honest numbers: grouped 5-fold cross-validation, by input scaling", "",
             f"`python benchmarks/honest.py` ({args.cv}-fold grouped, stratified CV; per fold the epoch or C "
             "is chosen on a grouped validation part of the training folds; mean ± sd over folds). "
             "`ratio` = head macro-F1 / linear-probe macro-F1 of the same run and scaling.", "",
             machine_md(machine()), ""]
    for ds in datasets:
        rows, compares, by_scale = [], [], {}
        for scale in scales:
            res = by_scale[scale] = run(store, ds, scale, args.cv)
            base = res["linear"].mean["macro_f1"]
            for head, r in res.items():
                rows.append([scale, head, f"{r.mean['macro_f1']:.4f} ± {r.sd['macro_f1']:.4f}",
                             f"{r.mean['accuracy']:.4f} ± {r.sd['accuracy']:.4f}",
                             f"{r.mean['macro_f1'] / base:.3f}", r.group_id])
            best = max((h for h in res if h != "linear"), key=lambda h: res[h].mean["macro_f1"])
            cmp = compare_settings(store, res[best].group_id, res["linear"].group_id)
            compares.append(f"- scale `{scale}`: best MLP head `{best}` − linear probe: {cmp.difference:+.4f} "
                            f"macro-F1 (95% CI {cmp.low:+.4f} to {cmp.high:+.4f}): {cmp.verdict}")
        for scale in (s for s in scales if s != "none" and "none" in by_scale):
            for head, r in by_scale[scale].items():
                cmp = compare_settings(store, r.group_id, by_scale["none"][head].group_id)
                compares.append(f"- `{head}`: scale `{scale}` − `none`: {cmp.difference:+.4f} macro-F1 "
                                f"(95% CI {cmp.low:+.4f} to {cmp.high:+.4f}): {cmp.verdict}")
        table = md_table(["scale", "head", "macro-F1", "accuracy", "ratio", "group"], rows)
        print(f"\n{ds}\n{table}\n" + "\n".join(compares), flush=True)
        lines += [f"## {ds}", "", table, "", *compares, ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
