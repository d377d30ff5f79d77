"""(c) of ``benchmarks/extract.py``: each backend against torch fp32 eager, end to end, quiet and loaded.

For every model row and every candidate backend (torch fp32 eager = the
baseline, torch bf16 autocast, ONNX Runtime fp32), on real HAM10000 rows of
``ham10000-dev1000`` (its photos, and its prompts as embedstore's HAM10000
adapter renders them), at extract's default batch (32):

* **end to end** = :func:`embedstore.extract.extract` rows/s into a fresh
  store (decode and preprocessing in the background thread, texts batched by
  length, forwards, chunked LanceDB commits; model load and the one-time
  ONNX export excluded);
* **quiet** = the machine as it is; **loaded** = with two CPU-bound
  competitor processes (:func:`embedstore.cpu.competitors`);
* **alternating rounds**: each round runs every candidate in both
  conditions (the conditions' order flips and the candidates' order rotates
  between rounds); medians per condition, each against torch fp32 of the
  same condition, and the slowest round's paired ratio;
* **parity** = minimum per-row cosine against torch fp32 on the benchmark's
  rows (the vectors each run stored) and on the parity gate's probe batch.

``default`` marks what ``--backend auto`` runs for the catalog id
(:func:`embedstore.extractors.backends.auto_choice`: the fp32 key only, ONNX
Runtime fp32 when it is >= 1.3x torch fp32 in its worse condition and never
slower in a round); ``--write-table`` stores this run's figures as the
shipped table before the defaults are marked.

(c1) **Text batching**: the same prompts batched in ingest order against
batched by length (what extract does now), prepare + forward, alternating
rounds, plus the padded tokens each plan computes over all prompts.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

FP32 = (("torch", "none"), ("onnx", "none"))
ALL = (("torch", "none"), ("torch", "bf16"), ("onnx", "none"))
#: label, model builder key, catalog id whose default the row stands for, modality, rows, batch, candidates.
#: Row counts keep one run within about half an hour on 2 shared cores. EfficientNet's bf16 path is left
#: out: it fails the parity gate on real photos (min cosine 0.980, the earlier table) and is never run.
ROWS = (
    ("builtin:efficientnet-lite0 (real weights)", "builtin:efficientnet-lite0", "builtin:efficientnet-lite0",
     "image", 128, 32, FP32),
    ("builtin:minilm-l6 (real weights)", "builtin:minilm-l6", "builtin:minilm-l6", "text", 128, 32, ALL),
    ("ViT-B/14 at DINOv2-base shape (random init)", "dinov2", "hf:facebook/dinov2-base", "image", 32, 32, ALL),
    ("CLIP ViT-B/32 shape (random init), image", "clip", "hf-clip:openai/clip-vit-base-patch32", "image", 64, 32,
     ALL),
    ("CLIP ViT-B/32 shape (random init), text", "clip", "hf-clip:openai/clip-vit-base-patch32", "text", 128, 32,
     ALL),
)
REAL = ("builtin:efficientnet-lite0", "builtin:minilm-l6")
#: Held (flock) around the timed rounds only, so timing benchmarks of a shared machine never overlap.
LOCK = Path(os.environ.get("EMBEDSTORE_BENCH_LOCK", "/work/bench.lock"))


@contextmanager
def bench_lock() -> Iterator[None]:
    """Exclusive ``flock`` on :data:`LOCK` (when its folder exists) for the timed part of a benchmark."""
    if not LOCK.parent.is_dir():
        yield
        return
    import fcntl

    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def timed_candidates(row: tuple) -> tuple:
    """The row's candidates; bf16 of the random-init rows is not timed on a CPU without native bf16.

    There it is never a default and costs 5-10x torch fp32 per round (this CPU,
    an earlier run: ViT-B/14 bf16 0.15x quiet, 0.13x loaded); MiniLM's real-weights
    row keeps it as the evidence.
    """
    from embedstore.cpu import native_bf16

    cands = row[6]
    if row[1] in REAL or native_bf16():
        return cands
    return tuple(c for c in cands if c[1] != "bf16")


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


def _stored(store: Any, key: str, modality: str) -> np.ndarray:
    return store.embeddings("ds", key, modality, as_="numpy")[1]


def measure_row(row: tuple, src: Any, tmp: Path, repeats: int, competitors: int = 2) -> dict[str, Any]:
    """All candidates of one row: alternating rounds, quiet and loaded, end to end; parity."""
    from embedstore import Store
    from embedstore.cpu import competitors as busy
    from embedstore.extract import extract
    from embedstore.extractors.backends import min_cosine
    from embedstore.extractors.measure import candidate_extractors, rotated
    from embedstore.images import load_image

    label, key, catalog_id, modality, n, batch, _ = row
    cands = timed_candidates(row)
    model = key if key in REAL else shaped_model(key, tmp)
    rows = src.samples("ds").slice(0, n)
    first = (rows["text"].to_pylist()[:2] if modality == "text"
             else [load_image(r) for r in rows["image_ref"].to_pylist()[:2]])
    exts = candidate_extractors(model, cands)
    for e in exts:  # load, export, gate (recorded in e.parity), warm-up: not timed
        e.forward(modality, e.prepare(modality, first))
    conditions = ("quiet", "loaded")
    rates = {c: [[0.0] * repeats for _ in exts] for c in conditions}
    vectors: list[np.ndarray | None] = [None] * len(exts)
    loads = []
    with bench_lock():
        print(f"{label}: timing from load {os.getloadavg()[0]:.1f}", flush=True)
        for k in range(repeats):
            for cond in (conditions if k % 2 == 0 else conditions[::-1]):
                with busy(competitors if cond == "loaded" else 0):
                    for i in rotated(len(exts), k):
                        store = Store(tmp / f"run-{len(list(tmp.iterdir()))}")
                        store.write_samples("ds", rows)
                        rep = extract(store, "ds", model, modality=modality, batch_size=batch, extractor=exts[i],
                                      progress=False)
                        assert rep.computed == n, rep
                        rates[cond][i][k] = rep.result(modality).rows_per_s
                        if vectors[i] is None:
                            vectors[i] = _stored(store, rep.model_key, modality)
                    loads.append(os.getloadavg()[0])
    out = []
    for i, e in enumerate(exts):
        c = {"backend": e.backend, "dtype": e.dtype, "min_cos": min_cosine(vectors[0], vectors[i]),
             "probe_cos": e.parity.get(modality, 1.0), "rounds": {}}
        for cond in conditions:
            mine, base = rates[cond][i], rates[cond][0]
            c[cond] = statistics.median(mine)
            c[f"{cond}_x"] = c[cond] / statistics.median(base)
            c["rounds"][cond] = [m / b for m, b in zip(mine, base)]
        c["min_round_x"] = min(x for v in c["rounds"].values() for x in v)
        out.append(c)
    return {"label": label, "catalog_id": catalog_id, "modality": modality, "rows": n, "batch": batch,
            "cands": out, "load": [round(x, 1) for x in loads]}


def run(src: Any, tmp: Path, repeats: int, quick: bool = False, partial: Path | None = None,
        info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every row of :data:`ROWS` (the builtin ones with ``quick``).

    With ``partial``, the rows measured so far are saved there after each row
    (JSON: ``info``, ``repeats``, ``rows``), so a run cut short keeps them
    (``benchmarks/extract.py --from-partial``).
    """
    results = []
    for r in ROWS[:2] if quick else ROWS:
        t0 = time.time()
        results.append(measure_row(r, src, tmp, repeats))
        print(f"{r[0]}: {time.time() - t0:.0f} s", flush=True)
        if partial is not None:
            done = {**(info or {}), "load_avg_1m_end": f"{os.getloadavg()[0]:.2f}"}
            partial.write_text(json.dumps({"info": done, "repeats": repeats, "rows": results}, indent=1))
    return mark_defaults(results)


def mark_defaults(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flag the candidate ``--backend auto`` runs for each row's catalog id (from the current table)."""
    from embedstore.extractors.backends import auto_choice, backend_table

    table = backend_table()
    for r in results:
        choice = auto_choice(r["catalog_id"], table.get(r["catalog_id"]))
        for c in r["cands"]:
            c["default"] = (c["backend"], c["dtype"]) == (choice.backend, choice.dtype)
    return results


def write_table(results: list[dict[str, Any]], path: Path, info: dict[str, Any] | None = None) -> None:
    """Store this run's figures as the shipped backend table (per catalog id)."""
    models: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        for c in r["cands"]:
            models.setdefault(r["catalog_id"], []).append(
                {"backend": c["backend"], "dtype": c["dtype"], "modality": r["modality"],
                 "quiet_rows_per_s": round(c["quiet"], 3), "quiet_speedup": round(c["quiet_x"], 3),
                 "loaded_rows_per_s": round(c["loaded"], 3), "loaded_speedup": round(c["loaded_x"], 3),
                 "min_round_speedup": round(c["min_round_x"], 3),
                 "min_cos": round(min(c["min_cos"], c["probe_cos"]), 7), "rows": r["rows"], "batch": r["batch"]})
    info = info or {}
    note = ("written by 'python benchmarks/extract.py --only backends --write-table' (one run, alternating rounds, "
            "medians, end to end through extract() on ham10000-dev1000 photos and prompts): quiet = the machine as "
            "it was, loaded = with two CPU-bound competitors; *_speedup vs torch fp32 eager of the same condition; "
            "min_round_speedup = the slowest round's paired ratio; min_cos = the lower of the rows' and the probe "
            "batch's minimum per-row cosine vs torch fp32. auto runs the fp32 key only: ONNX Runtime fp32 when "
            "its worse speed-up is >= 1.3, its slowest round >= 1.0 and min_cos >= 0.99999, else torch fp32; "
            "bf16 rows are shown, never picked (their own key). hf:facebook/dinov2-base and "
            "hf-clip:openai/clip-vit-base-patch32 were measured on random-init models of the same shape. "
            f"CPU: {info.get('cpu_flags', '?')}; load average {info.get('load_avg_1m')} at the start and "
            f"{info.get('load_avg_1m_end')} at the end; torch {info.get('torch')}. "
            "Your own machine and data: embedstore backends --measure --dataset NAME")
    path.write_text(json.dumps({"note": note, "models": models}, indent=1) + "\n")


def text_batching(src: Any, repeats: int, n: int = 256, batch: int = 32, window: int = 256) -> dict[str, Any]:
    """(c1): ingest-order batches vs length-sorted batches of the same prompts, prepare + forward, quiet.

    Also counts the padded tokens each plan computes over every prompt of
    the dataset (``window`` = extract's commit chunk).
    """
    from embedstore.extract_inputs import length_batches
    from embedstore.extractors.backends import min_cosine
    from embedstore.extractors.measure import alternating_rounds, candidate_extractors

    texts = src.samples("ds")["text"].to_pylist()
    exts = candidate_extractors("builtin:minilm-l6", FP32)
    lengths = exts[0].text_lengths(texts)

    def padded(plan_of) -> int:
        total = 0
        for s in range(0, len(texts), window):
            ls = lengths[s:s + window]
            total += sum(len(p) * max(ls[j] for j in p) for p in plan_of(ls))
        return total

    def in_order(ls: list[int]) -> list[list[int]]:
        return [list(range(i, min(i + batch, len(ls)))) for i in range(0, len(ls), batch)]

    tokens = {"ingest order": padded(in_order), "by length": padded(lambda ls: length_batches(ls, batch)),
              "real tokens": sum(lengths)}
    sample = texts[:n]

    def fn(e: Any, plan: list[list[int]]):
        def go() -> np.ndarray:
            out = np.empty((len(sample), e.identity.dim("text")), np.float32)
            for p in plan:
                out[p] = e.forward("text", e.prepare("text", [sample[j] for j in p]))
            return out
        return go

    plans = {"ingest order": in_order(lengths[:n]), "by length": length_batches(lengths[:n], batch)}
    fns, labels = [], []
    for e in exts:
        for name, plan in plans.items():
            fns.append(fn(e, plan))
            labels.append((f"{e.backend} {e.dtype}", name))
    outs = [f() for f in fns]  # warm-up, and the vectors
    with bench_lock():
        times = alternating_rounds(fns, repeats, competitors=0, conditions=("quiet",))["quiet"]
    rows = []
    for i, (backend, name) in enumerate(labels):
        base = 2 * (i // 2)  # the same backend in ingest order
        rows.append({"backend": backend, "plan": name, "rows_per_s": n / statistics.median(times[i]),
                     "x": statistics.median(times[base]) / statistics.median(times[i]),
                     "min_cos": min_cosine(outs[base], outs[i])})
    return {"tokens": tokens, "rows": rows, "n": n, "batch": batch, "prompts": len(texts),
            "median_tokens": statistics.median(lengths), "min_tokens": min(lengths), "max_tokens": max(lengths)}


def render(results: list[dict[str, Any]], repeats: int, batching: dict[str, Any] | None = None,
           cpu: str = "") -> str:
    """The markdown section (c) (and (c1) when measured)."""
    from benchmarks.benchlib import md_table

    body, summary = [], []
    for r in results:
        for c in r["cands"]:
            rounds = " / ".join(" ".join(f"{x:.2f}" for x in c["rounds"][k]) for k in ("quiet", "loaded"))
            body.append([r["label"], r["modality"], f"{r['rows']} / {r['batch']}", f"{c['backend']} {c['dtype']}",
                         f"{c['quiet']:.2f}", f"**{c['quiet_x']:.2f}x**", f"{c['loaded']:.2f}",
                         f"**{c['loaded_x']:.2f}x**", f"{min(c['quiet_x'], c['loaded_x']):.2f}x",
                         f"{c['min_round_x']:.2f}x", rounds, f"{c['min_cos']:.7f}", f"{c['probe_cos']:.7f}",
                         "**yes**" if c["default"] else ""])
            if c["default"]:
                summary.append(f"`{r['catalog_id']}` {r['modality']}: {c['backend']} {c['dtype']} "
                               f"({min(c['quiet_x'], c['loaded_x']):.2f}x in its worse condition, "
                               f"slowest round {c['min_round_x']:.2f}x)")
    table = md_table(["model", "modality", "rows / batch", "backend", "quiet rows/s", "quiet vs torch fp32",
                      "loaded rows/s", "loaded vs torch fp32", "worse", "slowest round",
                      "per-round ratios (quiet / loaded)", "min cos (rows)", "min cos (probe)", "auto default"], body)
    skipped = [r["label"] for r in results if r["label"].split(" ")[0] not in REAL
               and not any(c["dtype"] == "bf16" for c in r["cands"])]
    bf16_note = (" (bf16 is not timed on " + ", ".join(skipped) + ": on a CPU without native bf16 it is never a "
                 "default and costs 5-10x a torch fp32 round on those shapes)") if skipped else ""
    loads = ", ".join(f"{r['label'].split(' (')[0]} {min(r['load'])}-{max(r['load'])}" for r in results)
    out = [
        "## (c) Backends: each against torch fp32 eager, end to end, quiet and loaded", "",
        f"CPU: {cpu}.", "",
        f"{repeats} alternating rounds per model; each round runs every backend through `extract()` into a fresh "
        "store once with the machine as it is (*quiet*) and once with two CPU-bound competitor processes "
        "(*loaded*); the conditions' order flips and the backends' order rotates between rounds. Rows are "
        "ham10000-dev1000 photos (224x224 JPEG) and its prompts as the HAM10000 adapter renders them, "
        "batch 32 (extract's default). Medians per condition, each against torch fp32 eager in the same "
        "condition; *worse* = the lower of the two; *slowest round* = the lowest paired ratio of any round. "
        "End to end = `extract()` rows/s (decode and preprocessing in the background thread, texts batched by "
        "length, forwards, commits; model load and the one-time ONNX export excluded). min cos = minimum "
        "per-row cosine against torch fp32 on the rows each run stored / on the parity gate's probe batch. "
        "`auto default` = what `--backend auto` runs: only the fp32 key (torch fp32 and ONNX Runtime fp32 give "
        "the same vectors, one `model_key`), ONNX Runtime fp32 where it is >= 1.3x torch fp32 in its worse "
        "condition and >= 1.0x in every round, else torch fp32. bf16 is shown, never the default: its own key, "
        f"and this CPU has no native bf16{bf16_note}. EfficientNet-Lite0's bf16 path is not "
        "timed: it fails the parity gate on real photos (min cosine 0.980 in the earlier table). "
        "The DINOv2 and CLIP rows are random-init "
        f"models of those shapes. 1-minute load average during each row ({loads}): the machine is shared, so "
        "*quiet* is the machine as it was, not idle.", "",
        table, "", "**Defaults from this run:** " + "; ".join(summary) + ".", ""]
    if batching:
        t = batching["tokens"]
        rows = [[r["backend"], r["plan"], f"{r['rows_per_s']:.2f}", f"**{r['x']:.2f}x**", f"{r['min_cos']:.7f}"]
                for r in batching["rows"]]
        out += ["## (c1) Text batching: prompts in ingest order vs batched by length", "",
                f"`builtin:minilm-l6`, the first {batching['n']} of the {batching['prompts']} dev1000 prompts "
                f"({batching['min_tokens']}-{batching['max_tokens']} tokens, median {batching['median_tokens']}), "
                f"batch {batching['batch']}, prepare + forward, {repeats} alternating rounds with the machine as "
                "it is, medians; min cos = against the same backend in ingest order. Padded tokens each plan "
                f"computes over all {batching['prompts']} prompts (windows of 256 = extract's commit chunk): "
                f"ingest order {t['ingest order']}, by length {t['by length']} "
                f"({100 * (1 - t['by length'] / t['ingest order']):.1f}% fewer; the texts hold {t['real tokens']} "
                "real tokens). HAM10000's prompts differ little in length, so the saving is small here; it grows "
                "with the spread of lengths (a batch pads to its longest text).", "",
                md_table(["backend", "batches", "rows/s", "vs ingest order", "min cos"], rows), ""]
    return "\n".join(out)
