"""(c) of ``benchmarks/extract.py``: each backend against torch fp32 eager, end to end and bare.

For every model row and every candidate backend (torch fp32 eager = the
baseline, torch bf16 autocast, ONNX Runtime fp32, ONNX Runtime int8), in
alternating rounds (one e2e run and one bare run of each candidate per
round, so load changes hit all of them), medians over the rounds:

* **end to end** = :func:`embedstore.extract.extract` rows/s into a fresh
  store (decode + preprocessing in the background thread, forwards, chunked
  LanceDB commits; model load and ONNX export excluded);
* **bare** = the forwards alone over batches prepared beforehand;
* **parity** = minimum per-row cosine against torch fp32 on the benchmark's
  rows, and for real-weight models the 1-NN label agreement (leave one out,
  cosine) of the candidate's vectors with torch fp32's: the downstream effect.

The ``default`` column marks what ``--backend auto`` picks for the catalog
id from the backend table; ``--write-table`` stores this run's figures (bare
and end to end) as that table (``embedstore/extractors/backend_table.json``)
before the defaults are marked, so the marks are this run's choices.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

#: label, model builder key, catalog id whose default the row stands for, modality, rows, batch
#: at least two batches per row, so end to end overlaps decoding with forwards as a real run does; batch 32
#: (extract's default) except the DINOv2 shape, measured at batch 8 as the issue's table was
ROWS = (
    ("builtin:efficientnet-lite0 (real weights)", "builtin:efficientnet-lite0", "builtin:efficientnet-lite0",
     "image", 64, 32),
    ("builtin:minilm-l6 (real weights)", "builtin:minilm-l6", "builtin:minilm-l6", "text", 64, 32),
    ("ViT-B/14 at DINOv2-base shape (random init)", "dinov2", "hf:facebook/dinov2-base", "image", 16, 8),
    ("CLIP ViT-B/32 shape (random init), image", "clip", "hf-clip:openai/clip-vit-base-patch32", "image", 64, 32),
    ("CLIP ViT-B/32 shape (random init), text", "clip", "hf-clip:openai/clip-vit-base-patch32", "text", 64, 32),
)
REAL = ("builtin:efficientnet-lite0", "builtin:minilm-l6")


def shaped_model(kind: str, tmp: Path) -> str:
    """A random-init model of the paper encoders' shapes, saved as a local directory (cached per run)."""
    import torch

    out = tmp / f"shape-{kind}"
    if out.is_dir():
        return str(out)
    torch.manual_seed(0)
    if kind == "dinov2":
        from transformers import Dinov2Config, Dinov2Model

        Dinov2Model(Dinov2Config()).eval().save_pretrained(out)  # defaults = dinov2-base: 768 x 12, patch 14
        return str(out)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from tests.tiny_models import make_tiny_clip_hf

    make_tiny_clip_hf(out)  # tokenizer files; the model is replaced by a full-size one
    cfg = json.loads((out / "config.json").read_text())["text_config"]
    torch.manual_seed(0)
    ids = {k: cfg[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    CLIPModel(CLIPConfig(text_config=ids)).eval().save_pretrained(out)  # defaults = ViT-B/32, text 512 x 12
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(out)
    return str(out)


def knn_agreement(ref: np.ndarray, out: np.ndarray, labels: list[str]) -> float:
    """Share of rows whose leave-one-out 1-NN label (cosine) is the same with ``out`` as with ``ref``."""

    def predict(x: np.ndarray) -> np.ndarray:
        x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        return np.asarray(labels)[sim.argmax(axis=1)]

    return float((predict(ref) == predict(out)).mean())


def measure_row(row: tuple, src: Any, tmp: Path, repeats: int) -> dict[str, Any]:
    """All candidates of one row: medians of alternating (e2e, bare) rounds, parity, k-NN agreement."""
    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.extractors.backends import min_cosine
    from embedstore.extractors.measure import candidate_extractors
    from embedstore.images import load_image

    label, key, catalog_id, modality, n, batch = row
    model = key if key in REAL else shaped_model(key, tmp)
    samples = src.samples("ds")
    rows = samples.slice(0, n)
    items = rows["text"].to_pylist() if modality == "text" else [load_image(r) for r in rows["image_ref"].to_pylist()]
    labels = rows["label"].to_pylist()
    from embedstore.extractors.measure import CANDIDATES

    # int8 (lossy, opt-in) is measured where a downstream metric can be read: the real-weight models
    exts = candidate_extractors(model, CANDIDATES if key in REAL else CANDIDATES[:3])
    prepared, probe = [], {}
    for e in exts:
        batches = [e.prepare(modality, items[i:i + batch]) for i in range(0, n, batch)]
        e.forward(modality, batches[0])  # load, export, gate (recorded in e.parity), warm-up
        prepared.append(batches)
        probe[(e.backend, e.dtype)] = e.parity.get(modality, 1.0)
    outs = [np.concatenate([e.forward(modality, b) for b in bs]) for e, bs in zip(exts, prepared)]
    e2e: list[list[float]] = [[] for _ in exts]
    bare: list[list[float]] = [[] for _ in exts]
    for k in range(repeats):
        for i, (e, bs) in enumerate(zip(exts, prepared)):
            store = Store(tmp / f"run-{len(list(tmp.iterdir()))}")
            store.write_samples("ds", rows)
            rep = extract(store, "ds", model, modality=modality, batch_size=batch, extractor=e, progress=False)
            e2e[i].append(rep.result(modality).rows_per_s)
            t0 = time.perf_counter()
            for b in bs:
                e.forward(modality, b)
            bare[i].append(n / (time.perf_counter() - t0))
    base_e2e, base_bare = statistics.median(e2e[0]), statistics.median(bare[0])
    cands = []
    for i, e in enumerate(exts):
        me, mb = statistics.median(e2e[i]), statistics.median(bare[i])
        cands.append({"backend": e.backend, "dtype": e.dtype, "e2e": me, "bare": mb, "e2e_x": me / base_e2e,
                      "bare_x": mb / base_bare, "min_cos": min_cosine(outs[0], outs[i]),
                      "probe_cos": probe[(e.backend, e.dtype)],
                      "knn": knn_agreement(outs[0], outs[i], labels) if key in REAL else None})
    return {"label": label, "catalog_id": catalog_id, "modality": modality, "rows": n, "batch": batch,
            "cands": cands}


def run(src: Any, tmp: Path, repeats: int, quick: bool = False, partial: Path | None = None,
        info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every row of :data:`ROWS` (the builtin ones with ``quick``); each model's candidates alternate.

    With ``partial``, the rows measured so far are saved there after each row
    (JSON: ``info``, ``repeats``, ``rows``), so a run cut short keeps them
    (``benchmarks/extract.py --from-partial``).
    """
    results = []
    for r in ROWS[:2] if quick else ROWS:
        results.append(measure_row(r, src, tmp, repeats))
        if partial is not None:
            done = {**(info or {}), "load_avg_1m_end": f"{os.getloadavg()[0]:.2f}"}
            partial.write_text(json.dumps({"info": done, "repeats": repeats, "rows": results}, indent=1))
    return mark_defaults(results)


def mark_defaults(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flag the candidate ``--backend auto`` picks for each row's catalog id (from the current table)."""
    from embedstore.extractors.backends import auto_choice, backend_table

    table = backend_table()
    for r in results:
        choice = auto_choice(r["catalog_id"], table.get(r["catalog_id"]), ("fp32", "bf16"))
        for c in r["cands"]:
            c["default"] = (c["backend"], c["dtype"]) == (choice.backend, choice.dtype)
    return results


def write_table(results: list[dict[str, Any]], path: Path, info: dict[str, Any] | None = None) -> None:
    """Store this run's speed-ups and parity as the shipped backend table (per catalog id).

    Each entry keeps the bare-forward figures (``rows_per_s``, ``speedup``)
    and the end-to-end one (``e2e_speedup``); ``auto`` reads the lower.
    """
    models: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        for c in r["cands"]:
            models.setdefault(r["catalog_id"], []).append(
                {"backend": c["backend"], "dtype": c["dtype"], "modality": r["modality"],
                 "rows_per_s": round(c["bare"], 3), "speedup": round(c["bare_x"], 3),
                 "e2e_rows_per_s": round(c["e2e"], 3), "e2e_speedup": round(c["e2e_x"], 3),
                 "min_cos": round(min(c["min_cos"], c["probe_cos"]), 6), "rows": r["rows"]})
    machine = "" if info is None else (f" Machine: {info.get('logical_cpus')} logical CPUs, load average "
                                       f"{info.get('load_avg_1m')} at the start and {info.get('load_avg_1m_end')} at the end, "
                                       f"torch {info.get('torch')}.")
    note = ("written by 'python benchmarks/extract.py --only backends --write-table' (one run, alternating rounds, "
            "medians): rows_per_s/speedup = bare forward, e2e_rows_per_s/e2e_speedup = extract() end to end, both "
            "vs torch fp32 eager in the same run; min_cos = the lower of the benchmark rows' and the probe batch's "
            "minimum per-row cosine vs torch fp32. auto takes a backend only at min_cos >= 0.999 and the lower "
            "speed-up >= 1.1. hf:facebook/dinov2-base and hf-clip:openai/clip-vit-base-patch32 were measured on "
            "random-init models of the same shape." + machine + " Your own machine: embedstore backends --measure")
    path.write_text(json.dumps({"note": note, "models": models}, indent=1) + "\n")


def render(results: list[dict[str, Any]], repeats: int) -> str:
    """The markdown section (c)."""
    from benchmarks.benchlib import md_table

    body = []
    for r in results:
        for c in r["cands"]:
            body.append([r["label"], r["modality"], f"{r['rows']} / {r['batch']}", f"{c['backend']} {c['dtype']}",
                         f"{c['e2e']:.2f}", f"**{c['e2e_x']:.2f}x**", f"{c['bare']:.2f}", f"{c['bare_x']:.2f}x",
                         f"{c['min_cos']:.5f}", f"{c['probe_cos']:.5f}",
                         "" if c["knn"] is None else f"{c['knn']:.3f}", "**yes**" if c["default"] else ""])
    table = md_table(["model", "modality", "rows / batch", "backend", "e2e rows/s", "e2e vs torch fp32",
                      "bare rows/s", "bare vs torch fp32", "min cos (rows)", "min cos (probe)",
                      "1-NN label agreement", "auto default"], body)
    return "\n".join([
        "## (c) Backends: each against torch fp32 eager, end to end and bare", "",
        f"{repeats} alternating rounds per model (each round: one `extract()` run into a fresh store and one bare "
        "run of every backend), medians. End to end = `extract()` rows/s (decode and preprocessing in the "
        "background thread, forwards, chunked commits; model load and the one-time ONNX export excluded). "
        "min cos = minimum per-row cosine against torch fp32 on the benchmark rows / on the parity gate's probe "
        "batch. 1-NN label agreement = share of rows whose leave-one-out nearest neighbour's label is the same "
        "as with torch fp32 vectors (the downstream effect of a lossy path; real-weight models only). "
        "`auto default` = what `--backend auto` picks for the catalog id from the backend table (with "
        "`--write-table`: the table written from this run): the fastest candidate at min cos >= 0.999 (the "
        "lower of the two columns) that is at least 1.1x torch fp32 by the lower of its e2e and bare figures, "
        "in every modality of the id; else torch fp32. "
        "The parity gate refuses fp32/bf16 paths below cosine 0.999; int8 runs only with "
        "`--backend onnx --quantize 8bit`.", "",
        table, ""])
