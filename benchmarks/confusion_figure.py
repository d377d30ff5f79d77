"""The confusion figure with many classes: the full matrix (before) against the bounded one (after).

``embedstore.figures.confusion_plot`` drew one row, one column and one
count label per class, in a figure that grew with the class count: a
200-class report took minutes and gigabytes. It now draws at most
``MAX_CONFUSION_CLASSES`` classes (the best-supported ones and one pooled
"other"); ``max_classes=None`` still draws every class, which is the
"before" measured here, in the same run.

Each measurement is a fresh Python process drawing a seeded random confusion
matrix of ``--classes`` classes to PNG; memory is the growth of its
resident set while drawing (sampled every 20 ms) over its size before.
Rounds alternate before/after;
the table reports medians, once as the machine is and once with two
CPU-bound competitor processes started here. Run it under the lab's
benchmark lock::

    flock /work/bench.lock python benchmarks/confusion_figure.py --classes 200 --rounds 2
    # writes benchmarks/results/confusion_figure.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.benchlib import machine, machine_md, md_table  # noqa: E402

CHILD = """
import io, json, sys, threading, time
import numpy as np
import psutil
from embedstore.figures import confusion_plot
proc, peak, done = psutil.Process(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.02)
n, full = int(sys.argv[1]), sys.argv[2] == "full"
rng = np.random.default_rng(0)
support = rng.integers(5, 60, n)
conf = np.stack([rng.multinomial(s, np.r_[0.6, np.full(n - 1, 0.4 / (n - 1))][np.argsort(np.arange(n) != i)])
                 for i, s in enumerate(support)])
base = proc.memory_info().rss
threading.Thread(target=sample, daemon=True).start()
t0 = time.perf_counter()
buf = confusion_plot(conf, [f"class{i:03d}" for i in range(n)], io.BytesIO(), max_classes=None if full else 20)
seconds = time.perf_counter() - t0
done.set()
peak[0] = max(peak[0], proc.memory_info().rss)
from PIL import Image
buf.seek(0)
w, h = Image.open(buf).size
print(json.dumps({"seconds": seconds, "peak_mib": (peak[0] - base) / 2 ** 20,
                  "png_kib": len(buf.getvalue()) / 1024, "pixels": [w, h]}))
"""


def one(classes: int, variant: str, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, "-c", CHILD, str(classes), variant], env=env, capture_output=True,
                         text=True, timeout=timeout, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def competitors(n: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(classes: int, rounds: int, timeout: float) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {"full": [], "bounded": []}
    for r in range(rounds):  # alternate the order so drift hits both
        for variant in (("full", "bounded") if r % 2 == 0 else ("bounded", "full")):
            res = one(classes, variant, timeout)
            runs[variant].append(res)
            print(f"  round {r} {variant}: {res['seconds']:.2f} s, peak {res['peak_mib']:.0f} MiB, "
                  f"{res['pixels'][0]}x{res['pixels'][1]} px", flush=True)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "confusion_figure.md"))
    args = ap.parse_args()
    info = machine()
    print(machine_md(info), flush=True)
    flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0] if os.path.exists("/proc/cpuinfo") else ""
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f" {f}" in flags) or "none listed"
    results, loads = {}, {}
    for condition in ("quiet", "loaded"):
        procs = competitors() if condition == "loaded" else []
        try:
            before = os.getloadavg()[0]
            print(f"{condition} (load {before:.2f}):", flush=True)
            results[condition] = measure(args.classes, args.rounds, args.timeout)
            loads[condition] = (before, os.getloadavg()[0])
        finally:
            for p in procs:
                p.kill()
                p.wait()
    rows = []
    for condition, runs in results.items():
        med = {v: {k: float(np.median([r[k] for r in rs])) for k in ("seconds", "peak_mib", "png_kib")}
               for v, rs in runs.items()}
        px = {v: "x".join(map(str, rs[0]["pixels"])) for v, rs in runs.items()}
        for variant in ("full", "bounded"):
            m = med[variant]
            rows.append([condition, f"{loads[condition][0]:.2f} / {loads[condition][1]:.2f}", variant,
                         f"{m['seconds']:.2f}", " / ".join(f"{r['seconds']:.2f}" for r in runs[variant]),
                         f"{m['peak_mib']:.0f}", f"{m['png_kib']:.0f}", px[variant],
                         f"{med['full']['seconds'] / m['seconds']:.1f}x" if variant == "bounded" else "1 (baseline)",
                         f"{med['full']['peak_mib'] / max(m['peak_mib'], 1):.1f}x" if variant == "bounded" else "1"])
    table = md_table(["condition", "load 1m before / after", "figure", "median s", "rounds s", "peak RSS growth MiB",
                      "PNG KiB", "pixels", "speed-up vs full", "memory ratio full/bounded"], rows)
    text = (f"# Confusion figure with {args.classes} classes: full matrix vs bounded (top classes + other)\n\n"
            f"Written by `python benchmarks/confusion_figure.py --classes {args.classes} --rounds {args.rounds}` "
            f"on {time.strftime('%Y-%m-%d')}. Each figure is drawn in a fresh process (peak RSS = that process); "
            "rounds alternate full/bounded; medians. *full* = `confusion_plot(..., max_classes=None)`, every class "
            "drawn as before this change; *bounded* = the default (the 19 classes with the most test rows and one "
            "pooled 'other' class). loaded = two CPU-bound `while True: pass` processes started by the script.\n\n"
            f"{machine_md(info)}; ISA flags: {isa}.\n\n{table}\n")
    Path(args.out).write_text(text)
    print(table)


if __name__ == "__main__":
    main()
