"""Extraction pipeline benchmark: overhead of the pipeline, and the cost of a cached re-run.

(a) **Pipeline efficiency.** For the same model, batch size and torch threads:
    end-to-end throughput of :func:`embedstore.extract.extract` (JPEG decode
    + preprocessing in the background thread, forwards, chunked LanceDB
    commits; model load excluded) against the bare model forward over the
    same images already decoded and preprocessed into tensors. Goal: ratio
    >= 0.85. Runs alternate (e2e, bare) to share the machine's load; the
    medians are compared.

(b) **Computed once.** Wall time of a second ``extract`` over the same data
    (a fresh ``load_extractor`` + the cache check; no model load) against the
    first run (``load_extractor`` + model load + compute + writes). Goal:
    ratio <= 0.02 with zero model forwards. Timed in-process with the
    libraries already imported; the same two runs through the CLI (new
    processes, imports included) are shown for reference.

(c) **Backends.** Each backend against torch fp32 eager for the builtin
    encoders and DINOv2-base/CLIP-ViT-B/32-shaped models, end to end, quiet
    and with two CPU-bound competitors, on ham10000-dev1000 photos and
    prompts, with parity figures; and (c1) what length-sorted text batching
    saves (see :mod:`benchmarks.extract_backends`).

(d) **LLaMA-shaped.** The same small Llama weights through llama.cpp Q8_0
    (``gguf:``), bitsandbytes 8-bit and torch bf16: rows/s and the cosines
    between them (see :mod:`benchmarks.extract_llama`).

Data: real HAM10000 photos from ``../shared/data`` (``ham10000-sample70``,
600x450 JPEG; ``ham10000-dev270``, 224x224 JPEG), ingested with the HAM10000
adapter. Model: ``builtin:efficientnet-lite0`` (real ImageNet weights,
installed with the ``offline`` extra).

Usage::

    python benchmarks/extract.py            # writes benchmarks/results/extract.md
    python benchmarks/extract.py --quick    # one repeat, for a smoke run
    python benchmarks/extract.py --only backends --write-table   # (c) only; refreshes the table auto reads
    python benchmarks/extract.py --only backends --write-table --partial rows.json   # keep rows if cut short
    python benchmarks/extract.py --from-partial rows.json --write-table   # (c) from a run that was cut short
"""

from __future__ import annotations

import argparse
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


def _ingest(store, folder: str, name: str) -> None:
    from embedstore.ingest import ingest

    ingest(store, "ham10000", DATA / folder, name=name, progress=False)


def pipeline_ratio(tmp: Path, folder: str, batch: int, repeats: int) -> dict:
    """(a): median end-to-end rows/s vs median bare-forward rows/s on pre-decoded tensors."""
    import torch

    from embedstore import Store
    from embedstore.extract import cores, extract
    from embedstore.extractors import load_extractor
    from embedstore.images import load_image

    src = Store(tmp / f"src-{folder}")
    _ingest(src, folder, "ds")
    refs = src.samples("ds", columns=["image_ref"])["image_ref"].to_pylist()
    ext = load_extractor(MODEL)
    ext.ensure_loaded()
    torch.set_num_threads(cores())
    tensors = [ext.image_preprocess([load_image(r) for r in refs[i:i + batch]]) for i in range(0, len(refs), batch)]
    ext.forward("image", tensors[0])  # warm-up
    e2e, bare = [], []
    for k in range(repeats):
        store = Store(tmp / f"e2e-{folder}-{k}")
        _ingest(store, folder, "ds")
        rep = extract(store, "ds", MODEL, modality="image", batch_size=batch, extractor=ext, progress=False)
        e2e.append(rep.result("image").rows_per_s)
        t0 = time.perf_counter()
        for t in tensors:
            ext.forward("image", t)
        bare.append(len(refs) / (time.perf_counter() - t0))
    e, b = statistics.median(e2e), statistics.median(bare)
    paired = statistics.median(x / y for x, y in zip(e2e, bare))
    return {"folder": folder, "rows": len(refs), "batch": batch, "e2e": e, "bare": b, "ratio": e / b,
            "paired": paired, "e2e_all": e2e, "bare_all": bare}


def cached_ratio(tmp: Path, folder: str, batch: int) -> dict:
    """(b): second run time / first run time, in-process, plus the forward count of the second run."""
    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.extractors import load_extractor

    store = Store(tmp / f"cache-{folder}")
    _ingest(store, folder, "ds")
    t0 = time.perf_counter()
    first_ext = load_extractor(MODEL)
    first = extract(store, "ds", MODEL, modality="image", batch_size=batch, extractor=first_ext, progress=False)
    t_first = time.perf_counter() - t0
    version = store.version(first.result("image").table)
    t0 = time.perf_counter()
    second_ext = load_extractor(MODEL)
    second = extract(store, "ds", MODEL, modality="image", batch_size=batch, extractor=second_ext, progress=False)
    t_second = time.perf_counter() - t0
    assert store.version(first.result("image").table) == version
    return {"folder": folder, "rows": first.computed, "first_s": t_first, "second_s": t_second,
            "ratio": t_second / t_first, "forwards_first": first.forward_calls,
            "forwards_second": second.forward_calls, "second_loaded": second_ext._loaded,
            "version_unchanged": store.version(second.result("image").table) == version}


def cli_runs(tmp: Path, folder: str, batch: int) -> dict:
    """The same two runs through the CLI (fresh processes: imports included)."""
    uri = str(tmp / f"cli-{folder}")
    base = [sys.executable, "-c", "from embedstore.cli.main import main; main()", "--store", uri]
    subprocess.run(base + ["ingest", "ham10000", "--root", str(DATA / folder), "--name", "ds", "--no-progress"],
                   cwd=REPO, check=True, capture_output=True)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        subprocess.run(base + ["extract", "ds", "--model", MODEL, "--modality", "image", "--batch-size", str(batch),
                               "--no-progress"], cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return {"folder": folder, "first_s": times[0], "second_s": times[1], "ratio": times[1] / times[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat, small data only")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "extract.md"))
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds of (c)")
    ap.add_argument("--only", choices=["backends", "llama"], default=None,
                    help="run section (c) or (d) only and splice it into the existing results file")
    ap.add_argument("--write-table", action="store_true",
                    help="store (c)'s figures as embedstore/extractors/backend_table.json (the table auto reads)")
    ap.add_argument("--partial", default=None,
                    help="save (c)'s rows to this JSON file after each model row (kept if the run is cut short)")
    ap.add_argument("--from-partial", default=None,
                    help="render (c) from a --partial file of a run cut short (no measuring) and splice it in")
    args = ap.parse_args()
    if args.from_partial:
        return _from_partial(Path(args.from_partial), Path(args.out), args.write_table)
    if not DATA.is_dir():
        sys.exit(f"real data folder {DATA} is absent: this benchmark needs ../shared/data")
    start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    folders = ["ham10000-sample70"] if args.quick else ["ham10000-sample70", "ham10000-dev270"]
    repeats = 1 if args.quick else 4
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = machine()
        rounds = 1 if args.quick else args.repeats
        if args.only is None:
            pipe = [pipeline_ratio(tmp, f, args.batch_size, repeats) for f in folders]
            cache = [cached_ratio(tmp, f, args.batch_size) for f in folders]
            cli = [cli_runs(tmp, f, args.batch_size) for f in folders]
        new = {}
        if args.only in (None, "backends"):
            new["backends"] = _backends(tmp, rounds, args.write_table, args.quick, info, args.partial)
        if args.only in (None, "llama"):
            new["llama"] = _llama(tmp, rounds)
        info["load_avg_1m_end"] = f"{os.getloadavg()[0]:.2f}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sections = "".join(_spliced(k, f"{v}\nGenerated in the same run: {machine_md(info)}.\n") for k, v in new.items())
    old = out.read_text() if out.exists() else "# Extraction benchmark\n"
    for k in new:
        old = _drop(k, old)
    if args.only is not None:
        out.write_text(old.rstrip() + "\n" + sections)
        print(sections)
        return
    text = render(pipe, cache, cli, info, args.batch_size, repeats, time.time() - start)
    out.write_text(text + _kept_sections(old) + sections)
    print(text + sections)


def _llama(tmp: Path, repeats: int) -> str:
    from benchmarks import extract_llama as el
    from embedstore import Store

    src = Store(tmp / "src-llama")
    _ingest(src, "ham10000-sample70", "ds")
    texts = src.samples("ds", columns=["text"])["text"].to_pylist()[:32]
    return el.render(el.run(texts, tmp, repeats), repeats)


def _backends(tmp: Path, repeats: int, write_table: bool, quick: bool, info: dict[str, str],
              partial: str | None = None) -> str:
    from benchmarks import extract_backends as eb
    from embedstore import Store
    from embedstore.cpu import describe

    src = Store(tmp / "src-backends")
    _ingest(src, "ham10000-dev1000", "ds")
    os.environ["EMBEDSTORE_BACKEND_TABLE"] = str(tmp / "no-user-table.json")  # the shipped table only
    os.environ["EMBEDSTORE_ONNX_CACHE"] = str(tmp / "onnx")  # export afresh (export time is not timed)
    info["cpu_flags"] = describe()
    results = eb.run(src, tmp, repeats, quick, partial=Path(partial) if partial else None, info=info)
    batching = eb.text_batching(src, repeats)
    if write_table:
        from embedstore.extractors.backends import TABLE_FILE

        eb.write_table(results, TABLE_FILE, {**info, "load_avg_1m_end": f"{os.getloadavg()[0]:.2f}"})
        results = eb.mark_defaults(results)
    return eb.render(results, repeats, batching, describe())


def _from_partial(partial: Path, out: Path, write_table: bool) -> None:
    """Section (c) from the rows a cut-short run saved with ``--partial``, spliced into ``out``."""
    import json

    from benchmarks import extract_backends as eb

    saved = json.loads(partial.read_text())
    os.environ["EMBEDSTORE_BACKEND_TABLE"] = f"{partial}.no-user-table"  # the shipped table only
    info, results = saved["info"], saved["rows"]
    info.setdefault("load_avg_1m_end", f"{os.getloadavg()[0]:.2f} (when rendered)")
    if write_table:
        from embedstore.extractors.backends import TABLE_FILE

        eb.write_table(results, TABLE_FILE, info)
    results = eb.mark_defaults(results)
    note = "" if len(results) >= len(eb.ROWS) else (
        f"\nRows measured before the run was cut short: {', '.join(r['label'] for r in results)} "
        f"(of {len(eb.ROWS)}).\n")
    section = _spliced("backends", eb.render(results, saved["repeats"], cpu=info.get("cpu_flags", "")) + note
                       + f"\nGenerated in the same run: {machine_md(info)}.\n")
    out.write_text(_drop("backends", out.read_text()).rstrip() + "\n" + section)
    print(section)


def _spliced(name: str, text: str) -> str:
    return f"\n<!-- {name}: begin -->\n{text}<!-- {name}: end -->\n"


def _drop(name: str, text: str) -> str:
    import re

    return re.sub(rf"\n?<!-- {name}: begin -->.*?<!-- {name}: end -->\n?", "", text, flags=re.S)


def _kept_sections(old: str) -> str:
    """Sections other scripts spliced into the file (``<!-- NAME: begin -->`` ... ``<!-- NAME: end -->``)."""
    import re

    found = re.finditer(r"<!-- ([\w.]+): begin -->.*?<!-- \1: end -->", old, flags=re.S)
    return "".join("\n" + m.group(0) + "\n" for m in found)


def render(pipe, cache, cli, info, batch, repeats, seconds) -> str:
    a = md_table(["data", "rows", "batch", "end-to-end rows/s (median)", "bare forward rows/s (median)",
                  "ratio of medians (goal >= 0.85)", "median of paired ratios", "all e2e / bare runs"],
                 [[p["folder"], p["rows"], p["batch"], f"{p['e2e']:.2f}", f"{p['bare']:.2f}", f"**{p['ratio']:.2f}**",
                   f"{p['paired']:.2f}",
                   " ".join(f"{x:.1f}" for x in p["e2e_all"]) + " / " + " ".join(f"{x:.1f}" for x in p["bare_all"])]
                  for p in pipe])
    b = md_table(["data", "rows", "first run s", "second run s", "ratio (goal <= 0.02)", "forwards first / second",
                  "model loaded on 2nd run", "version unchanged"],
                 [[c["folder"], c["rows"], f"{c['first_s']:.2f}", f"{c['second_s']:.3f}", f"**{c['ratio']:.4f}**",
                   f"{c['forwards_first']} / {c['forwards_second']}", c["second_loaded"], c["version_unchanged"]]
                  for c in cache])
    c = md_table(["data", "CLI first run s", "CLI second run s", "ratio"],
                 [[r["folder"], f"{r['first_s']:.2f}", f"{r['second_s']:.2f}", f"{r['ratio']:.3f}"] for r in cli])
    return "\n".join([
        "# Extraction benchmark", "",
        f"Generated by `python benchmarks/extract.py` in {seconds:.0f} s. {machine_md(info)}.", "",
        f"Model `{MODEL}` (real ImageNet weights), real HAM10000 photos ingested with the HAM10000 adapter. "
        "The machine is shared with other jobs (see the load averages): absolute rows/s are noisy; "
        "each ratio compares runs made back to back under the same load.", "",
        f"## (a) Pipeline efficiency: end-to-end vs bare forward (same model, batch {batch}, torch threads = cores)", "",
        "End-to-end = `extract()` rows/s: JPEG decode + resize/normalise in the background thread, batched "
        "forwards under `torch.inference_mode()`, chunked LanceDB commits (model load excluded). Bare = the "
        f"same forwards over tensors decoded and preprocessed beforehand. {repeats} alternating (e2e, bare) pairs; "
        "a ratio above 1 only means the machine's load changed between the two runs of a pair. The e2e time "
        "includes filling the pipeline (the first batch is decoded before the first forward).", "",
        a, "",
        "## (b) Computed once: second run over cached data vs first run", "",
        "In-process wall time of `load_extractor()` + `extract()`; the first run includes the model load, the "
        "second run finds nothing missing, so it loads no model, runs no forward and writes no version.", "",
        b, "",
        "For reference, the same two runs as `embedstore extract` processes (Python start-up and library "
        "imports included in both):", "",
        c, ""])


if __name__ == "__main__":
    main()
