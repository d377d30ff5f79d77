"""From experiment to use on real data: train, keep heads, predict an unlabelled folder.

On ``../shared/data/ham10000-dev270`` (EfficientNet-Lite0 + MiniLM-L6, the
leak-free ``default`` prompt) this

1. ingests and extracts dev270 (timed: **extraction throughput**, rows/s);
2. trains early and late fusion, honest, 3 seeds (heads kept by default);
3. builds an **unlabelled** folder (``HAM10000_metadata.csv`` without
   ``dx``/``dx_type``/``lesion_id``): the dev270 test rows of the run (not
   used in training) plus every ``ham10000-sample70`` photo (600×450
   originals, new content: they need real forward passes);
4. predicts it with the early and late runs (cold: embeds the missing
   photos; warm: a second predict, zero forwards, no new version) and with
   the seed ensemble; timed: **predict throughput** (rows/s), each a ratio
   to the extraction throughput of the same run;
5. checks that probabilities sum to 1 and that, on the dev270 rows, the
   accuracy equals the run's recorded test accuracy; prints a few rows.

Usage::

    python benchmarks/predict.py          # writes benchmarks/results/predict.md
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchlib import machine, machine_md, md_table  # noqa: E402

DATA = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
IMAGE, TEXT = "builtin:efficientnet-lite0", "builtin:minilm-l6"
COLS = ("image_id", "age", "sex", "localization")


def unlabelled_folder(out: Path, dev_ids: set[str]) -> dict[str, str]:
    """Metadata without labels + symlinked photos; returns ``{image_id: true dx}`` (kept aside)."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    truth: dict[str, str] = {}
    rows = []
    for folder, keep in ((DATA / "ham10000-dev270", dev_ids), (DATA / "ham10000-sample70", None)):
        for r in csv.DictReader(open(folder / "HAM10000_metadata.csv", newline="")):
            iid = r["image_id"]
            if (keep is not None and iid not in keep) or iid in truth:
                continue
            truth[iid] = r["dx"]
            rows.append({c: r[c] for c in COLS})
            src = folder / "images" / f"{iid}.jpg"
            dst = out / "images" / f"{iid}.jpg"
            if not dst.exists():
                dst.symlink_to(src)
    with open(out / "HAM10000_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS)
        w.writeheader()
        w.writerows(rows)
    return truth


def main() -> None:
    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.heads import heads_of_run
    from embedstore.ingest import ingest
    from embedstore.runs import get_run
    from embedstore.trainers.predict import predict
    from embedstore.trainers.train import train

    work = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    store = Store(work / "store")
    ingest(store, "ham10000", DATA / "ham10000-dev270", name="dev270", progress=False)
    t0 = time.perf_counter()
    rep = [extract(store, "dev270", m, modality=mod, progress=False) for m, mod in ((IMAGE, "image"), (TEXT, "text"))]
    extract_s = time.perf_counter() - t0
    n_dev = store.samples("dev270").num_rows
    extract_rps = n_dev / extract_s
    runs = {f: train(store, "dev270", image_model=IMAGE, text_model=TEXT, fusion=f, seeds=3) for f in ("early", "late")}
    first = runs["early"].run_ids[0]
    held = set(heads_of_run(store, first)[0].spec["test_sample_ids"])
    truth = unlabelled_folder(work / "clinic", held)
    ingest(store, "ham10000", work / "clinic", name="clinic", progress=False)
    rows_md, checks, shown = [], [], []
    for fusion, res in runs.items():
        for rid, rec_run in zip(res.run_ids, res.runs):
            t0 = time.perf_counter()
            p = predict(store, "clinic", rid)
            dt = time.perf_counter() - t0
            rows_md.append([fusion, rec_run.seed, "first" if p.forward_calls else "first (cache only)",
                            len(p.sample_ids), p.forward_calls, p.written, f"{len(p.sample_ids) / dt:.1f}",
                            f"{len(p.sample_ids) / dt / extract_rps:.2f}"])
            dev = [i for i, s in enumerate(p.sample_ids) if s in held]
            acc = float(np.mean([p.labels[i] == truth[p.sample_ids[i]] for i in dev]))
            rec = get_run(store, rid)
            checks.append([fusion, rec_run.seed, len(dev), f"{acc:.4f}", f"{rec.metrics['accuracy']:.4f}",
                           "yes" if abs(acc - rec.metrics["accuracy"]) < 1e-9 else "NO",
                           f"{np.abs(p.proba.sum(axis=1) - 1).max():.1e}"])
        v = store.version("predictions__clinic")
        t0 = time.perf_counter()
        p = predict(store, "clinic", res.run_ids[0])
        dt = time.perf_counter() - t0
        rows_md.append([fusion, res.runs[0].seed, f"warm (version {v} -> {store.version('predictions__clinic')})",
                        len(p.sample_ids), p.forward_calls, p.written, f"{len(p.sample_ids) / dt:.1f}",
                        f"{len(p.sample_ids) / dt / extract_rps:.2f}"])
        t0 = time.perf_counter()
        e = predict(store, "clinic", res.run_ids[0], ensemble=True)
        dt = time.perf_counter() - t0
        rows_md.append([fusion, "0-2", "ensemble (mean prob.)", len(e.sample_ids), e.forward_calls, e.written,
                        f"{len(e.sample_ids) / dt:.1f}", f"{len(e.sample_ids) / dt / extract_rps:.2f}"])
        if fusion == "early":
            pick = [i for i, s in enumerate(e.sample_ids) if s in held][:3] + \
                   [i for i, s in enumerate(e.sample_ids) if s not in held][:3]
            shown = [[e.sample_ids[i], "dev270 test" if e.sample_ids[i] in held else "sample70",
                      truth[e.sample_ids[i]], e.labels[i], f"{e.proba[i].max():.3f}"] for i in pick]
    out = ["# predict: heads kept in the store, applied to an unlabelled folder", "",
           f"dev270: {n_dev} photos; unlabelled folder: {len(truth)} photos ({len(held)} dev270 test rows of the "
           f"early seed-0 run + {len(truth) - len(held)} ham10000-sample70 originals); {IMAGE} + {TEXT}, "
           "honest, 3 seeds, default (leak-free) prompt.", "",
           f"Baseline: extraction of dev270 (image + text, {n_dev} rows) = **{extract_rps:.1f} rows/s** "
           f"({extract_s:.1f} s; {sum(r.forward_calls for r in rep)} forward calls).", "",
           "## Predict throughput (ratio = predict rows/s ÷ extraction rows/s, same run)", "",
           md_table(["fusion", "seed", "predict", "rows", "forward calls", "rows written", "rows/s", "ratio"],
                    rows_md), "",
           "## Accuracy on the dev270 rows vs the run's recorded test accuracy", "",
           md_table(["fusion", "seed", "dev270 rows", "predict accuracy", "recorded test accuracy", "equal",
                     "max |sum p - 1|"], checks), "",
           "## A few predictions (early fusion, seed ensemble)", "",
           md_table(["sample", "from", "true label (kept aside)", "predicted", "probability"], shown), "",
           machine_md(machine()), ""]
    text = "\n".join(out)
    print(text)
    dest = Path(__file__).resolve().parent / "results" / "predict.md"
    dest.write_text(text)


if __name__ == "__main__":
    main()
