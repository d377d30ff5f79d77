"""``extract --engine ray`` vs ``--engine local`` on this machine; appends a section to extract.md.

The same ``embedstore extract`` command runs as a fresh process with each
engine over the same real images into fresh stores, alternating engines so
they share the machine's load. Wall time includes Python start-up and imports
for both; the Ray runs also start a local Ray instance (this machine's CPUs)
and load one model per actor. The vectors of every Ray run are compared with
the local run's (max absolute difference).

Data: ``ham10000-dev270`` (270 real HAM10000 photos, 224x224 JPEG) from
``../shared/data``. Model: ``builtin:efficientnet-lite0`` (``offline`` extra).

Usage::

    python benchmarks/extract_ray.py                # writes results/extract_ray.md, splices it into extract.md
    python benchmarks/extract_ray.py --quick        # one repeat
    python benchmarks/extract_ray.py --splice-only  # re-insert the saved section, no runs

``benchmarks/extract.py`` keeps this marked section when it rewrites
extract.md; ``--splice-only`` puts the saved section back should it be lost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.benchlib import machine, machine_md, md_table  # noqa: E402 (also sets the offline env)

MODEL = "builtin:efficientnet-lite0"
DATA = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", REPO.parent / "shared" / "data"))
FOLDER = "ham10000-dev270"
BEGIN, END = "<!-- extract_ray.py: begin -->", "<!-- extract_ray.py: end -->"
#: (label, extra CLI args); the first is the reference
CONFIGS = [
    ("local, torch threads 2", ["--engine", "local", "--threads", "2"]),
    ("local, torch threads 1", ["--engine", "local", "--threads", "1"]),
    ("ray, 2 actors x 1 thread", ["--engine", "ray", "--workers", "2", "--threads", "1"]),
    ("ray, 1 actor x 2 threads", ["--engine", "ray", "--workers", "1", "--threads", "2"]),
]
#: (label, extra CLI args) of the fixed-cost runs: one batch only (--limit = batch size)
FIXED = [CONFIGS[0], CONFIGS[2]]


def run_once(tmp: Path, env: dict, k: int, label: str, extra: list[str], batch: int) -> dict:
    uri = str(tmp / f"store-{k}-{len(list(tmp.glob('store-*')))}")
    base = [sys.executable, "-c", "from embedstore.cli.main import main; main()", "--store", uri]
    subprocess.run(base + ["ingest", "ham10000", "--root", str(DATA / FOLDER), "--name", "ds", "--no-progress"],
                   cwd=REPO, check=True, capture_output=True, env=env)
    t0 = time.perf_counter()
    out = subprocess.run(base + ["extract", "ds", "--model", MODEL, "--modality", "image", "--batch-size",
                                 str(batch), "--json", *extra], cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{label} failed:\n{out.stderr[-3000:]}")
    rep = json.loads(out.stdout)
    return {"label": label, "wall": wall, "loop": rep["results"][0]["seconds"], "rows": rep["computed"],
            "uri": uri, "key": rep["model_key"]}


def vectors(uri: str, key: str):
    from embedstore import Store

    ids, x = Store(uri).embeddings("ds", key, "image", as_="numpy")
    return dict(zip(ids, x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "extract.md"))
    ap.add_argument("--section", default=str(REPO / "benchmarks" / "results" / "extract_ray.md"),
                    help="where this script's own section is kept")
    ap.add_argument("--splice-only", action="store_true", help="only re-insert the saved section into --out")
    args = ap.parse_args()
    if args.splice_only:
        splice(Path(args.out), Path(args.section).read_text().strip("\n"))
        return
    if not DATA.is_dir():
        sys.exit(f"real data folder {DATA} is absent: this benchmark needs ../shared/data")
    import numpy as np

    start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    # Ray's session files and auth token go to the temporary folder, deleted at the end.
    env = dict(os.environ, HOME=str(tmp / "home"), RAY_TMPDIR=str(tmp / "ray"), PYTHONPATH=str(REPO))
    (tmp / "home").mkdir()
    repeats = 1 if args.quick else 2
    runs: list[dict] = []
    fixed: list[dict] = []
    limit = ["--limit", str(args.batch_size)]
    try:
        info = machine()
        for k in range(repeats):
            for label, extra in FIXED:
                fixed.append(run_once(tmp, env, k, label, extra + limit, args.batch_size))
                print(f"fixed {label}: {fixed[-1]['wall']:.1f} s", file=sys.stderr)
            for label, extra in CONFIGS:
                runs.append(run_once(tmp, env, k, label, extra, args.batch_size))
                print(f"{label}: {runs[-1]['wall']:.1f} s", file=sys.stderr)
        for group in (fixed, runs):  # compare with the first run of the reference configuration
            local_vecs = vectors(group[0]["uri"], group[0]["key"])
            for r in group:
                got = vectors(r["uri"], r["key"])
                r["diff"] = max(float(np.abs(got[i] - local_vecs[i]).max()) for i in local_vecs)
                r["complete"] = sorted(got) == sorted(local_vecs)
        info["load_avg_1m_end"] = f"{os.getloadavg()[0]:.2f}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    section = render(runs, fixed, info, args.batch_size, repeats, time.time() - start)
    Path(args.section).write_text(section + "\n")
    splice(Path(args.out), section)
    print(section)


def splice(out: Path, section: str) -> None:
    """Replace this script's marked section in ``out``, or append it."""
    text = out.read_text() if out.exists() else "# Extraction benchmark\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    out.write_text(text)


def _rows(runs: list[dict], labels: list[str]) -> list[list]:
    ref = statistics.median(r["wall"] for r in runs if r["label"] == labels[0])
    out = []
    for label in labels:
        mine = [r for r in runs if r["label"] == label]
        wall = statistics.median(r["wall"] for r in mine)
        n = mine[0]["rows"]
        out.append([label, n, f"{wall:.1f}", f"{n / wall:.2f}", f"{statistics.median(r['loop'] for r in mine):.1f}",
                    "—" if label == labels[0] else f"**{wall - ref:+.1f} s ({wall / ref:.2f}x)**",
                    f"{max(r['diff'] for r in mine):.1e}", all(r["complete"] for r in mine),
                    " ".join(f"{r['wall']:.1f}" for r in mine)])
    return out


def summary(runs: list[dict], fixed: list[dict]) -> str:
    """One sentence quoting Ray's overhead from the medians."""
    def med(group: list[dict], label: str) -> float:
        return statistics.median(r["wall"] for r in group if r["label"] == label)

    ray2, local2 = CONFIGS[2][0], CONFIGS[0][0]
    best = min((c[0] for c in CONFIGS if c[0].startswith("local")), key=lambda lab: med(runs, lab))
    return (f"**Summary:** starting Ray costs **{med(fixed, ray2) - med(fixed, local2):+.1f} s** per run here "
            f"(one-batch job: {med(fixed, ray2):.1f} s with Ray vs {med(fixed, local2):.1f} s local). Over "
            f"{runs[0]['rows']} rows, {ray2} took {med(runs, ray2):.1f} s against {med(runs, best):.1f} s for the "
            f"fastest local setting ({best}) and {med(runs, local2):.1f} s for {local2}. Ray is for spreading "
            "work over machines; on one 2-core box it cannot add compute, only start-up.")


def render(runs: list[dict], fixed: list[dict], info: dict, batch: int, repeats: int, seconds: float) -> str:
    header = ["engine", "rows", "wall s (median)", "rows/s (wall)", "extract loop s", f"vs {CONFIGS[0][0]}",
              "max abs diff vs local", "all rows", "all runs wall s"]
    return "\n".join([
        BEGIN,
        "## (c) Engines: `--engine ray` vs `--engine local` on this machine", "",
        f"Generated by `python benchmarks/extract_ray.py` in {seconds:.0f} s. {machine_md(info)}.", "",
        f"`embedstore extract ds --model {MODEL} --modality image --batch-size {batch}` as a fresh process into a "
        f"fresh store over {FOLDER} (real photos); configurations alternate, median of {repeats}. Wall time "
        "includes Python start-up and imports for every row; the Ray rows also include starting a local Ray "
        "instance with this machine's CPUs, starting the actors (each imports torch and loads the model once) "
        "and shutting Ray down. *Extract loop* is the report's `seconds` (for Ray: from the first block sent, "
        "Ray and actor start-up included, to the last commit). *Max abs diff* compares every vector with the "
        "local 2-thread run: a different torch thread count changes the float summation order (the 1-thread "
        "rows), the same thread count gives identical vectors.", "",
        summary(runs, fixed), "",
        f"**Fixed cost** (one batch, `--limit {batch}`): what Ray adds before and after any work.", "",
        md_table(header, _rows(fixed, [c[0] for c in FIXED])), "",
        f"**Whole dataset** ({runs[0]['rows']} rows):", "",
        md_table(header, _rows(runs, [c[0] for c in CONFIGS])), "",
        END])


if __name__ == "__main__":
    main()
