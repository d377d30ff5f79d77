"""How long ``embedstore train --cv 5`` of all five heads takes on ham10000-dev1000, before and after issue 26.

One command a user types: ``train dev1000 --fusion early --fusion late --fusion image --fusion text --fusion linear
--cv 5`` (honest mode; after the change this includes the inner-CV selection, the refits and the independent
scikit-learn baseline). Each round runs it once with the code before the change (``--before-code``) and once
with this tree, in alternating order, as the machine is and then with two CPU-bound competitor processes started
here (killed after); wall seconds and the child process's CPU seconds (user + system) are reported with their
medians and the after / before ratio. Run it under ``flock /work/bench.lock`` (one timing benchmark at a time);
the load average is recorded before and after.

Usage::

    flock /work/bench.lock python benchmarks/honest_time.py --store STORE --before-code /tmp/before
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import machine, machine_md, md_table  # noqa: E402
from honest import IMAGE, TEXT, cpu_line  # noqa: E402

HEADS = ("early", "late", "image", "text", "linear")


def one(code: str, store: str, dataset: str, cv: bool = True) -> tuple[float, float, str]:
    """Wall and CPU seconds and the printed output of one ``train --cv 5`` (``cv=False``: the default ``train``)
    of the five heads with the code in ``code``."""
    cmd = [sys.executable, "-m", "embedstore.cli.main", "--store", store, "train", dataset, "--image-model", IMAGE,
           "--text-model", TEXT, *[a for h in HEADS for a in ("--fusion", h)], *(["--cv", "5"] if cv else []),
           "--no-progress", "--no-record"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": code}, stdout=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--before-code", default=None, help="a checkout of the code before the change (omit: after only)")
    ap.add_argument("--conditions", default="as is,2 competitors", help="which of: as is, 2 competitors")
    ap.add_argument("--default-too", action="store_true",
                    help="also time the default `train` (no --cv) of this tree once as is, and keep both outputs")
    ap.add_argument("--dataset", default="dev1000")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "results" / "honest_time.md"))
    args = ap.parse_args()
    codes = {"before": args.before_code, "after": str(HERE.parent)} if args.before_code else {"after": str(HERE.parent)}
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    outputs: dict[str, str] = {}
    load0 = os.getloadavg()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for condition in conditions:
        hogs = []
        if condition == "2 competitors":
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        try:
            for r in range(args.rounds):
                order = list(codes) if r % 2 == 0 else list(codes)[::-1]
                for name in order:
                    wall, cpu, text = one(codes[name], args.store, args.dataset)
                    results.setdefault((condition, name), []).append((wall, cpu))
                    outputs.setdefault(f"`train --cv 5` ({name})", text)
                    print(f"{condition} round {r} {name}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
    if args.default_too:
        wall, cpu, text = one(codes["after"], args.store, args.dataset, cv=False)
        results[("as is", "after, default train (no --cv)")] = [(wall, cpu)]
        outputs["default `train` (after)"] = text
        print(f"as is default train: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    load1 = os.getloadavg()
    rows = []
    for condition, n in results:
        med = np.median(np.array(results[(condition, n)]), axis=0)
        base = results.get((condition, "before"))
        ratio = np.median(np.array(base), axis=0) if base and n != "before" else None
        rows.append([condition, n, f"{med[0]:.0f}", f"{med[1]:.0f}",
                     f"{med[0] / ratio[0]:.2f}x" if ratio is not None else "",
                     f"{med[1] / ratio[1]:.2f}x" if ratio is not None else ""])
    lines = ["# `train --cv 5` of all five heads on ham10000-dev1000: time before and after issue 26", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "", machine_md(machine()), cpu_line(),
             f"Load average (1, 5, 15 min) before: {load0[0]:.2f}, {load0[1]:.2f}, {load0[2]:.2f}; after: "
             f"{load1[0]:.2f}, {load1[1]:.2f}, {load1[2]:.2f}. Rounds per condition: {args.rounds}.", "",
             md_table(["condition", "code", "wall s (median)", "CPU s (median)", "wall after/before",
                       "CPU after/before"], rows)]
    for name, text in outputs.items():
        lines += ["", f"Output of {name}:", "", "```", text.strip(), "```"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
