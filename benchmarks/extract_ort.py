"""ONNX Runtime session settings, measured: what each change to the ``--backend onnx`` path is worth.

For the builtin encoders on real HAM10000 rows, in alternating rounds (one
``extract()`` run into a fresh store per variant per round), medians, each
against torch fp32 eager of the same run:

* ``spinning`` — the session as first shipped: idle intra-op threads
  spin-wait (ONNX Runtime's default);
* ``no spinning`` — :func:`embedstore.extractors.onnx.session_options` (the
  default now): idle threads sleep, leaving the cores to extract()'s
  background decode thread and to other jobs;
* ``+ transformer optimizer`` (text only) — the exported graph passed through
  ``onnxruntime.transformers.optimizer.optimize_model`` (SkipLayerNorm and
  BiasGelu fusions; attention stays unfused on the sdpa export), same
  session settings.

Usage::

    python benchmarks/extract_ort.py    # splices section "ort-session" into benchmarks/results/extract.md
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANCEDB_LOG", "error")

from benchmarks.benchlib import machine, machine_md, md_table  # noqa: E402

ROWS = (("builtin:efficientnet-lite0", "image", 64), ("builtin:minilm-l6", "text", 64))


def _variants(model: str, modality: str, tmp: Path) -> dict[str, Any]:
    """Extractors of each variant, loaded, exported and warmed up."""
    from embedstore.extractors import load_extractor
    from embedstore.extractors import onnx as eo

    plain = eo.session_options

    def spinning(threads: int) -> Any:
        opts = plain(threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        return opts

    out: dict[str, Any] = {}
    for name, opts in (("torch fp32 eager", None), ("onnxruntime fp32, spinning", spinning),
                       ("onnxruntime fp32, no spinning (default)", plain)):
        eo.session_options = opts or plain
        try:
            e = load_extractor(model, backend="torch" if opts is None else "onnx")
            e.forward(modality, e.prepare(modality, _probe(modality)))
        finally:
            eo.session_options = plain
        out[name] = e
    if modality == "text":
        import onnxruntime as ort
        from onnxruntime.transformers.optimizer import optimize_model

        e = load_extractor(model, backend="onnx")
        e.forward(modality, e.prepare(modality, _probe(modality)))
        runner = e._runners[modality]
        cfg = e.model.config
        fused = optimize_model(str(runner.path), model_type="bert", num_heads=cfg.num_attention_heads,
                               hidden_size=cfg.hidden_size, opt_level=0)
        path = tmp / "fused.onnx"
        fused.save_model_to_file(str(path))
        runner.session = ort.InferenceSession(str(path), plain(runner.session.get_session_options()
                                                               .intra_op_num_threads),
                                              providers=["CPUExecutionProvider"])
        out["onnxruntime fp32, no spinning + transformer optimizer"] = e
    return out


def _probe(modality: str) -> list[Any]:
    from embedstore.extractors.backends import probe_items

    return probe_items(modality, 2)


def measure(src: Any, tmp: Path, repeats: int) -> list[dict[str, Any]]:
    """Median e2e rows/s of every variant of every row, and the ratio to torch fp32 of the same run."""
    from embedstore import Store
    from embedstore.extract import extract

    rows = src.samples("ds")
    out = []
    for model, modality, n in ROWS:
        exts = _variants(model, modality, tmp)
        rates: dict[str, list[float]] = {k: [] for k in exts}
        for r in range(repeats):
            for k, e in exts.items():
                store = Store(tmp / f"run-{len(list(tmp.iterdir()))}")
                store.write_samples("ds", rows.slice(0, n))
                rep = extract(store, "ds", model, modality=modality, batch_size=32, extractor=e, progress=False)
                rates[k].append(rep.result(modality).rows_per_s)
        base = statistics.median(rates["torch fp32 eager"])
        for k, v in rates.items():
            out.append({"model": model, "modality": modality, "rows": n, "variant": k, "e2e": statistics.median(v),
                        "x": statistics.median(v) / base, "all": v})
    return out


def render(results: list[dict[str, Any]], repeats: int, info: dict[str, str]) -> str:
    """The markdown section."""
    body = [[r["model"], r["modality"], r["rows"], r["variant"], f"{r['e2e']:.2f}", f"**{r['x']:.2f}x**",
             " ".join(f"{x:.1f}" for x in r["all"])] for r in results]
    return "\n".join([
        "## (c2) ONNX Runtime session settings: each change against torch fp32, end to end", "",
        f"`python benchmarks/extract_ort.py`: {repeats} alternating rounds of `extract()` (batch 32, real "
        "HAM10000 rows, fresh store each run), medians; every variant's vectors pass the parity gate. "
        "Spinning = ONNX Runtime's default (idle intra-op threads spin-wait); the default now lets them sleep. "
        "The transformer optimizer row runs the graph after `onnxruntime.transformers.optimizer` fusions.", "",
        md_table(["model", "modality", "rows", "variant", "e2e rows/s", "vs torch fp32", "all runs"], body), "",
        f"Generated in the same run: {machine_md(info)}.", ""])


def main() -> None:
    import shutil

    from benchmarks.extract import DATA, _drop, _ingest, _spliced
    from embedstore import Store

    if not DATA.is_dir():
        sys.exit(f"real data folder {DATA} is absent: this benchmark needs ../shared/data")
    repeats = int(os.environ.get("REPEATS", "3"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-ort-"))
    os.environ["EMBEDSTORE_ONNX_CACHE"] = str(tmp / "onnx")
    os.environ["EMBEDSTORE_BACKEND_TABLE"] = str(tmp / "no-user-table.json")
    info = machine()
    t0 = time.time()
    try:
        src = Store(tmp / "src")
        _ingest(src, "ham10000-sample70", "ds")
        results = measure(src, tmp, repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_avg_1m_end"] = f"{os.getloadavg()[0]:.2f}"
    info["seconds"] = f"{time.time() - t0:.0f}"
    out = REPO / "benchmarks" / "results" / "extract.md"
    section = _spliced("ort-session", render(results, repeats, info))
    out.write_text(_drop("ort-session", out.read_text()).rstrip() + "\n" + section)
    print(section)


if __name__ == "__main__":
    main()
