"""Store size after a lab's workload, and after maintenance (issue 32).

Runs, as a lab would, the CLI on real photos (default: ``../shared/data/ham10000-dev1000``)::

    ingest ham10000 --split grouped
    extract --model builtin:efficientnet-lite0 --modality image
    extract --model builtin:minilm-l6 --modality text
    train --cv 5
    sweep --lambdas -1,-0.5,0,0.5,1
    gap --method gapshift / center / procrustes
    compact
    cleanup --older-than 0

and measures the store's bytes on disk after the workload, after ``compact`` and after
``cleanup``, each as a ratio to the raw vector bytes it was built from (rows x width x 4
of the extracted image and text vectors). ``--code DIR`` runs the CLI of another checkout
(e.g. an export of ``main``), so a before/after pair is measured on the same photos.
Sizes are counted, not timed: no lock or competitor is needed. The result is written as
the section ``## Store size`` of ``benchmarks/results/store.md`` (other sections kept).

Usage::

    python benchmarks/store_size.py --label this-branch
    python benchmarks/store_size.py --code /tmp/main-export --label main
    python benchmarks/store_size.py --quick          # 60 photos of dev270, no file written
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, machine_md, md_table  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
IMAGE, TEXT = "builtin:efficientnet-lite0", "builtin:minilm-l6"
LAMBDAS = "-1,-0.5,0,0.5,1"
GAP_METHODS = ("gapshift", "center", "procrustes")
STEPS = ("`ingest ham10000 --split grouped`", "`extract` with builtin:efficientnet-lite0 (image) and "
         "builtin:minilm-l6 (text)", "`train --cv 5`", f"`sweep --lambdas {LAMBDAS}`",
         "`gap --method` " + " / ".join(GAP_METHODS))
SECTION = "## Store size"


def store_bytes(uri: Path) -> dict[str, int]:
    """Bytes on disk per top-level entry of the store directory (tables, locks...)."""
    out: dict[str, int] = {}
    for entry in sorted(uri.iterdir()):
        total = entry.stat().st_size if entry.is_file() else 0
        for dirpath, _, files in os.walk(entry):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        out[entry.name] = total
    return out


def raw_vector_bytes(code: Path, uri: Path) -> int:
    """Rows x width x 4 of the unaligned (extracted) vectors in the store."""
    script = (
        "import json, sys, lance\n"
        "from embedstore import Store\n"
        "from embedstore.schema import parse_embeddings_table\n"
        "s = Store(sys.argv[1]); total = 0\n"
        "for t in s.list_tables():\n"
        "    p = parse_embeddings_table(t)\n"
        "    if p:\n"
        "        n = s.open_table(t).count_rows(\"alignment_key = 'none'\")\n"
        "        total += n * p[2] * 4\n"
        "print(json.dumps(total))\n")
    env = os.environ | {"PYTHONPATH": str(code)}
    res = subprocess.run([sys.executable, "-c", script, str(uri)], env=env, capture_output=True, text=True, check=True)
    return int(json.loads(res.stdout.strip().splitlines()[-1]))


def cli(code: Path, uri: Path, *args: str, log) -> float:
    env = os.environ | {"PYTHONPATH": str(code), "EMBEDSTORE_URI": str(uri)}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "embedstore.cli.main", *args], env=env, capture_output=True,
                         text=True, cwd=uri.parent)
    dt = time.perf_counter() - t0
    log.write(f"$ embedstore {' '.join(args)}  ({dt:.1f} s, rc {res.returncode})\n{res.stdout[-3000:]}\n"
              f"{res.stderr[-3000:]}\n")
    log.flush()
    if res.returncode:
        raise SystemExit(f"embedstore {' '.join(args)} failed (rc {res.returncode}):\n{res.stderr[-2000:]}")
    return dt


#: The steps that fill the store with extracted vectors (``--stop-after-extract`` / ``--from-extracted``).
EXTRACT_STEPS = 3


def workload(code: Path, root: Path, uri: Path, log, quick: bool, *, first: int = 0,
             last: int | None = None, fold_heads: bool = False) -> list[tuple[str, int, float]]:
    """Run steps ``first:last`` of the workload; ``[(step, store bytes after it, seconds)]``."""
    models = ["--image-model", IMAGE, "--text-model", TEXT]
    steps = [("ingest", ["ingest", "ham10000", "--root", str(root), "--split", "grouped"]),
             ("extract image", ["extract", "ham10000", "--model", IMAGE, "--modality", "image", "--no-progress"]),
             ("extract text", ["extract", "ham10000", "--model", TEXT, "--modality", "text", "--no-progress"]),
             ("train --cv 5", ["train", "ham10000", *models, "--cv", "5", "--no-progress",
                               *(["--save-heads"] if fold_heads else []),
                               *(["--epochs", "3"] if quick else [])]),
             ("sweep 5 λ", ["sweep", "ham10000", *models, "--lambdas", LAMBDAS, "--no-progress",
                            "--out", str(uri.parent / "sweep.png"), *(["--epochs", "3"] if quick else [])])]
    steps += [(f"gap {m}", ["gap", "ham10000", *models, "--method", m, "--max-queries", "200"]) for m in GAP_METHODS]
    out = []
    for name, args in steps[first:last]:
        dt = cli(code, uri, *args, log=log)
        out.append((name, sum(store_bytes(uri).values()), dt))
    return out


def quick_root(tmp: Path) -> Path:
    """60 photos of dev270 (for the smoke run)."""
    import csv

    src = DATA / "ham10000-dev270"
    dst = tmp / "ham60"
    (dst / "images").mkdir(parents=True)
    with open(src / "HAM10000_metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_class: dict[str, list] = {}
    for r in rows:
        by_class.setdefault(r["dx"], []).append(r)
    keep = [r for rs in by_class.values() for r in rs[:12]][:60]
    with open(dst / "HAM10000_metadata.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    for r in keep:
        (dst / "images" / f"{r['image_id']}.jpg").symlink_to(src / "images" / f"{r['image_id']}.jpg")
    return dst


def extracted(code: Path, root: Path, work: Path, quick: bool) -> None:
    """Only ingest and extract, into ``work/store``; the steps' sizes go to ``work/extracted.json``."""
    with open(work / "log.txt", "w") as log:
        steps = workload(code, root, work / "store", log, quick, last=EXTRACT_STEPS)
    (work / "extracted.json").write_text(json.dumps({"root": str(root), "steps": steps}, indent=1))


def measure(code: Path, root: Path, work: Path, quick: bool, from_extracted: Path | None = None,
            fold_heads: bool = False) -> dict:
    """The workload and maintenance on a new store in ``work`` (or on a copy of a ``--stop-after-extract`` one)."""
    import shutil

    uri = work / "store"
    done: list = []
    if from_extracted is not None:
        # the same bytes extract leaves: a copy of a store that ran only ingest + extract, with its step sizes
        done = [tuple(s) for s in json.loads((from_extracted / "extracted.json").read_text())["steps"]]
        shutil.copytree(from_extracted / "store", uri)
    with open(work / "log.txt", "w") as log:
        steps = done + workload(code, root, uri, log, quick, first=len(done), fold_heads=fold_heads)
        raw = raw_vector_bytes(code, uri)
        before = store_bytes(uri)
        t_compact = cli(code, uri, "compact", log=log)
        compacted = store_bytes(uri)
        t_cleanup = cli(code, uri, "cleanup", "--older-than", "0", log=log)
        cleaned = store_bytes(uri)
    return {"raw": raw, "steps": steps, "before": before, "compacted": compacted, "cleaned": cleaned,
            "seconds": {"compact": t_compact, "cleanup": t_cleanup}}


def mib(n: int) -> str:
    return f"{n / 2**20:.2f}"


def section(label: str, root: Path, res: dict, info: dict) -> str:
    raw = res["raw"]
    tot = {k: sum(res[k].values()) for k in ("before", "compacted", "cleaned")}
    lines = [f"### {label}", "",
             f"Photos: `{root}`; CPU {info['cpu']}, load {info.get('load_avg_1m', '?')}; "
             f"raw vector bytes {mib(raw)} MiB (rows x width x 4 of the extracted vectors).", "",
             md_table(["after", "store MiB", "store / raw", "step s"],
                      [(n, mib(b), f"{b / raw:.2f}", f"{dt:.1f}") for n, b, dt in res["steps"]]
                      + [("compact", mib(tot["compacted"]), f"{tot['compacted'] / raw:.2f}",
                          f"{res['seconds']['compact']:.1f}"),
                         ("cleanup --older-than 0", mib(tot["cleaned"]), f"{tot['cleaned'] / raw:.2f}",
                          f"{res['seconds']['cleanup']:.1f}")]), "",
             "Bytes per table (MiB): after the workload / after compact / after cleanup", "",
             md_table(["table", "workload", "compact", "cleanup"],
                      [(t, mib(res["before"].get(t, 0)), mib(res["compacted"].get(t, 0)),
                        mib(res["cleaned"].get(t, 0)))
                       for t in sorted(set(res["before"]) | set(res["compacted"]) | set(res["cleaned"]))]), ""]
    return "\n".join(lines)


def category(entry: str) -> str:
    """What a top-level entry of the store holds, for the breakdown."""
    name = entry.removesuffix(".lance")
    if name.startswith("emb__"):
        return "vectors (emb__*)"
    if name in ("alignments", "transform_states", "alignment_members"):
        return "alignments (registry, fitted transforms, sample lists)"
    if name == "heads":
        return "trained heads"
    if name == "runs":
        return "run records"
    return "samples, models, locks, leases"


def breakdown(res: dict) -> dict[str, dict[str, int]]:
    """``{category: {"before"/"compacted"/"cleaned": bytes}}``."""
    out: dict[str, dict[str, int]] = {}
    for stage in ("before", "compacted", "cleaned"):
        for entry, n in res[stage].items():
            out.setdefault(category(entry), {}).setdefault(stage, 0)
            out[category(entry)][stage] += n
    return out


STAGES = ("before", "compacted", "cleaned")


def tot(res: dict, leave_out: tuple[str, ...]) -> float:
    """Store / raw after the workload, leaving out the named top-level entries."""
    return sum(n for e, n in res["before"].items() if e not in leave_out) / res["raw"]


def comparison(before: dict, after: dict, labels: tuple[str, str]) -> str:
    """One table of two runs of the workload: store / raw after each step and after maintenance."""
    raw_a, raw_b = before["raw"], after["raw"]
    rows = []
    for (name, a, _), (_, b, _) in zip(before["steps"], after["steps"]):
        rows.append((name, f"{a / 2**20:.2f}", f"{a / raw_a:.2f}", f"{b / 2**20:.2f}", f"{b / raw_b:.2f}"))
    for stage, label in (("compacted", "compact"), ("cleaned", "cleanup --older-than 0")):
        a, b = sum(before[stage].values()), sum(after[stage].values())
        rows.append((label, f"{a / 2**20:.2f}", f"{a / raw_a:.2f}", f"{b / 2**20:.2f}", f"{b / raw_b:.2f}"))
    table = md_table(["after", f"{labels[0]} MiB", "store / raw", f"{labels[1]} MiB", "store / raw"], rows)
    cats = sorted(set(breakdown(before)) | set(breakdown(after)))
    ba, bb = breakdown(before), breakdown(after)
    parts = md_table(["what", f"{labels[0]}: workload / compact / cleanup (MiB)",
                      f"{labels[1]}: workload / compact / cleanup (MiB)", f"{labels[1]} workload / raw"],
                     [(c, " / ".join(f"{ba.get(c, {}).get(s, 0) / 2**20:.2f}" for s in STAGES),
                       " / ".join(f"{bb.get(c, {}).get(s, 0) / 2**20:.2f}" for s in STAGES),
                       f"{bb.get(c, {}).get('before', 0) / raw_b:.2f}") for c in cats])
    return table + "\n\n" + parts


def write_section(path: Path, body: str, section: str = SECTION) -> None:
    """Replace (or append) the ``section`` of ``path`` (``body`` starts with it), keeping the other sections."""
    text = path.read_text() if path.exists() else ""
    head, sep, rest = text.partition(section)
    tail = ""
    if sep:
        nxt = rest.find("\n## ")
        tail = rest[nxt:] if nxt >= 0 else ""
    path.write_text(head.rstrip() + ("\n\n" if head.strip() else "") + body.rstrip() + "\n" + tail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DATA / "ham10000-dev1000", help="HAM10000-layout photo folder")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose CLI runs the workload")
    ap.add_argument("--label", default=None, help="name of this measurement (default: the checkout's folder)")
    ap.add_argument("--work", type=Path, default=None, help="keep the store here (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    ap.add_argument("--section", type=Path, default=None,
                    help="write the markdown of this run here instead of into results/store.md")
    ap.add_argument("--quick", action="store_true", help="60 photos of dev270, 3 epochs; no results file")
    ap.add_argument("--stop-after-extract", action="store_true",
                    help="only ingest and extract into --work (for --from-extracted); nothing written")
    ap.add_argument("--from-extracted", type=Path, default=None, metavar="WORK",
                    help="start from a copy of the store a --stop-after-extract run left in WORK "
                         "(same photos and extract code: the same bytes; saves the extraction's time)")
    ap.add_argument("--save-fold-heads", action="store_true",
                    help="train --cv 5 --save-heads (keep the five fold heads, as before this change)")
    ap.add_argument("--note", action="append", default=[], help="with --compare: a line added under the tables")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE.json", "AFTER.json"), default=None,
                    help="only write the section comparing two runs saved with --json (same photos)")
    args = ap.parse_args(argv)
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        body = "\n".join([
            SECTION, "", f"Workload (as a lab would, with the CLI): {', '.join(STEPS)}; then `compact` and "
            f"`cleanup --older-than 0`. Photos: HAM10000 dev1000 (1,000 real photos, 224x224). Store bytes = every "
            "file under the store folder; raw = rows x width x 4 of the extracted vectors. Counted, not timed.", "",
            f"- {before['label']}: {machine_md(before['machine'])}",
            f"- {after['label']}: {machine_md(after['machine'])}", "",
            comparison(before, after, (before["label"], after["label"])), "",
            *[f"- {r['label']}: store / raw after the workload {tot(r, ()):.2f}; without the trained heads "
              f"{tot(r, ('heads.lance',)):.2f}; without the heads and the fitted transforms (transform_states) "
              f"{tot(r, ('heads.lance', 'transform_states.lance')):.2f}; after compact + cleanup "
              f"{sum(r['cleaned'].values()) / r['raw']:.2f}" for r in (before, after)], "",
            *[f"{n}\n" for n in args.note],
            "<details><summary>per table, each run</summary>", "",
            section(before["label"], Path("ham10000-dev1000"), before, before["machine"]),
            section(after["label"], Path("ham10000-dev1000"), after, after["machine"]), "</details>", ""])
        print(body)
        write_section(HERE / "results" / "store.md", body)
        return 0
    info = machine()
    with tempfile.TemporaryDirectory(prefix="store-size-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        root = quick_root(Path(tmp)) if args.quick else args.root
        if not root.exists():
            print(f"no photos at {root}: pass --root")
            return 2
        if args.stop_after_extract:
            extracted(args.code.resolve(), root, work, args.quick)
            return 0
        res = measure(args.code.resolve(), root, work, args.quick, args.from_extracted, args.save_fold_heads)
    label = args.label or args.code.resolve().name
    body = section(label, root, res, info)
    print(body)
    if args.json:
        args.json.write_text(json.dumps({"label": label, **res, "machine": info}, indent=1, default=str))
    if args.section:
        args.section.write_text(body)
    elif not args.quick:
        write_section(HERE / "results" / "store.md", f"{SECTION}\n\n{machine_md(info)}\n\n{body}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
