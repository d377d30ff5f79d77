"""What the byte check costs: decoding an image as before against reading, hashing and decoding the same bytes.

Before this change ``load_image`` let Pillow open the file by path; the
extract path now reads the file once, hashes the bytes (sha256, compared
with the stored ``image_sha256``) and decodes those bytes, turning them
upright by their EXIF orientation (:func:`embedstore.images.read_image`).
Three variants per image, in rotating order within each round:

- *before*: Pillow opens the path, converts to RGB (the old ``load_image``);
- *read+decode*: :func:`embedstore.images.load_image` (read the bytes once,
  decode them, EXIF orientation, the header's decoded-size check), no hash;
- *after*: :func:`embedstore.images.read_image`, the same plus the sha256.

On two real photo sets of different size, ``ham10000-dev270`` (270 JPEGs of
224x224, as the dev sets hold them) and ``ham10000-sample70`` (70 original
600x450 JPEGs), as the machine is and with two CPU-bound competitors; CPU
seconds per image are reported beside wall time because they depend less on
other jobs. Ratios are per round (variants adjacent in time), median and
[min, max] over rounds. Run under the lab's lock::

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

SHARED = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETS = [SHARED / "ham10000-dev270" / "images", SHARED / "ham10000-sample70" / "images"]
VARIANTS = ("before", "read+decode", "after")


def before(paths: list[str]) -> None:
    """The decode of ``load_image`` before the byte check: Pillow opens the path, converts to RGB."""
    from PIL import Image

    from embedstore.images import to_rgb

    for p in paths:
        with Image.open(p) as im:
            im.load()
            to_rgb(im)


def read_decode(paths: list[str]) -> None:
    """The new read without the hash: bytes read once, decoded, turned upright."""
    from embedstore.images import load_image

    for p in paths:
        load_image(p)


def after(paths: list[str]) -> None:
    """What extract does now: bytes read once, hashed, decoded, turned upright."""
    from embedstore.images import read_image

    for p in paths:
        read_image(p)


FUNCS = {"before": before, "read+decode": read_decode, "after": after}


def isa_flags() -> str:
    """The vector ISA flags of this CPU that matter for the figures (read from /proc/cpuinfo)."""
    try:
        flags = set(open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        return "unknown"
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags) or "none listed"


def measure(paths: list[str], rounds: int) -> dict[str, np.ndarray]:
    """Per round and variant: (wall s / image, CPU s / image); the order rotates round by round."""
    res: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for name in VARIANTS[r % 3:] + VARIANTS[: r % 3]:
            wall, cpu = time_calls_cpu(lambda: FUNCS[name](paths), 1, warmup=1 if r == 0 else 0)
            res[name].append((wall[0] / len(paths), cpu / len(paths)))
    return {k: np.array(v) for k, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--images", nargs="+", default=[str(p) for p in SETS], help="folders of photos")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "image_reads.md"))
    args = ap.parse_args()
    sets = {}
    for folder in map(Path, args.images):
        if not folder.is_dir():
            sys.exit(f"Error: {folder} is not a folder of photos; set EMBEDSTORE_SHARED_DATA or pass --images")
        paths = sorted(str(p) for p in folder.iterdir() if p.is_file())
        from PIL import Image

        with Image.open(paths[0]) as im:
            size = "x".join(map(str, im.size))
        sets[f"{folder.parent.name} ({len(paths)} x {size})"] = paths
    info = machine()
    isa = isa_flags()
    print(f"{machine_md(info)}; ISA flags: {isa}", flush=True)
    rows = []
    for condition in ("quiet", "loaded"):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)] \
            if condition == "loaded" else []
        try:
            for label, paths in sets.items():
                load = os.getloadavg()[0]
                res = measure(paths, args.rounds)
                load_after = os.getloadavg()[0]
                med = {k: np.median(v, axis=0) for k, v in res.items()}
                for name in VARIANTS:
                    paired = res[name] / res["before"]  # same round, adjacent in time: drift hits both
                    ratio = ("1 (baseline)", "1 (baseline)") if name == "before" else tuple(
                        f"{np.median(paired[:, j]):.3f} [{paired[:, j].min():.3f}, {paired[:, j].max():.3f}]"
                        for j in (0, 1))
                    rows.append([condition, label, f"{load:.2f} / {load_after:.2f}", name,
                                 f"{med[name][0] * 1e3:.2f}", f"{med[name][1] * 1e3:.2f}", *ratio])
                print(f"{condition} {label}: " + ", ".join(f"{n} {med[n][1] * 1e3:.2f}" for n in VARIANTS)
                      + " ms CPU/image", flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    table = md_table(["condition", "photos", "load 1m before / after", "read", "wall ms / image (median)",
                      "CPU ms / image (median)", "wall ratio to before, median [min, max] of rounds",
                      "CPU ratio to before, median [min, max] of rounds"], rows)
    text = (f"# The byte check: decode as before vs read + sha256 + decode (+ EXIF)\n\nWritten by "
            f"`python benchmarks/image_reads.py --rounds {args.rounds}` on {time.strftime('%Y-%m-%d')}: "
            f"{args.rounds} rounds per photo set and condition, the three variants in rotating order; medians. "
            "Ratios are variant / before within each round (min and max over rounds give the spread). *before* = "
            "Pillow opens the path and converts to RGB (the old `load_image`); *read+decode* = "
            "`embedstore.images.load_image` (read the bytes once, decode them, EXIF orientation), no hash; "
            "*after* = `embedstore.images.read_image`, the same plus the sha256 that extract compares with the "
            "stored hash. loaded = two CPU-bound competitors started by the script.\n\n"
            f"{machine_md(info)}; ISA flags: {isa}.\n\n{table}\n")
    Path(args.out).write_text(text)
    print(table)


if __name__ == "__main__":
    main()
