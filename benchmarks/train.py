"""Training benchmark: store-backed trainer vs a plain in-memory TensorDataset loop.

Early fusion at BRSET shape (protocol §1.1/§3.1): 13,012 train rows and 3,254
test rows of 768 (image) + 4,096 (text) float32 dimensions, binary, one
output (623,105 parameters), AdamW, batch 64, the test split evaluated after
every epoch (paper mode). Synthetic vectors are written to a real on-disk
store with the ordinary write path.

Compared in the same run, interleaved round by round so machine load hits
all of them alike:

* (a) ``embedstore.trainers.train.train(store, ...)`` reading the store at pinned
  versions — the ``memory`` path (what ``loader="auto"`` picks for this
  size) and the ``stream`` path (background readahead of Arrow batches);
* (b) a plain loop over ``DataLoader(TensorDataset(text, image, y),
  batch_size=64, shuffle=True)`` with the same model, loss and optimiser.

Per-epoch train time is the wall clock of the whole train loop (data loading
included), inference time that of the test pass including metrics, as the
paper measured them. The goal is (a)/(b) <= 1.15 for train s/epoch.

Usage::

    python benchmarks/train.py                 # full run, writes benchmarks/results/train.md
    python benchmarks/train.py --quick         # small shapes, 2 epochs (smoke test)
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import machine, machine_md, md_table  # noqa: E402

HERE = Path(__file__).resolve().parent
GOAL = 1.15
PAPER_TRAIN_S, PAPER_INFER_S = 1.54, 0.40  # protocol §6.1, BRSET DINOv2 + LLaMA-2 early fusion


def baseline_epochs(x_img, x_txt, y, test, epochs: int, seed: int, threads: int) -> list[dict[str, float]]:
    """(b): the plain in-memory TensorDataset loop (same head, loss, optimiser, batch)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from embedstore.trainers.fit_loop import torch_threads
    from embedstore.trainers.metrics import classification_metrics
    from embedstore.trainers.models import build_model

    out = []
    with torch_threads(threads):
        torch.manual_seed(seed)
        model = build_model("early", image_dim=x_img.shape[1], text_dim=x_txt.shape[1], output_size=1)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        train_dl = DataLoader(TensorDataset(torch.from_numpy(x_txt), torch.from_numpy(x_img),
                                            torch.from_numpy(y.astype(np.float32))),
                              batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))
        test_dl = DataLoader(TensorDataset(*(torch.from_numpy(a) for a in test)), batch_size=64)
        for _ in range(epochs):
            t0 = time.perf_counter()
            model.train()
            for xt, xi, yb in train_dl:
                loss = loss_fn(model(xi, xt).squeeze(1), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            t1 = time.perf_counter()
            model.eval()
            with torch.inference_mode():
                logits = torch.cat([model(xi, xt) for xt, xi, _ in test_dl]).numpy()
            acc = classification_metrics(test[2], logits, 2)["accuracy"]
            out.append({"train_s": t1 - t0, "infer_s": time.perf_counter() - t1, "accuracy": acc})
    return out


def write_store(store, n_train: int, n_test: int, image_dim: int, text_dim: int) -> tuple[dict, float]:
    from embedstore.trainers.synthetic_vectors import write_synthetic

    t0 = time.perf_counter()
    info = write_synthetic(store, "brset-shape", n=n_train + n_test, n_test=n_test, image_dim=image_dim,
                           text_dim=text_dim, n_classes=2, signal=0.05, seed=0)
    return info, time.perf_counter() - t0


def arrays(store, info) -> tuple:
    """Train and test matrices for (b), read once from the store (outside any timing)."""
    from embedstore.trainers.store_source import StoreSource

    src = StoreSource(store, "brset-shape", image_model=info["image_model"], text_model=info["text_model"],
                      split_by="paper", setup_splits=("train", "test"), path="memory")
    tr, te = src.materialise("train"), src.materialise("test")
    return (tr[0].numpy(), tr[1].numpy(), tr[2].numpy(), (te[1].numpy(), te[0].numpy(), te[2].numpy()))


def run(args: argparse.Namespace) -> str:
    from embedstore import Store
    from embedstore.trainers.train import train

    t_start = time.perf_counter()
    root = Path(args.store or tempfile.mkdtemp(prefix="bench-train-"))
    store = Store(root / "store" if not args.store else root)
    info, write_s = write_store(store, args.n_train, args.n_test, args.image_dim, args.text_dim)
    x_img, x_txt, y, test = arrays(store, info)
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    setup: dict[tuple[str, int], list[float]] = {}
    load: dict[tuple[str, int], list[float]] = {}
    for threads in args.threads:  # warm-up: imports, allocator, first-call costs (not recorded)
        baseline_epochs(x_img, x_txt, y, test, 1, 0, threads)
        train(store, "brset-shape", image_model=info["image_model"], text_model=info["text_model"],
              fusion="early", mode="paper", epochs=1, record=False, threads=threads)
    for rnd in range(args.rounds):
        for threads in args.threads:
            for variant in args.variants:
                key = (variant, threads)
                if variant == "baseline":
                    eps = baseline_epochs(x_img, x_txt, y, test, args.epochs, rnd, threads)
                else:
                    t0 = time.perf_counter()
                    res = train(store, "brset-shape", image_model=info["image_model"], text_model=info["text_model"],
                                fusion="early", mode="paper", epochs=args.epochs, seeds=[rnd], record=False,
                                loader=variant, threads=threads)
                    total = time.perf_counter() - t0
                    eps = [{"train_s": h["train_s"], "infer_s": h["infer_s"], "accuracy": h["accuracy"]}
                           for h in res.runs[0].history]
                    setup.setdefault(key, []).append(total - sum(e["train_s"] + e["infer_s"] for e in eps))
                    load.setdefault(key, []).append(res.source.describe()["load_s"])
                    assert res.runs[0].cost["params"] == 623_105 or args.quick
                rows.setdefault(key, []).extend(eps)
                med = np.median([e["train_s"] for e in eps])
                print(f"round {rnd + 1}/{args.rounds} threads {threads} {variant:8s} train {med:.3f} s/epoch",
                      flush=True)
    return report(args, rows, setup, load, write_s, time.perf_counter() - t_start)


LABEL = {"memory": "(a) store trainer, memory path", "stream": "(a') store trainer, stream path",
         "baseline": "(b) in-memory TensorDataset loop"}


def report(args, rows, setup, load, write_s: float, total_s: float) -> str:
    table = []
    ratios = {}
    for threads in args.threads:
        base = np.median([e["train_s"] for e in rows[("baseline", threads)]])
        base_inf = np.median([e["infer_s"] for e in rows[("baseline", threads)]])
        for variant in args.variants:
            eps = rows[(variant, threads)]
            tr = np.array([e["train_s"] for e in eps])
            inf = np.array([e["infer_s"] for e in eps])
            ratio = np.median(tr) / base
            ratios[(variant, threads)] = ratio
            table.append([LABEL[variant], threads, len(eps), f"{np.median(tr):.3f}",
                          f"{np.percentile(tr, 25):.3f}–{np.percentile(tr, 75):.3f}",
                          f"{np.median(inf):.3f}", f"{ratio:.3f}", f"{np.median(inf) / base_inf:.3f}",
                          f"{np.median(setup[(variant, threads)]):.2f} ({np.median(load[(variant, threads)]):.2f})"
                          if (variant, threads) in setup else "",
                          f"{eps[-1]['accuracy']:.3f}"])
    t1 = args.threads[0]
    head = ratios[("memory", t1)] if ("memory", t1) in ratios else float("nan")
    verdict = "meets" if head <= GOAL else "misses"
    mem_best = np.median([e["train_s"] for e in rows[("memory", t1)]]) if ("memory", t1) in rows else float("nan")
    lines = [
        "# Training benchmark: store trainer vs in-memory TensorDataset loop", "",
        f"Generated by `python benchmarks/train.py{' --quick' if args.quick else ''}` in {total_s:.0f} s. "
        + machine_md(machine()) + ".", "",
        f"Early fusion at BRSET shape: {args.n_train:,} train x ({args.image_dim:,} + {args.text_dim:,}) float32, "
        f"{args.n_test:,} test rows, one output (BCE), AdamW lr 1e-3 wd 0.01, batch 64, paper mode (test evaluated "
        f"every epoch). Synthetic vectors written to a real on-disk store ({write_s:.1f} s). "
        f"{args.rounds} interleaved rounds x {args.epochs} epochs per variant; medians over all epochs. "
        "The machine is shared with other jobs (load average in the line above): absolute times are noisy, "
        "ratios are taken within the same run. Every variant runs with the torch thread count of its table row "
        "(the machine line shows torch's process default).", "",
        md_table(["variant", "torch threads", "epochs", "train s/epoch (median)", "IQR", "inference s/epoch",
                  "train ratio vs (b)", "inference ratio vs (b)", "setup s per run (of which vector load)", "last test acc"], table), "",
        f"**(a)/(b) = {head:.3f}** for train s/epoch with {t1} torch thread(s) (goal <= {GOAL}): {verdict} the goal.",
        "",
        f"Absolute: the store trainer (memory path) takes **{mem_best:.2f} s/epoch** to train here, against the "
        f"paper's {PAPER_TRAIN_S} s (and {PAPER_INFER_S} s inference) for the same model and shape on the "
        "authors' unnamed machine (a profiler was running there, protocol §3.4); the machines differ, so "
        "only the order of magnitude compares.", "",
        "Notes",
        "- *setup s per run*: wall time of a `train()` call outside its epochs: opening the pinned table versions, "
        "the key join, reading labels, materialising the train and test vectors once (memory path; in brackets), "
        "building the head; nothing is recorded (`record=False`). It is paid once per run, not per epoch.",
        "- The memory path slices batches out of one in-memory matrix per modality (index slicing), which does "
        "less work per batch than `DataLoader`'s per-row collation; the stream path reads every epoch's shuffled "
        "rows back from the store with a background readahead thread (positional `take`), so it pays the "
        "storage reads each epoch; `loader=\"auto\"` picks the memory path when the matrices need less than half "
        "the free RAM (BRSET's 316 MB always does).",
        "- Both (a) paths yield identical batches for a seed (tests/test_trainers_loader.py), so the choice changes "
        "time, never results.",
    ]
    text = "\n".join(lines) + "\n"
    if not args.quick:
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "train.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small shapes, 2 epochs, 1 round; writes nothing")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", default="1", help="comma-separated torch thread counts to compare")
    p.add_argument("--variants", default="memory,stream,baseline")
    p.add_argument("--store", default=None, help="store directory (default: a temporary one)")
    args = p.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.variants = args.variants.split(",")
    if "baseline" not in args.variants:
        args.variants.append("baseline")
    args.n_train, args.n_test, args.image_dim, args.text_dim = 13_012, 3_254, 768, 4_096
    if args.quick:
        args.n_train, args.n_test, args.image_dim, args.text_dim = 1_300, 325, 64, 256
        args.epochs, args.rounds = 2, 1
    print(run(args))


if __name__ == "__main__":
    main()
