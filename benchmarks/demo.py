"""How long ``embedstore demo`` takes a newcomer: first run on a fresh store, then the second run, quiet and loaded.

For ``embedstore demo --quick`` and ``embedstore demo`` this runs the real
CLI (a subprocess, Python start-up included) twice back to back: the first
run on a fresh store and output folder, the second with nothing changed,
which reuses every result and the written report. The baseline of each
second run is its own first run, measured in the same round: the figure
reported is the ratio second / first. Each round runs the commands once as
the machine is ("quiet") and once with two CPU-bound competitor processes
started here and killed after ("loaded"); conditions alternate within a
round. The ONNX export cache of the builtin image encoder is the user's, as
a newcomer's second demo would find it (a fresh cache adds about 0.4 s).

On a shared machine, give it the timing lock: it holds the lock for the
quiet and the loaded measurement of one command in one round (each a first
and a second run) and lets other benchmarks in between::

    python benchmarks/demo.py --lock /work/bench.lock [--rounds 2] [--only quick]

It prints a table and writes ``benchmarks/results/demo.md``, rewritten after
every measurement (a run cut short keeps what it measured).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, md_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"quick": ["demo", "--quick"], "full": ["demo"]}
LABELS = {"quick": "`embedstore demo --quick` (160 samples)", "full": "`embedstore demo` (400 samples)"}


@contextlib.contextmanager
def competitors(n: int) -> Iterator[None]:
    """``n`` CPU-bound busy-loop processes (:func:`embedstore.cpu.competitors`: fresh interpreters, not forks of
    this one, which has imported lance), given a second to be seen by the scheduler and the load average."""
    from embedstore.cpu import competitors as busy

    with busy(n):
        time.sleep(1.0)
        yield


@contextlib.contextmanager
def timing_lock(path: str | None) -> Iterator[None]:
    """Hold the machine's timing lock (``flock``) for the block; nothing when no lock file is given."""
    if not path:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cpu_flags() -> str:
    """The /proc/cpuinfo flags that decide the speed of the encoders' kernels."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((ln.split(":", 1)[1].split() for ln in fh if ln.startswith("flags")), [])
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in wanted)


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def run_demo(args: list[str], store: Path, out: Path) -> dict[str, object]:
    """One ``embedstore demo`` through the CLI: wall seconds, the demo's own timer, and what it reused."""
    exe = Path(sys.executable).parent / "embedstore"
    cmd = [str(exe) if exe.exists() else "embedstore", "--store", str(store), *args, "--out", str(out),
           "--no-progress"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    own = re.search(r"this run took ([\d.]+) s", done.stdout)
    stages = re.search(r"this run took [^\[]*\[([^\]]*)\]", done.stdout)
    return {"wall": wall, "own": float(own.group(1)) if own else None, "stages": stages.group(1) if stages else "",
            "reused": "nothing changed since" in done.stdout,
            "forward": re.search(r"(\d+) model forward calls", done.stdout).group(1)}


def one(which: str, condition: str, tmp: Path, samples: int | None = None) -> dict[str, object]:
    """First run on a fresh store and folder, then the second run, back to back."""
    store, out = tmp / f"store-{which}-{condition}", tmp / f"out-{which}-{condition}"
    for p in (store, out):
        shutil.rmtree(p, ignore_errors=True)
    cmd = COMMANDS[which] + (["--samples", str(samples)] if samples else [])
    before = load()
    first = run_demo(cmd, store, out)
    second = run_demo(cmd, store, out)
    return {"which": which, "condition": condition, "first": first, "second": second, "load_before": before,
            "load_after": load()}


def write(path: str, results: list[dict[str, object]], info: dict[str, str], start_load: str,
          samples: int | None, locked: bool) -> str:
    """The results table (every measurement, then the median ratio per command and condition) as markdown."""
    rows = []
    for res in results:
        f, s = res["first"], res["second"]
        rows.append([res["round"], LABELS[res["which"]], res["condition"], f"{f['wall']:.1f} s", f"{s['wall']:.2f} s",
                     f"{s['wall'] / f['wall']:.1%}", f"{s['own']:.2f} s" if s["own"] is not None else "",
                     "yes" if s["reused"] else "no", f"{f['forward']} / {s['forward']}",
                     f"{res['load_before']} → {res['load_after']}", f["stages"]])
    header = ["round", "command", "condition", "first run (fresh store)", "second run", "second / first",
              "second run, demo's own timer", "second run reused everything", "forward calls first / second",
              "load 1/5/15 min before → after", "first run's stages"]
    summary = []
    for which in COMMANDS:
        for condition in ("quiet", "loaded"):
            mine = [r for r in results if r["which"] == which and r["condition"] == condition]
            if not mine:
                continue
            med = lambda key: statistics.median(r[key]["wall"] for r in mine)  # noqa: E731
            ratios = [r["second"]["wall"] / r["first"]["wall"] for r in mine]
            summary.append([LABELS[which], condition, len(mine), f"{med('first'):.1f} s", f"{med('second'):.2f} s",
                            f"{statistics.median(ratios):.1%}", f"{max(ratios):.1%}"])
    table = md_table(header, rows)
    summary_table = md_table(["command", "condition", "measurements", "first run (median)", "second run (median)",
                              "second / first (median)", "second / first (worst)"], summary)
    text = (f"# `embedstore demo`: first run and second run, quiet and loaded\n\n"
            f"Written by `benchmarks/demo.py`"
            + (" (the quiet and loaded measurements of a round under one hold of the machine's timing lock)"
               if locked else "")
            + ". Wall time of the CLI command (a subprocess, Python start-up included); the second run follows "
            f"the first back to back with nothing changed. \"quiet\": the machine as it is (a shared machine: "
            f"see the load columns); \"loaded\": two CPU-bound competitor processes started by the benchmark "
            f"for the duration of both runs. The ratio second / first compares the two runs of one measurement; "
            f"conditions alternate within and across rounds.\n\n"
            f"- CPU: {info.get('cpu')} ({info.get('logical_cpus')} logical CPUs); flags: {cpu_flags()}\n"
            f"- load average (1/5/15 min) at start: {start_load}; at the last measurement: {load()}\n"
            f"- python {info.get('python')}, torch {info.get('torch', '?')}, lancedb {info.get('lancedb', '?')}\n"
            f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}"
            + (f"; synthetic samples: {samples} (not the demo's default)" if samples else "")
            + f"\n\n{summary_table}\n\nEvery measurement:\n\n{table}\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")
    return summary_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every command and condition")
    parser.add_argument("--only", choices=sorted(COMMANDS), default=None)
    parser.add_argument("--samples", type=int, default=None, help="synthetic samples (smoke tests; default the demo's)")
    parser.add_argument("--lock", default=None, help="lock file to hold (flock) around each measurement")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "demo.md"))
    args = parser.parse_args()
    which = [args.only] if args.only else ["quick", "full"]
    info = machine()
    start_load = load()
    results: list[dict[str, object]] = []
    summary = ""
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        for r in range(args.rounds):
            order = ("quiet", "loaded") if r % 2 == 0 else ("loaded", "quiet")  # alternate across rounds too
            for w in which:
                # one hold of the lock for both conditions: another benchmark never runs between them
                with timing_lock(args.lock):
                    for condition in order:
                        ctx = competitors(2) if condition == "loaded" else contextlib.nullcontext()
                        with ctx:
                            res = one(w, condition, Path(tmp), args.samples)
                        res["round"] = r + 1
                        results.append(res)
                        f, s = res["first"], res["second"]
                        print(f"round {r + 1} {w:<5} {condition:<6} first {f['wall']:7.1f} s  second "
                              f"{s['wall']:6.2f} s ({s['wall'] / f['wall']:.1%}; reused everything: {s['reused']})  "
                              f"load {res['load_before']} -> {res['load_after']}", flush=True)
                        summary = write(args.out, results, info, start_load, args.samples, bool(args.lock))
    print(summary)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
