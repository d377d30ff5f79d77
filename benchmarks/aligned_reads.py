"""Read-path cost of aligned vectors computed when read, against the full copies stored before (main at 3795f98).

Two stores hold the same paired vectors (``toy_pairs``: 1,280-d images, 384-d texts, the builtin
encoders' widths) and the same alignments: one written as main at 3795f98 wrote them (aligned rows of both
modalities stored at the aligned width, ``tests/main_store.py``), one by this code (parameters only;
the rows computed when read, :mod:`embedstore.aligned_reads`). Timed per alignment method:

* **memory path**: ``paired_sources(..., alignment_key=...)``, both modalities of every row, as
  training's memory loader, ``gap`` and ``export`` read them;
* **stream path**: one epoch of ``StoreSource(loader="stream")`` over the train split (batch 64).

Rounds alternate stored / computed; medians of wall time; once as the machine is and once with two
CPU-bound competitors started here. Section ``## Aligned reads`` of ``benchmarks/results/store.md``.

Usage::

    flock /work/bench.lock python benchmarks/aligned_reads.py            # 1,000 and 10,000 rows
    python benchmarks/aligned_reads.py --quick                           # 500 rows, 1 round, no file
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from benchlib import machine, machine_md, md_table  # noqa: E402

METHODS = (("gapshift", 0.5, None), ("center", 0.5, None), ("procrustes", 0.0, None))
SECTION = "## Aligned reads"


def build(root: Path, n: int):
    """Two stores with the same vectors and alignments: main's stored rows, and this code's parameters."""
    from embedstore import Store
    from embedstore.pairs import toy_pairs
    from embedstore.transform_align import align_method
    from tests.main_store import writing_as_main

    out = {}
    for kind in ("stored", "computed"):
        store = Store(root / kind)
        img, txt = toy_pairs(store, "toy", n=n, image_dim=1280, text_dim=384, classes=5)
        keys = {}
        for method, lam, k in METHODS:
            if kind == "stored":
                with writing_as_main():
                    res = align_method(store, "toy", method=method, image_model=img, text_model=txt, lam=lam,
                                       n_components=k, match="interp")
            else:
                res = align_method(store, "toy", method=method, image_model=img, text_model=txt, lam=lam,
                                   n_components=k, match="interp")
            keys[method] = (res.alignment_key, res.dim)
        out[kind] = (store, img, txt, keys)
    return out


def memory_read(store, img, txt, key, dim) -> float:
    from embedstore.pairs import paired_sources

    t0 = time.perf_counter()
    paired_sources(store, "toy", img, txt, alignment_key=key, dim=dim)
    return time.perf_counter() - t0


def stream_epoch(store, img, txt, key, dim) -> float:
    from embedstore.trainers.store_source import StoreSource

    t0 = time.perf_counter()
    src = StoreSource(store, "toy", image_model=img, text_model=txt, split_by="paper", image_alignment_key=key,
                      text_alignment_key=key, image_dim=dim, text_dim=dim, path="stream", chunk_rows=4096)
    for _ in src.batches("train", 64):
        pass
    return time.perf_counter() - t0


def measure(stores, rounds: int) -> list[dict]:
    rows = []
    for method, _, _ in METHODS:
        for path, fn in (("memory", memory_read), ("stream", stream_epoch)):
            times = {"stored": [], "computed": []}
            for kind in ("stored", "computed"):  # warm-up: imports, file cache
                store, img, txt, keys = stores[kind]
                fn(store, img, txt, *keys[method])
            for r in range(rounds):
                order = ("stored", "computed") if r % 2 == 0 else ("computed", "stored")
                for kind in order:
                    store, img, txt, keys = stores[kind]
                    times[kind].append(fn(store, img, txt, *keys[method]))
            a, b = np.median(times["stored"]), np.median(times["computed"])
            rows.append({"method": method, "path": path, "stored_s": a, "computed_s": b, "ratio": b / a})
    return rows


def emb_bytes(store) -> int:
    total = 0
    for dirpath, _, files in os.walk(store.uri):
        if ".lance" in dirpath and ("emb__" in dirpath or "transform_states" in dirpath
                                    or "alignment_members" in dirpath):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def competitors(k: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    sizes = [500] if args.quick else [int(s) for s in args.sizes.split(",")]
    rounds = 1 if args.quick else args.rounds
    info = machine()
    flags = open("/proc/cpuinfo").read()
    cpu_flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f" {f}" in flags)
    lines = [SECTION, "", machine_md(info) + f"; CPU flags: {cpu_flags}", "",
             "Wall seconds (median of alternating rounds) to read every aligned row of both modalities "
             "(memory) or stream one epoch of the train split (stream), from main's stored aligned rows and "
             "from parameters (rows computed when read); ratio = computed / stored.", ""]
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="aligned-reads-") as tmp:
            stores = build(Path(tmp), n)
            size = {k: emb_bytes(v[0]) for k, v in stores.items()}
            for label in ("quiet",) if args.quick else ("quiet", "loaded (2 CPU-bound competitors)"):
                procs = competitors() if label.startswith("loaded") else []
                load0 = os.getloadavg()[0]
                try:
                    rows = measure(stores, rounds)
                finally:
                    for p in procs:
                        p.kill()
                lines += [f"### {n} rows, {label} (load {load0:.2f} -> {os.getloadavg()[0]:.2f})", "",
                          md_table(["method", "path", "stored s", "computed s", "computed / stored"],
                                   [(r["method"], r["path"], f"{r['stored_s']:.3f}", f"{r['computed_s']:.3f}",
                                     f"{r['ratio']:.2f}") for r in rows]), ""]
            lines += [f"Embeddings, states and sample lists on disk at {n} rows: stored "
                      f"{size['stored'] / 2**20:.1f} MiB, computed {size['computed'] / 2**20:.1f} MiB.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        from store_size import write_section  # noqa: E402

        write_section(HERE / "results" / "store.md", text, SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
