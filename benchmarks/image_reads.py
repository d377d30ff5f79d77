"""What the byte check costs: decoding an image as before against reading, hashing and decoding the same bytes.

Before this change ``load_image`` let Pillow open the file by path; the
extract path now reads the file once, hashes the bytes (sha256, compared
with the stored ``image_sha256``) and decodes those bytes, turning them
upright by their EXIF orientation (:func:`embedstore.images.read_image`).
On the 270 real photos of ``../shared/data/ham10000-dev270`` (600x450 JPEG)
this times both per image, alternating rounds, as the machine is and with
two CPU-bound competitors; CPU seconds per image are reported beside wall
time because they depend less on other jobs. Run under the lab's lock::

    flock /work/bench.lock python benchmarks/image_reads.py --rounds 7
    # writes benchmarks/results/image_reads.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.benchlib import machine, machine_md, md_table, time_calls_cpu  # noqa: E402

DATA = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "ham10000-dev270" / "images"


def before(paths: list[str]) -> None:
    """The decode of ``load_image`` before the byte check: Pillow opens the path, converts to RGB."""
    from PIL import Image

    from embedstore.images import to_rgb

    for p in paths:
        with Image.open(p) as im:
            im.load()
            to_rgb(im)


def after(paths: list[str]) -> None:
    from embedstore.images import read_image

    for p in paths:
        read_image(p)


def isa_flags() -> str:
    """The vector ISA flags of this CPU that matter for the figures (read from /proc/cpuinfo)."""
    try:
        flags = set(open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return "unknown"
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags) or "none listed"


def measure(paths: list[str], rounds: int) -> dict[str, np.ndarray]:
    """Per round and variant: (wall s / image, CPU s / image); the order alternates round by round."""
    res: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for r in range(rounds):
        for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
            fn = before if name == "before" else after
            wall, cpu = time_calls_cpu(lambda: fn(paths), 1, warmup=1 if r == 0 else 0)
            res[name].append((wall[0] / len(paths), cpu / len(paths)))
    return {k: np.array(v) for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--images", default=str(DATA), help="a folder of photos (default: ham10000-dev270)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "image_reads.md"))
    args = ap.parse_args()
    folder = Path(args.images)
    if not folder.is_dir():
        sys.exit(f"Error: {folder} is not a folder of photos; set EMBEDSTORE_SHARED_DATA or pass --images")
    paths = sorted(str(p) for p in folder.iterdir() if p.is_file())
    info = machine()
    isa = isa_flags()
    print(f"{machine_md(info)}; ISA flags: {isa}", flush=True)
    rows = []
    for condition in ("quiet", "loaded"):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)] \
            if condition == "loaded" else []
        try:
            load = os.getloadavg()[0]
            res = measure(paths, args.rounds)
            load_after = os.getloadavg()[0]
        finally:
            for p in procs:
                p.kill()
                p.wait()
        med = {k: np.median(v, axis=0) for k, v in res.items()}
        paired = res["after"] / res["before"]  # same round, adjacent in time: drift hits both
        for name in ("before", "after"):
            ratio = ("1 (baseline)", "1 (baseline)") if name == "before" else tuple(
                f"{np.median(paired[:, j]):.3f} [{paired[:, j].min():.3f}, {paired[:, j].max():.3f}]"
                for j in (0, 1))
            rows.append([condition, f"{load:.2f} / {load_after:.2f}", name,
                         f"{med[name][0] * 1e3:.2f}", f"{med[name][1] * 1e3:.2f}", *ratio])
        print(f"{condition}: before {med['before'][1] * 1e3:.2f} ms CPU/image, after {med['after'][1] * 1e3:.2f}",
              flush=True)
    table = md_table(["condition", "load 1m before / after", "read", "wall ms / image (median)",
                      "CPU ms / image (median)", "wall ratio to before, median [min, max] of rounds",
                      "CPU ratio to before, median [min, max] of rounds"], rows)
    text = (f"# The byte check: decode as before vs read + sha256 + decode (+ EXIF)\n\nWritten by "
            f"`python benchmarks/image_reads.py --rounds {args.rounds}` on {time.strftime('%Y-%m-%d')}: "
            f"{len(paths)} photos of {folder.parent.name}, {args.rounds} alternating rounds per condition, medians; "
            "ratios are after / before within each round (min and max over rounds give the spread). *before* = "
            "Pillow opens the path and converts to RGB (the old `load_image`); *after* = "
            "`embedstore.images.read_image`: read the bytes once, sha256 them, decode those bytes, apply the EXIF "
            "orientation. loaded = two CPU-bound competitors started by the script.\n\n"
            f"{machine_md(info)}; ISA flags: {isa}.\n\n{table}\n")
    Path(args.out).write_text(text)
    print(table)


if __name__ == "__main__":
    main()
