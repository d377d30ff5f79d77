"""Predict on real data with an aligned head, and on an image-only dataset.

Two checks of issue 17 the ``predict.py`` benchmark does not cover:

1. **Aligned heads.** On ``../shared/data/ham10000-dev270``
   (EfficientNet-Lite0 + MiniLM-L6, leak-free ``default`` prompt): a gap
   shift λ=1 fitted on the grouped split's train rows (MiniLM interpolated
   to 1280), early and late fusion trained on it (honest, 3 seeds), then an
   **unlabelled** folder (the seed-0 run's dev270 test rows + every
   ``ham10000-sample70`` photo) predicted from its *raw* embeddings: predict
   re-applies the stored shift. Accuracy on the dev270 rows must equal the
   recorded test accuracy; the ONNX export (shift and scaling folded in,
   raw embeddings in) must match predict to 1e-5. Throughput of predict is
   a ratio to the extraction throughput of the same run.
2. **Image-only dataset.** RetinaMNIST (official split; a subset, see
   ``RETINA_ROWS``) ingested from a manifest **without any text**: extract
   embeds images only, the image head and the linear probe train (honest,
   3 seeds) and predict an unlabelled copy of the test rows with accuracy
   equal to the recorded one; early fusion refuses in one line.

Usage::

    python benchmarks/predict_inputs.py     # writes benchmarks/results/predict_inputs.md
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchlib import machine, machine_md, md_table  # noqa: E402
from benchmarks.predict import DATA, IMAGE, TEXT, unlabelled_folder  # noqa: E402

#: RetinaMNIST rows per official split used here (of 1,080 / 120 / 400).
RETINA_ROWS = {"train": 360, "val": 120, "test": 200}


def retina_manifest(out: Path, labelled: bool = True, only: set[str] | None = None) -> Path:
    """RetinaMNIST PNGs + a manifest with no text column (``grade``, official split); written once."""
    from PIL import Image

    data = np.load(DATA / "retinamnist" / "retinamnist.npz")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n in RETINA_ROWS.items():
        for i, (img, y) in enumerate(zip(data[f"{split}_images"][:n], data[f"{split}_labels"].reshape(-1)[:n])):
            sid = f"{split}{i:04d}"
            if only is not None and sid not in only:
                continue
            path = out / "images" / f"{sid}.png"
            if not path.exists():
                Image.fromarray(img).save(path)
            rows.append({"id": sid, "image": f"images/{sid}.png", **({"label": int(y), "official_split": split}
                                                                      if labelled else {})})
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def _check(store, dataset, run_ids, truth, held, extract_rps):
    from embedstore.runs import get_run
    from embedstore.trainers.predict import predict

    timing, checks = [], []
    for rid in run_ids:
        t0 = time.perf_counter()
        p = predict(store, dataset, rid)
        dt = time.perf_counter() - t0
        rec = get_run(store, rid)
        timing.append([rec.fusion, rec.seed, len(p.sample_ids), p.forward_calls, f"{len(p.sample_ids) / dt:.1f}",
                       f"{len(p.sample_ids) / dt / extract_rps:.2f}"])
        dev = [i for i, s in enumerate(p.sample_ids) if s in held]
        acc = float(np.mean([p.labels[i] == truth[p.sample_ids[i]] for i in dev]))
        checks.append([rec.fusion, rec.seed, len(dev), f"{acc:.4f}", f"{rec.metrics['accuracy']:.4f}",
                       "yes" if abs(acc - rec.metrics["accuracy"]) < 1e-9 else "NO",
                       f"{np.abs(p.proba.sum(axis=1) - 1).max():.1e}"])
    return timing, checks


def aligned_part(store, work: Path) -> list[str]:
    from embedstore.alignment import align
    from embedstore.extract import extract
    from embedstore.heads import heads_of_run
    from embedstore.ingest import ingest
    from embedstore.snapshot import Snapshot
    from embedstore.trainers.export import export_head
    from embedstore.trainers.predict import predict
    from embedstore.trainers.train import train

    import onnxruntime as ort

    ingest(store, "ham10000", DATA / "ham10000-dev270", name="dev270", progress=False)
    t0 = time.perf_counter()
    for m, mod in ((IMAGE, "image"), (TEXT, "text")):
        extract(store, "dev270", m, modality=mod, progress=False)
    n_dev = store.samples("dev270").num_rows
    extract_rps = n_dev / (time.perf_counter() - t0)
    al = align(store, "dev270", image_model=IMAGE, text_model=TEXT, lam=1.0, match="interp")
    runs = {f: train(store, "dev270", image_model=IMAGE, text_model=TEXT, fusion=f, seeds=3,
                     alignment_key=al.alignment_key) for f in ("early", "late")}
    first = runs["early"].run_ids[0]
    held = set(heads_of_run(store, first)[0].spec["test_sample_ids"])
    truth = unlabelled_folder(work / "clinic", held)
    ingest(store, "ham10000", work / "clinic", name="clinic", progress=False)
    timing, checks = _check(store, "clinic", [r for res in runs.values() for r in res.run_ids], truth, held,
                            extract_rps)
    onnx_rows = []
    _, raw, _ = Snapshot(store, "clinic", image_model=IMAGE, text_model=TEXT).current()
    for fusion, res in runs.items():
        rid = res.run_ids[0]
        side = export_head(store, rid, work / f"{fusion}.onnx")
        sess = ort.InferenceSession(str(work / f"{fusion}.onnx"), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {n: raw[n.split("_")[0]] for n in side["inputs"]})
        diff = float(np.abs(got - predict(store, "clinic", rid, write=False).proba).max())
        onnx_rows.append([fusion, side["input_dims"]["image_embedding"], side["input_dims"]["text_embedding"],
                          side["alignment"]["image"]["dim"], f"{diff:.1e}", "yes" if diff < 1e-5 else "NO"])
    return [f"## 1. Aligned heads on dev270 (gap shift λ=1, fitted on {al.n_fit_rows} train rows, width {al.dim})",
            "", f"Unlabelled folder: {len(truth)} photos ({len(held)} dev270 test rows of the early seed-0 run + "
            f"{len(truth) - len(held)} ham10000-sample70 originals), predicted from their raw embeddings.", "",
            f"Baseline: extraction of dev270 (image + text, {n_dev} rows) = **{extract_rps:.1f} rows/s**.", "",
            md_table(["fusion", "seed", "rows", "forward calls", "predict rows/s", "ratio to extraction"], timing),
            "", "Accuracy on the dev270 rows vs the run's recorded test accuracy:", "",
            md_table(["fusion", "seed", "dev270 rows", "predict accuracy", "recorded test accuracy", "equal",
                      "max |sum p - 1|"], checks), "",
            "ONNX export (raw embeddings in; shift and scaling folded in) vs predict, seed 0:", "",
            md_table(["fusion", "image input width", "text input width", "aligned width", "max |Δp|", "< 1e-5"],
                     onnx_rows), ""]


def retina_part(store, work: Path) -> list[str]:
    from embedstore.errors import InputError
    from embedstore.extract import extract
    from embedstore.heads import heads_of_run
    from embedstore.ingest import ingest
    from embedstore.trainers.train import train

    rep = ingest(store, "manifest", retina_manifest(work / "retina"), name="retina", split_column="official_split",
                 progress=False)
    t0 = time.perf_counter()
    ex = extract(store, "retina", IMAGE, progress=False)
    extract_rps = rep.rows_total / (time.perf_counter() - t0)
    runs = {f: train(store, "retina", image_model=IMAGE, fusion=f, seeds=3 if f == "image" else 1,
                     split_by="paper") for f in ("image", "linear")}
    try:
        train(store, "retina", image_model=IMAGE, text_model=TEXT, fusion="early", split_by="paper")
        refusal = "NOT REFUSED"
    except InputError as exc:
        refusal = str(exc)
    held = set(heads_of_run(store, runs["image"].run_ids[0])[0].spec["test_sample_ids"])
    truth = {r["id"]: r["label"] for r in csv.DictReader(open(work / "retina" / "manifest.csv")) if r["id"] in held}
    ingest(store, "manifest", retina_manifest(work / "retina-new", labelled=False, only=held), name="retina_new",
           progress=False)
    timing, checks = _check(store, "retina_new", [r for res in runs.values() for r in res.run_ids], truth, held,
                            extract_rps)
    return [f"## 2. Image-only dataset: RetinaMNIST ({rep.rows_total} rows, official split subset "
            f"{RETINA_ROWS}, no text)", "",
            f"Ingest: modalities {rep.modalities}; extract embedded {[r.modality for r in ex.results]} "
            f"({ex.forward_calls} forward calls). Baseline: image extraction = **{extract_rps:.1f} rows/s**.", "",
            f"Early fusion on it: `{refusal}`", "",
            f"Unlabelled copy of the {len(held)} test rows (no label, no text), predicted:", "",
            md_table(["fusion", "seed", "rows", "forward calls", "predict rows/s", "ratio to extraction"], timing),
            "", md_table(["fusion", "seed", "test rows", "predict accuracy", "recorded test accuracy", "equal",
                          "max |sum p - 1|"], checks), ""]


def main() -> None:
    from embedstore import Store

    work = Path(tempfile.mkdtemp(prefix="predict-inputs-"))
    store = Store(work / "store")
    out = ["# predict: aligned heads and an image-only dataset (real data)", "",
           f"{IMAGE} + {TEXT}; honest protocol; every ratio is against a baseline measured in the same run.", ""]
    out += aligned_part(store, work)
    out += retina_part(store, work)
    out += [machine_md(machine()), ""]
    text = "\n".join(out)
    print(text)
    (Path(__file__).resolve().parent / "results" / "predict_inputs.md").write_text(text)


if __name__ == "__main__":
    main()
