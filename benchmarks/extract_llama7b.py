"""(d2) LLaMA-2-7B shape on this CPU: one text per llama.cpp call vs batched vs batched + shared prefixes.

A random-init **LLaMA-2-7B-shaped Q8_0** GGUF (6.74 B parameters, 7.2 GB;
the speed of a random file is the speed of the real one) is built offline
with :mod:`benchmarks.llama_gguf` (tensor by tensor, with the LLaMA
SentencePiece vocabulary) into ``--workdir`` (never the repository). The
prompts are HAM10000 ``ham10000-dev1000`` rows rendered with the store's
default HAM10000 prompt by embedstore's own prompt code (a seeded sample of
``--prompts``).

Each measurement is a fresh process (so its peak RSS is its own; the
weights are memory-mapped and stay in the page cache between processes)
that loads the ``gguf:`` extractor with one ``batching`` mode, warms up on
two other prompts, then times one ``forward`` over all the prompts. Rounds
alternate the three modes (rotating their order); texts/s are medians.
Then one round with two CPU-bound competitor processes. Vectors of every
mode are compared row by row with one text per call (min cosine, max
absolute difference). The token-savings table per dataset template comes
from :mod:`benchmarks.prefix_savings`, and the hours for BRSET's 16,266
prompts are projected from the measured tokens/s.

Run the timing under the shared lock, taken around each measurement (a
whole run takes hours on a shared 2-core machine)::

    python benchmarks/extract_llama7b.py --lock /work/bench.lock --workdir /scratch/dir \\
        --vocab llama_cpp_python-0.3.36.tar.gz

(``--shape tiny --prompts 8 --rounds 1 --no-loaded`` runs in seconds.)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.benchlib import machine, machine_md, md_table  # noqa: E402

MODES = ("single", "batched", "prefix")
LABELS = {"single": "one text per call (the paper's pattern)", "batched": "batched by tokens",
          "prefix": "batched + shared prefixes (default)"}
OUT = REPO / "benchmarks" / "results" / "extract.md"
SECTION = "llama7b"


def cpu_flags() -> str:
    """The SIMD flags llama.cpp's CPU kernels care about, from /proc/cpuinfo."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration):
        return "unknown"
    want = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8")
    return " ".join(f for f in want if f in flags) or "none of avx/avx2/avx512"


def cpu_model() -> str:
    """Model name, family and model number of this CPU (e.g. Zen 3 = family 25, model 1)."""
    info: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            info.setdefault(k.strip(), v.strip())
    except OSError:
        return "unknown"
    return f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"


def ham_sample(n: int, seed: int = 0) -> list[str]:
    """``n`` dev1000 prompts (the store's default HAM10000 template), a seeded sample, plus 2 for warm-up."""
    from benchmarks.prefix_savings import DATA, ham_prompts

    meta = DATA / "ham10000-dev1000" / "HAM10000_metadata.csv"
    if not meta.is_file():
        sys.exit(f"{meta} is absent: this benchmark needs ../shared/data/ham10000-dev1000")
    texts = ham_prompts(meta, "default")
    pick = np.random.default_rng(seed).choice(len(texts), size=n + 2, replace=False)
    return [texts[i] for i in pick]


# -- one measurement = one process ---------------------------------------------------------------------
def worker(gguf: str, mode: str, texts_file: str, vectors_out: str) -> None:
    """Load, warm up, time one forward over the prompts; print a JSON line (run as a subprocess)."""
    from embedstore.extractors import load_extractor

    texts = json.loads(Path(texts_file).read_text())
    warm, texts = texts[:2], texts[2:]
    t0 = time.perf_counter()
    ext = load_extractor(f"gguf:{gguf}", batching=mode)
    ext.ensure_loaded()
    load_s = time.perf_counter() - t0
    ext.forward("text", ext.prepare("text", warm))
    before = dict(ext.tokens)
    prepared = ext.prepare("text", texts)
    t0 = time.perf_counter()
    vectors = ext.forward("text", prepared)
    seconds = time.perf_counter() - t0
    np.save(vectors_out, vectors)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kib = {k: int(status[k].split()[0]) for k in ("VmHWM", "RssAnon", "RssFile") if k in status}
    tokens = {k: ext.tokens[k] - before[k] for k in ext.tokens}
    print(json.dumps({"mode": mode, "seconds": seconds, "texts": len(texts), "load_s": load_s, **tokens,
                      "peak_rss_gib": kib.get("VmHWM", 0) / 2**20, "rss_anon_gib": kib.get("RssAnon", 0) / 2**20,
                      "rss_file_gib": kib.get("RssFile", 0) / 2**20, "key": ext.identity.key}), flush=True)


LOCK: list[str | None] = [None]  # --lock: the shared timing lock, taken around each measurement


@contextlib.contextmanager
def timing_lock():
    """Hold ``--lock`` (flock(2), the lock ``flock(1)`` takes) for one measurement; other benchmarks interleave."""
    if LOCK[0] is None:
        yield
        return
    with open(LOCK[0], "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def measure(gguf: Path, mode: str, texts_file: Path, vectors_out: Path, loaded: bool = False) -> dict:
    """One worker process under the timing lock (with two competitors when ``loaded``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with timing_lock():
        load_before = float(open("/proc/loadavg").read().split()[0])
        procs = competitors() if loaded else []
        try:
            proc = subprocess.run([sys.executable, __file__, "--worker", mode, "--gguf", str(gguf), "--texts",
                                   str(texts_file), "--vectors", str(vectors_out)], env=env, capture_output=True,
                                  text=True)
        finally:
            for c in procs:
                c.kill()
                c.wait()
    if proc.returncode != 0:
        sys.exit(f"worker {mode} failed:\n{proc.stderr[-3000:]}")
    res = {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_before": load_before}
    with open(texts_file.parent / "measurements.jsonl", "a") as log:
        log.write(json.dumps({**res, "loaded": loaded, "loadavg": open("/proc/loadavg").read().split()[:3]}) + "\n")
    print(f"  {mode:8s} {res['texts'] / res['seconds']:.3f} texts/s, {res['evaluated'] / res['seconds']:.1f} "
          f"evaluated tokens/s, peak RSS {res['peak_rss_gib']:.2f} GiB", file=sys.stderr, flush=True)
    return res


def competitors(n: int = 2) -> list[subprocess.Popen]:
    """``n`` CPU-bound processes (the loaded condition)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def more_rounds(r: int, rounds: int, max_rounds: int, durations: list[float], deadline: float | None) -> bool:
    """Whether to start round ``r`` (0-based): always the first ``rounds``; then, up to ``max_rounds``, only
    while another round plus the loaded round (timed as 2.5 quiet rounds) still ends before ``deadline``."""
    if r < rounds:
        return True
    if r >= max_rounds or deadline is None or not durations:
        return False
    per = statistics.median(durations)
    return time.time() + per + 2.5 * per < deadline


def run(gguf: Path, texts: list[str], work: Path, rounds: int, loaded: bool, brset: list[str] | None = None,
        max_rounds: int | None = None, deadline: float | None = None, start: int = 0) -> dict:
    """Alternating rounds (quiet, as the machine is), then one loaded round; vectors of the first quiet round.

    With ``brset`` prompts, the first round also times one text per call and
    the default on them (the tokens/s of long prompts, for the projection).
    With ``deadline`` (a Unix time), rounds beyond ``rounds`` (up to
    ``max_rounds``) run while the timed rounds say they still fit. ``start``:
    the rounds a stopped run of this ``work`` folder completed (``--resume``);
    the next round continues their rotation, and only the new rounds are returned.
    """
    texts_file = work / "prompts.json"
    texts_file.write_text(json.dumps(texts))
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    long: dict[str, dict] = {}
    uptime = [open("/proc/loadavg").read().split()[:3]]
    durations: list[float] = []
    r = start
    while more_rounds(r, rounds, max_rounds or rounds, durations, deadline):
        print(f"round {r + 1} (at least {rounds})", file=sys.stderr, flush=True)
        t0 = time.time()
        for mode in MODES[r % 3:] + MODES[:r % 3]:
            results[mode].append(measure(gguf, mode, texts_file, work / f"{mode}-{r}.npy"))
        durations.append(time.time() - t0)
        print(f"  round {r + 1} took {durations[-1]:.0f} s", file=sys.stderr, flush=True)
        r += 1
        if brset and r == 1 and start == 0:
            brset_file = work / "prompts-brset.json"
            brset_file.write_text(json.dumps(brset))
            long = {m: measure(gguf, m, brset_file, work / f"brset-{m}.npy") for m in ("single", "prefix")}
    uptime.append(open("/proc/loadavg").read().split()[:3])
    busy: dict[str, dict] = {}
    if loaded:
        print("loaded round (two CPU-bound competitors)", file=sys.stderr, flush=True)
        for mode in MODES:
            busy[mode] = measure(gguf, mode, texts_file, work / f"{mode}-loaded.npy", loaded=True)
    uptime.append(open("/proc/loadavg").read().split()[:3])
    ref = np.load(work / "single-0.npy")
    parity = {}
    for mode in MODES:
        v = np.load(work / f"{mode}-0.npy")
        cos = (v * ref).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
        parity[mode] = {"min_cos": float(cos.min()), "max_abs": float(np.abs(v - ref).max()),
                        "max_ref": float(np.abs(ref).max()), "finite": bool(np.isfinite(v).all())}
    if long:
        a, b = np.load(work / "brset-single.npy"), np.load(work / "brset-prefix.npy")
        long["min_cos"] = float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
    return {"quiet": results, "loaded": busy, "parity": parity, "loadavg": uptime, "n": len(texts) - 2,
            "distinct": len(set(texts[2:])), "brset": long}


def from_measurements(work: Path) -> dict:
    """The ``run`` result of a run still going (or stopped): its ``measurements.jsonl`` and first-round vectors.

    Measurements on the HAM10000 prompts are quiet rounds in order, unless
    marked ``loaded`` (the round with competitors, kept when complete); those
    on fewer texts are the BRSET ones.
    """
    texts = json.loads((work / "prompts.json").read_text())
    rows = [json.loads(line) for line in (work / "measurements.jsonl").read_text().splitlines() if line.strip()]
    quiet: dict[str, list[dict]] = {m: [] for m in MODES}
    long: dict[str, dict] = {}
    busy: dict[str, dict] = {}
    for row in rows:
        if row.get("loaded"):
            busy[row["mode"]] = row
        elif row["texts"] == len(texts) - 2:
            quiet[row["mode"]].append(row)
        else:
            long[row["mode"]] = row
    n = min(len(v) for v in quiet.values())
    if n == 0:
        return {"interim": rows, "n": len(texts) - 2, "distinct": len(set(texts[2:]))}
    quiet = {m: v[:n] for m, v in quiet.items()}  # complete rounds only
    ref = np.load(work / "single-0.npy")
    parity = {}
    for mode in MODES:
        v = np.load(work / f"{mode}-0.npy")
        cos = (v * ref).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
        parity[mode] = {"min_cos": float(cos.min()), "max_abs": float(np.abs(v - ref).max()),
                        "max_ref": float(np.abs(ref).max()), "finite": bool(np.isfinite(v).all())}
    if {"single", "prefix"} <= long.keys():
        a, b = np.load(work / "brset-single.npy"), np.load(work / "brset-prefix.npy")
        long["min_cos"] = float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
    else:
        long = {}
    start = work / "uptime-start.txt"  # `uptime` just before the run, when saved
    first = (start.read_text().split("load average:")[1].replace(",", " ").split() if start.is_file()
             else [str(rows[0]["load_before"]), "?", "?"])
    return {"quiet": quiet, "loaded": busy if len(busy) == len(MODES) else {}, "parity": parity, "loadavg": [first, rows[-1]["loadavg"], rows[-1]["loadavg"]],
            "n": len(texts) - 2, "distinct": len(set(texts[2:])), "brset": long}


# -- report ---------------------------------------------------------------------------------------------
def _rate(res: dict, what: str = "texts") -> float:
    return res[what] / res["seconds"] if what == "texts" else res["evaluated"] / res["seconds"]


def tolerance_line(parity: dict) -> str:
    """What the measured cosines say about the 0.9999 tolerance, and so whether ``batching`` may be unkeyed."""
    worst = min(parity[m]["min_cos"] for m in MODES if m != "single")
    if worst >= 0.9999:
        return (f"**Tolerance on the 7B shape: within 0.9999** (min per-row cosine {worst:.6f}); on the small "
                "test GGUF too (`tests/test_gguf.py`). `batching` is still part of the key (the identity's `calls` "
                "entry), as `embedstore/extractors/gguf.py` explains.")
    return (f"**Tolerance on the 7B shape: NOT within 0.9999** (min per-row cosine {worst:.6f} against one text "
            "per call; >= 0.9999 on the small test GGUF, asserted in `tests/test_gguf.py`). So `batching` is **part "
            "of the key** (the identity's `calls` entry; `single` keeps the key stores had before batching): rows "
            "of different modes never share a key.")


def render(res: dict, savings: list[dict], info: dict, shape: str, params: float) -> str:
    quiet, busy, parity = res["quiet"], res["loaded"], res["parity"]
    distinct = res.get("distinct", res["n"])
    base = statistics.median(_rate(r) for r in quiet["single"])
    rows = []
    for mode in MODES:
        rates = [_rate(r) for r in quiet[mode]]
        med, first = statistics.median(rates), quiet[mode][0]
        loaded = ""
        if busy:
            lb = _rate(busy["single"])
            loaded = f"{_rate(busy[mode]):.3f} ({_rate(busy[mode]) / lb:.2f}x)"
        p = parity[mode]
        paired = [_rate(r) / _rate(s) for r, s in zip(quiet[mode], quiet["single"])]  # same round
        rows.append([LABELS[mode], f"{med:.3f}", f"{min(rates):.3f}-{max(rates):.3f}",
                     f"**{med / base:.2f}x** ({min(paired):.2f}-{max(paired):.2f})",
                     f"{first['evaluated']:,} / {first['prompt']:,}",
                     f"{statistics.median(_rate(r, 'tokens') for r in quiet[mode]):.1f}",
                     f"{first['decodes']}", f"{p['min_cos']:.6f}", f"{p['max_abs']:.2e}",
                     f"{max(r['peak_rss_gib'] for r in quiet[mode]):.2f}", loaded])
    timing = md_table(["llama.cpp calls", "texts/s (median)", "range", "vs one per call (per-round range)",
                       "tokens evaluated / in prompts",
                       "evaluated tokens/s", "decode calls", "min cos vs one per call", "max abs diff",
                       "peak RSS GiB", "loaded: texts/s (vs one per call)"], rows)
    tps = {m: statistics.median(_rate(r, "tokens") for r in quiet[m]) for m in MODES}
    long = res.get("brset") or {}
    long_tps = {m: _rate(long[m], "tokens") for m in ("single", "prefix") if m in long}

    def hours(row: dict) -> dict[str, float]:
        rate = long_tps if row["dataset"].startswith("BRSET") and long_tps else tps
        return {"single": row["prompt"] / rate["single"] / 3600, "batched": row["prompt"] / tps["batched"] / 3600,
                "prefix": row["evaluated"] / rate["prefix"] / 3600}

    proj = md_table(["dataset", "template", "prompts"] + [f"{LABELS[m]}: hours" for m in MODES] + ["speed-up"],
                    [[r["dataset"], r["template"], f"{r['rows']:,}"] + [f"{hours(r)[m]:.2f}" for m in MODES]
                     + [f"{hours(r)['single'] / hours(r)['prefix']:.1f}x"] for r in savings])
    br = next((s for s in savings if s["dataset"].startswith("BRSET") and s["template"] == "paper"), None)
    projection = ""
    if br:
        h = hours(br)
        projection = "\n".join([
            f"**Projected time for all {br['rows']:,} BRSET prompts (paper template, {br['mean_tokens']:.0f} tokens "
            f"on average: {br['prompt']:,} tokens, {br['evaluated']:,} evaluated with shared prefixes as extract "
            "plans them) on these 2 cores**, from the evaluated tokens/s measured above: "
            + ", ".join(f"{LABELS[m]} **{h[m]:.1f} h**" for m in MODES) + ". Every dataset template:", "",
            proj, "",
            "Hours = tokens to evaluate (table below) / the mode's evaluated tokens/s: for BRSET, the tokens/s "
            "measured on BRSET prompts below (long prompts make each single call a bigger batch); for the others, "
            "the HAM10000 medians above (SatelliteBench's prompts are longer, so its one-per-call hours are an "
            "upper bound)."])
        if long_tps:
            n = long["single"]["texts"]
            projection += "\n\n" + md_table(
                ["BRSET paper-template prompts (drawn values), first round", "texts/s", "tokens evaluated / in prompts",
                 "evaluated tokens/s", "decode calls", "peak RSS GiB"],
                [[f"{LABELS[m]} ({n} prompts)", f"{_rate(long[m]):.3f}",
                  f"{long[m]['evaluated']:,} / {long[m]['prompt']:,}", f"{long_tps[m]:.1f}", long[m]["decodes"],
                  f"{long[m]['peak_rss_gib']:.2f}"] for m in ("single", "prefix")])
            projection += f"\n\nmin cos between the two: {long['min_cos']:.6f}."
    qa, qb, qc = res["loadavg"]
    loads = [r.get("load_before", float("nan")) for m in MODES for r in quiet[m]]
    busy_loads = [r.get("load_before", float("nan")) for r in busy.values()]
    load_line = (f" 1-min load at the start of each measurement: quiet rounds {min(loads):.1f}-{max(loads):.1f}"
                 + (f", loaded round {min(busy_loads):.1f}-{max(busy_loads):.1f} (before its competitors)"
                    if busy_loads else "") + ".")
    from benchmarks.prefix_savings import render as render_savings

    return "\n".join([
        "## (d2) LLaMA-2-7B shape on 2 cores: batched decoding and shared prompt prefixes (llama.cpp Q8_0)", "",
        f"A random-init LLaMA-2-7B-shaped Q8_0 GGUF ({shape} shape: {params:.3g} B parameters, written tensor by "
        "tensor "
        "by `benchmarks/llama_gguf.py` with the LLaMA SentencePiece vocabulary; never committed) through the "
        f"`gguf:` extractor, weights memory-mapped, 1,024 tokens per decode call (micro-batches of 512). "
        f"{res['n']} HAM10000 dev1000 prompts ({distinct} distinct; the store's default "
        "HAM10000 prompt, rendered by embedstore's prompt code; a seeded sample), all three modes on the same "
        f"prompts, each timed in a fresh process after a 2-prompt warm-up; {len(quiet['single'])} alternating "
        "rounds (order rotated), medians"
        + (", then one round with two CPU-bound competitor processes" if busy else
           " (no round with competitors: see below)") + ". Cosines and "
        "differences: per row against one text per call (last-token vectors, unnormalised). Peak RSS: the "
        "process's VmHWM (mapped weight pages included).", "",
        timing, "",
        tolerance_line(parity), "",
        projection, "",
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; flags: {cpu_flags()}. Load (1/5/15 min) before "
        f"{'/'.join(qa)}, after the quiet rounds "
        f"{'/'.join(qb)}" + (f", after the loaded round {'/'.join(qc)}" if busy else "") + ";" + load_line, "",
        "### Tokens evaluated with shared prefixes, per dataset template (LLaMA-2 tokenizer)", "",
        SAVINGS_NOTE, "",
        render_savings(savings), ""])


SAVINGS_NOTE = (
    "Prompts rendered by embedstore's prompt code, tokenised by the LLaMA SentencePiece vocabulary "
    "(llama.cpp's `ggml-vocab-llama-spm.gguf`), planned as `extract` runs them: rows sorted by text, chunks of "
    "256 rows, decode calls of 1,024 tokens. One text per call and plain batching evaluate every token "
    "(ratio 1.00). Identical prompts count as a fully shared prefix. SatelliteBench: one prompt per city and "
    "week of the study window. BRSET: 16,266 rows of 8,524 patients with values drawn in the formats of its "
    "published `labels.csv` columns (`benchmarks/prefix_savings.py`); BRSET itself is not on this machine, so "
    "its ratios are estimates.")


def render_interim(res: dict, savings: list[dict], shape: str, params: float) -> str:
    """The measurements so far of a run without a complete round yet (every mode not yet timed)."""
    from benchmarks.prefix_savings import render as render_savings

    rows = [[LABELS[r["mode"]] + ("" if r["texts"] == res["n"] else f" (BRSET, {r['texts']} prompts)"),
             f"{_rate(r):.3f}", f"{r['evaluated']:,} / {r['prompt']:,}", f"{_rate(r, 'tokens'):.2f}",
             f"{r['seconds']:.0f}", f"{r['peak_rss_gib']:.2f} ({r['rss_file_gib']:.2f} mapped)",
             f"{r['load_before']:.1f}"] for r in res["interim"]]
    br = next((s for s in savings if s["dataset"].startswith("BRSET") and s["template"] == "paper"), None)
    single = [r for r in res["interim"] if r["mode"] == "single" and r["texts"] == res["n"]]
    proj = ""
    if br and single:
        h = br["prompt"] / _rate(single[0], "tokens") / 3600
        proj = (f"At that rate one text per call would take **{h:,.0f} h** for all {br['rows']:,} BRSET prompts "
                f"(paper template, {br['prompt']:,} tokens) on this loaded machine.")
    return "\n".join([
        "## (d2) LLaMA-2-7B shape on 2 cores: batched decoding and shared prompt prefixes (llama.cpp Q8_0)", "",
        f"**Run in progress: measurements so far, no complete round yet.** A random-init LLaMA-2-7B-shaped Q8_0 "
        f"GGUF ({shape} shape: {params:.3g} B parameters, built by `benchmarks/llama_gguf.py`; never committed) "
        f"through the `gguf:` extractor, weights memory-mapped; {res['n']} HAM10000 dev1000 prompts "
        f"({res['distinct']} distinct; the store's default HAM10000 prompt), each mode timed in a fresh process "
        "after a 2-prompt warm-up, under the shared timing lock. "
        f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; flags: {cpu_flags()}.", "",
        md_table(["llama.cpp calls", "texts/s", "tokens evaluated / in prompts", "evaluated tokens/s", "seconds",
                  "peak RSS GiB", "1-min load before"], rows), "",
        proj, "",
        "### Tokens evaluated with shared prefixes, per dataset template (LLaMA-2 tokenizer)", "",
        SAVINGS_NOTE, "",
        render_savings(savings), ""])


def splice(path: Path, text: str) -> None:
    """Put ``text`` between this section's markers in ``path`` (a new section goes at the end)."""
    import re

    old = path.read_text() if path.exists() else "# Extraction benchmark\n"
    block = f"<!-- {SECTION}: begin -->\n{text}<!-- {SECTION}: end -->\n"
    if f"<!-- {SECTION}: begin -->" in old:
        new = re.sub(rf"<!-- {SECTION}: begin -->.*?<!-- {SECTION}: end -->\n", lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + block
    path.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where the GGUF, the vocab and the vectors go (not the repository)")
    ap.add_argument("--vocab", help="ggml-vocab-llama-spm.gguf or the llama-cpp-python sdist (.tar.gz)")
    ap.add_argument("--shape", choices=["7b", "tiny"], default="7b")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="quiet rounds (at least)")
    ap.add_argument("--max-rounds", type=int, default=None,
                    help="with --deadline: more rounds, up to this many, while they fit")
    ap.add_argument("--deadline", default=None,
                    help="UTC time HH:MM by which the loaded round should end; sizes the extra rounds")
    ap.add_argument("--brset-prompts", type=int, default=8,
                    help="BRSET-template prompts timed once (one per call, default) for the projection; 0: none")
    ap.add_argument("--no-loaded", action="store_true", help="skip the round with two competitors")
    ap.add_argument("--resume", action="store_true",
                    help="continue a stopped run in --workdir: its complete rounds are kept, --rounds counts them "
                         "too, the BRSET prompts are not timed again, and the section is rendered from all rounds")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--lock", default=None,
                    help="take this flock around each measurement (e.g. /work/bench.lock) instead of running the "
                         "whole script under flock(1): other benchmarks can run between measurements")
    ap.add_argument("--savings-json", default=None,
                    help="the token-savings rows of 'prefix_savings.py --json' (computed here when absent)")
    ap.add_argument("--from-json", default=None,
                    help="re-render the section from a run's llama7b-results.json (no measuring)")
    ap.add_argument("--from-measurements", default=None,
                    help="render the complete rounds so far of a run's --workdir (a run still going or stopped)")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--gguf", help=argparse.SUPPRESS)
    ap.add_argument("--texts", help=argparse.SUPPRESS)
    ap.add_argument("--vectors", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.gguf, args.worker, args.texts, args.vectors)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        from benchmarks import llama_gguf

        params = llama_gguf.parameters(llama_gguf.SHAPES[saved.get("shape", "7b")], 32000) / 1e9
        text = render(saved["timing"], saved["savings"], saved["info"], saved.get("shape", "7b"), params)
        text += f"\nGenerated in the same run: {machine_md(saved['info'])}.\n"
        splice(Path(args.out), text)
        return print(text)
    if args.from_measurements:
        from benchmarks import llama_gguf

        work = Path(args.from_measurements)
        res = from_measurements(work)
        savings = json.loads(Path(args.savings_json or work / "savings.json").read_text())
        info = machine()
        params = llama_gguf.parameters(llama_gguf.SHAPES[args.shape], 32000) / 1e9
        text = (render_interim(res, savings, args.shape, params) if "interim" in res
                else render(res, savings, info, args.shape, params))
        text += f"\nRendered from the run's measurements: {machine_md(info)}.\n"
        splice(Path(args.out), text)
        return print(text)
    if not args.workdir or not args.vocab:
        ap.error("--workdir and --vocab are required")
    from benchmarks import llama_gguf, prefix_savings

    LOCK[0] = args.lock
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    vocab = prefix_savings.vocab_file(args.vocab, work)
    gguf = work / f"llama2-{args.shape}-shape-q8_0.gguf"
    if not gguf.is_file():
        print(f"writing {gguf} ...", file=sys.stderr, flush=True)
        llama_gguf.write_random_llama(gguf, vocab, llama_gguf.SHAPES[args.shape], progress=True)
    tokenize = prefix_savings.llama_tokenizer(vocab)
    texts = ham_sample(args.prompts)
    rows = prefix_savings.brset_rows(seed=1)
    pick = np.random.default_rng(0).choice(len(rows), size=args.brset_prompts + 2, replace=False)
    brset = prefix_savings.brset_prompts("paper", [rows[i] for i in pick]) if args.brset_prompts else None
    info = machine()
    deadline = None
    if args.deadline:
        import datetime as dt

        hh, mm = map(int, args.deadline.split(":"))
        now = dt.datetime.now(dt.timezone.utc)
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    start = 0
    if args.resume and (work / "measurements.jsonl").is_file():
        done = from_measurements(work)
        start = len(done["quiet"]["single"]) if "quiet" in done else 0
        print(f"resuming after {start} complete round(s)", file=sys.stderr, flush=True)
    res = run(gguf, texts, work, args.rounds, not args.no_loaded, brset, args.max_rounds, deadline, start)
    if args.resume:
        res = from_measurements(work)
    info["load_avg_1m_end"] = f"{os.getloadavg()[0]:.2f}"
    counted = sum(len(tokenize(t)) for t in texts[2:])
    if res["quiet"]["single"][0]["prompt"] != counted:  # the GGUF's vocabulary is the LLaMA one, token for token
        sys.exit(f"the model counted {res['quiet']['single'][0]['prompt']} prompt tokens, the vocabulary {counted}")
    cached = Path(args.savings_json) if args.savings_json else None
    if cached is not None and cached.is_file():
        savings = json.loads(cached.read_text())
    else:
        savings = prefix_savings.table(tokenize)
        (work / "savings.json").write_text(json.dumps(savings))
    params = llama_gguf.parameters(llama_gguf.SHAPES[args.shape], 32000) / 1e9
    text = render(res, savings, info, args.shape, params) + f"\nGenerated in the same run: {machine_md(info)}.\n"
    (work / "llama7b-results.json").write_text(json.dumps({"timing": res, "savings": savings, "info": info,
                                                           "shape": args.shape}))
    splice(Path(args.out), text)
    print(text)


if __name__ == "__main__":
    main()
