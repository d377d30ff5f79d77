"""``embedstore extract`` and ``embedstore models``: thin wrappers over :mod:`embedstore.extract`."""

from __future__ import annotations

import sys

import click

from .common import command, emit, get_store, table


def render(report) -> str:
    """Console text of an :class:`~embedstore.extract.ExtractReport`."""
    rows = [{"modality": r.modality, "computed": r.computed, "reused": r.reused, "skipped": len(r.skipped),
             "rows/s": r.rows_per_s, "forwards": r.forward_calls, "version": r.version, "table": r.table}
            for r in report.results]
    parity = "".join(f"  parity {m} min cos {c:.5f}" for m, c in report.parity.items())
    lines = [f"model {report.model_id}  model_key {report.model_key}  backend {report.backend} "
             f"({report.backend_reason}){parity}",
             table(rows, ["modality", "computed", "reused", "skipped", "rows/s", "forwards", "version", "table"])]
    for r in report.results:
        if r.computed:
            lines.append(f"{r.modality}: {r.computed} rows in {r.seconds:.1f} s = {r.rows_per_s:.1f} rows/s "
                         f"on {report.backend} (model load {report.load_seconds:.1f} s apart)")
    if report.busy:
        lines.append(report.busy)
    if report.backend.endswith(" bf16") and report.computed:
        from embedstore.cpu import native_bf16

        if not native_bf16():
            lines.append("this CPU has no native bf16 (no avx512_bf16/amx_bf16 flag): bf16 is emulated here and "
                         "usually slower than fp32; drop --quantize bf16 for the faster, lab-shared fp32 key")
    for s in report.skipped[:5]:
        lines.append(f"skipped {s.sample_id}: {s.reason}")
    if len(report.skipped) > 5:
        lines.append(f"... and {len(report.skipped) - 5} more skipped (full list with --json)")
    if report.other_keys:
        lines.append(f"this store also holds {report.model_id} vectors under model_key {', '.join(report.other_keys)} "
                     "(another backend/dtype/setting): kept as they are; pass the same --backend/--quantize as "
                     "then to extend those instead")
    if report.computed or report.reused:
        lines.append(f"new version(s) tagged {report.tag}")
    else:
        lines.append("nothing to compute: every sample is already embedded (no model load, no new version)")
    return "\n".join(lines)


@command()
@click.argument("dataset")
@click.option("--model", "model_id", required=True, metavar="ID",
              help="Model id: hf:ORG/NAME, hf-clip:ORG/NAME, open_clip:ARCH/PRETRAINED, "
                   "open_clip:hf-hub:ORG/NAME, builtin:NAME, or a local model directory.")
@click.option("--modality", type=click.Choice(["image", "text", "both"]), default="both", show_default=True,
              help="What to embed (both = every modality the model encodes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Rows per forward.")
@click.option("--backend", type=click.Choice(["torch", "onnx", "auto"]), default=None,
              help="What runs the forwards. fp32 on torch and on onnx share one model_key (same vectors within "
                   "cosine 0.99999, checked); bf16 and 8bit have their own. auto = torch fp32 or ONNX Runtime fp32, "
                   "whichever the measured table says is faster quiet and loaded (see 'embedstore backends'). "
                   "Default: auto for the builtin and paper encoders, else torch.")
@click.option("--quantize", type=click.Choice(["8bit", "bf16", "none"]), default=None,
              help="8bit (bitsandbytes for hf: text models; int8 with --backend onnx), bf16 (torch autocast), "
                   "or none (fp32). Default: the model's default.")
@click.option("--pooling", default=None, help="Override pooling: cls|mean|pooler (vision), last_token|mean (LLM).")
@click.option("--max-length", type=click.IntRange(min=1), default=None, help="Text truncation length in tokens.")
@click.option("--batching", type=click.Choice(["prefix", "batched", "single"]), default=None,
              help="gguf: models: prefix = many texts per llama.cpp call, shared prompt prefixes evaluated once "
                   "(default); batched = many texts per call; single = one text per call (the paper's pattern). "
                   "The same vectors (min cosine >= 0.9999) under the same model_key.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Compute at most N missing rows per modality.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=256, show_default=True,
              help="Rows per commit (a kill loses at most one chunk).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads (default: all cores).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: run the forwards on Ray actors (pip install 'embedstore[ray]'); see docs/scale-out.md.")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Ray cluster to join (auto, ray://HOST:10001). Default: a local Ray with this machine's CPUs.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray actors, i.e. model copies (default: cluster CPUs / --threads; --threads = CPUs per actor).")
def extract(ctx, store_uri, storage_options, as_json, dataset, model_id, modality, batch_size, backend, quantize,
            pooling, max_length, batching, limit, chunk_rows, threads, no_progress, engine, ray_address, workers):
    """Embed DATASET with a frozen model, computing only what is missing.

    Identical content already embedded by the same model (any dataset) is
    copied, not recomputed; a second run over the same data loads no model
    and writes nothing. Results are committed every --chunk-rows rows: after
    a kill or Ctrl-C, re-run the same command to continue.

    \b
    Examples:
      embedstore extract ham10000 --model builtin:efficientnet-lite0 --modality image
      embedstore extract ham10000 --model builtin:minilm-l6 --modality text
      embedstore extract brset --model hf:facebook/dinov2-base --modality image --backend torch
      embedstore extract ham10000 --model builtin:efficientnet-lite0 --backend onnx --quantize 8bit
      embedstore extract brset --model hf:meta-llama/Llama-2-7b-chat-hf --modality text --quantize 8bit
      embedstore extract brset --model gguf:/models/llama-2-7b-chat.Q8_0.gguf --modality text
      embedstore extract brset --model hf-clip:openai/clip-vit-base-patch32 --batch-size 24
      embedstore extract brset --model builtin:minilm-l6 --engine ray --ray-address auto --workers 8
    """
    from embedstore.extract import ExtractInterrupted
    from embedstore.extract import extract as run

    store = get_store(ctx, store_uri, storage_options)
    opts = {"max_length": max_length} if max_length else {}
    if batching:
        from embedstore.extractors import canonical_id

        if not canonical_id(model_id).startswith("gguf:"):
            raise click.UsageError(f"--batching applies to gguf: models only, not {model_id}: drop it")
        opts["batching"] = batching
    try:
        report = run(store, dataset, model_id, modality=modality, batch_size=batch_size, quantize=quantize,
                     pooling=pooling, limit=limit, chunk_rows=chunk_rows, threads=threads,
                     progress=not no_progress and not as_json, engine=engine, ray_address=ray_address,
                     workers=workers, backend=backend, **opts)
    except ExtractInterrupted as exc:
        click.echo(render(exc.report), err=True)
        click.echo(f"interrupted: {exc.report.computed} computed rows are committed; "
                   "re-run the same command to continue", err=True)
        sys.exit(130)
    emit(ctx, report.to_dict(), lambda: render(report))


@command()
def models(ctx, store_uri, storage_options, as_json):
    """List the known model ids and the model_keys present in the store.

    \b
    Example:
      embedstore models
    """
    from embedstore.extract import models_overview

    data = models_overview(get_store(ctx, store_uri, storage_options))

    def text() -> str:
        stored = [dict(m, dims=_dims(m["dims"]), rows=_dims(m["rows"])) for m in data["stored"]]
        known = [dict(m, dims=_dims(m["dims"])) for m in data["known"]]
        return "\n".join([
            "known model ids:",
            table(known, ["model_id", "modalities", "dims", "pooling", "quantize", "backend", "note"]),
            "", "in this store:",
            table(stored, ["model_key", "model_id", "modalities", "dims", "backend", "dtype", "pooling", "rows"])
            if stored else "(none yet: run 'embedstore extract')"])

    emit(ctx, data, text)


@command()
@click.option("--measure", is_flag=True, help="Measure now (quiet and loaded) and write the results to your "
              "backend table.")
@click.option("--model", "model_ids", multiple=True, metavar="ID",
              help="Model(s) to measure (default: the builtin encoders).")
@click.option("--dataset", default=None, metavar="NAME",
              help="Measure on rows of this ingested dataset (recommended); default: a synthetic probe batch.")
@click.option("--rows", type=click.IntRange(min=1), default=256, show_default=True,
              help="Rows of --dataset per modality (a seeded random choice).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Alternating rounds (each: every backend quiet and loaded); medians are reported.")
@click.option("--competitors", type=click.IntRange(min=0), default=2, show_default=True,
              help="CPU-bound processes of the loaded condition (0: quiet only).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads (default: all cores).")
def backends(ctx, store_uri, storage_options, as_json, measure, model_ids, dataset, rows, batch_size, repeats,
             competitors, threads):
    """Show (or --measure) the backend table that --backend auto picks from.

    Each row: rows/s of a backend against torch fp32 eager in the same run,
    with the machine as it is (quiet) and with --competitors CPU-bound
    processes (loaded), the slowest round, and the minimum per-row cosine
    against torch fp32. auto runs the fp32 key only: ONNX Runtime fp32 where
    it is at least 1.3x torch fp32 in its worse condition and never slower
    in a round, else torch fp32. Both give the same vectors under the same
    model_key, so measuring (which writes your own table) changes speed,
    never keys. bf16 has its own key and is never auto's pick: the table
    shows it; ask for it with --quantize bf16.

    \b
    Examples:
      embedstore backends
      embedstore backends --measure --model builtin:minilm-l6 --dataset ham10000 --rows 512
    """
    from embedstore.cpu import describe, native_bf16
    from embedstore.extractors.backends import (AUTO_MIN_SPEEDUP, auto_choice, backend_table, entry_speedup,
                                                shares_fp32_key, user_table_file)

    measured = None
    if measure:
        from embedstore.extractors.measure import dataset_items, measure_backends

        items = dataset_items(get_store(ctx, store_uri, storage_options), dataset, rows) if dataset else None
        measured = measure_backends(model_ids or ("builtin:efficientnet-lite0", "builtin:minilm-l6"),
                                    batch_size=batch_size, repeats=repeats, threads=threads, items=items,
                                    competitors=competitors, write=True)
    data = backend_table()
    shown = sorted({r.model_id for r in measured}) if measured is not None else sorted(data)
    out_rows = [dict(e, model_id=mid, key="fp32 (shared)" if shares_fp32_key(e["backend"], e["dtype"]) else "own",
                     worse=f"{entry_speedup(e):.2f}x", min_cos=f"{e['min_cos']:.7f}")
                for mid in shown for e in data.get(mid, [])]
    picks = {mid: auto_choice(mid, data.get(mid)) for mid in shown}
    notes = []
    for row in out_rows:
        if row["dtype"] == "bf16" and entry_speedup(row) >= AUTO_MIN_SPEEDUP:
            notes.append(f"{row['model_id']} {row['modality']}: torch bf16 is {row['worse']} torch fp32 in its worse "
                         "condition here, but has its own model_key (other machines of a lab would compute it "
                         "again): opt in with --quantize bf16")
    if measure and not dataset:
        notes.append("measured on a synthetic probe batch: pass --dataset NAME to measure on your own rows")
    cpu = describe()

    def text() -> str:
        cols = ["model_id", "modality", "backend", "dtype", "key", "quiet_speedup", "loaded_speedup",
                "min_round_speedup", "speedup", "e2e_speedup", "worse", "min_cos", "rows"]
        cols = [c for c in cols if any(c in r for r in out_rows)]
        return "\n".join([table(out_rows, cols),
                          *[f"auto for {mid}: {c.backend} {c.dtype} ({c.reason})" for mid, c in picks.items()],
                          *notes, f"this CPU: {cpu}" + ("" if native_bf16() else " (bf16 is emulated here)"),
                          f"(your measurements: {user_table_file()})"])

    emit(ctx, {"models": {mid: data.get(mid, []) for mid in shown}, "user_table": str(user_table_file()), "cpu": cpu,
               "auto": {mid: {"backend": c.backend, "dtype": c.dtype, "reason": c.reason}
                        for mid, c in picks.items()}}, text)


def _dims(d: dict) -> str:
    return ",".join(f"{k}:{v}" for k, v in d.items())
