"""``embedstore demo``: a thin wrapper over :func:`embedstore.trainers.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path

import click

from .common import command, emit, get_store, table


def render(res) -> str:
    """Console text of a :class:`~embedstore.trainers.demo.DemoResult`."""
    what = ("SYNTHETIC data (generated shapes and made-up metadata text, not patients)" if res.synthetic
            else f"{res.kind} data from {res.root}")
    seeds = res.rows[0]["seeds"] if res.rows else 0
    lines = [f"embedstore demo{' --quick' if res.quick else ''}: dataset '{res.dataset}', {what}", "",
             f"results on the test split (mean ± sd over {seeds} seeds, honest protocol):",
             table(res.rows, ["setting", "alignment", "seeds", "test accuracy", "test macro-F1"]),
             "gap shift: both modalities L2-normalised (the narrower one interpolated to the wider width), then "
             "moved by λ/2 of their centroid gap; λ=0 only normalises. λ is chosen on validation macro-F1.",
             "the gap shift's own effect (paired on the same test rows, against the sweep's λ=0 row):",
             *[f"  {s['fusion']} fusion: {s['vs_lam0']['claim']}" for s in res.sweeps if s.get("vs_lam0")], ""]
    g = res.gap
    gap_rows = [{"modality gap": name, "before": g[name][0], "after (λ=1)": g[name][1]}
                for name in ("gap_norm", "centroid_cosine", "paired_cosine_median", "recall@1 image→text")]
    lines += [table(gap_rows), ""]
    if res.predictions:
        lines += ["held-back test samples predicted with the stored early-fusion heads (mean over seeds):",
                  table(res.predictions, ["sample", "true label", "predicted", "probability"]), ""]
    lines.append(f"embeddings: {res.computed} computed, {res.reused} reused from the store, "
                 f"{res.forward_calls} model forward calls")
    if res.reused_run:
        lines.append(f"nothing changed since the run that finished {res.reused_run} (the same store commits, data "
                     "files, code and options): every result above and the report are that run's, reused; nothing "
                     "was ingested, embedded, trained, diagnosed or written")
    elif res.all_cached:
        lines.append("every embedding was already in the store: no model was loaded and no forward pass ran")
    if res.ingest_reused and not res.reused_run:
        lines.append("ingest checks reused: the data files and the samples table are as the last run left them")
    prev = res.first_run
    took = f"this run took {res.seconds:.1f} s"
    if prev:
        ratio = prev["seconds"] / res.seconds if res.seconds > 0 else float("inf")
        took += (f"; the first demo run on this store took {prev['seconds']:.1f} s "
                 f"({prev['computed']} embeddings computed): {ratio:.1f}x as long")
    lines.append(took + "  [" + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items() if k != "total") + "]")
    if res.busy:
        lines.append(res.busy)
    if res.skipped:
        lines.append(f"skipped at ingest: {res.skipped} sample(s) (see 'embedstore ingest --json' for the list)")
    lines += ["", f"report: {Path(res.report).resolve()}", f"store:  {res.store}"]
    return "\n".join(lines)


@command()
@click.option("--root", type=click.Path(exists=True), default=None,
              help="HAM10000 folder (HAM10000_metadata.csv + images) or a manifest folder. "
                   "Default: generate a SYNTHETIC dataset.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="embedstore-demo", show_default=True,
              help="Folder of the report, the synthetic data and the run history.")
@click.option("--quick", is_flag=True, help="Fewer samples, seeds and λ values (a few minutes on a laptop CPU).")
@click.option("--image-model", default="builtin:efficientnet-lite0", show_default=True, help="Image encoder id.")
@click.option("--text-model", default="builtin:minilm-l6", show_default=True, help="Text encoder id.")
@click.option("--samples", type=click.IntRange(min=24), default=None,
              help="Synthetic samples (default 400, --quick 160).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def demo(ctx, store_uri, storage_options, as_json, root, out, quick, image_model, text_model, samples, progress):
    """Run the whole method once: ingest, embed, train, align, sweep, HTML report.

    Ingests the data, embeds images and texts with offline encoders (only what
    is not in the store yet), trains early and late fusion against image-only
    and text-only baselines, measures the modality gap before and after
    alignment, sweeps λ and writes one self-contained HTML report. A second
    run reuses every stored embedding and recorded run.

    \b
    Examples:
      embedstore demo --quick
      embedstore demo --root ../shared/data/ham10000-dev270
      embedstore --store ./lab-store demo --out demo-out
    """
    from embedstore.trainers.demo import run_demo

    store = get_store(ctx, store_uri, storage_options)
    show = progress and not as_json
    res = run_demo(store, root=root, out=out, quick=quick, image_model=image_model, text_model=text_model,
                   samples=samples, progress=show,
                   echo=(lambda m: click.echo(m, err=True)) if show else (lambda m: None))
    emit(ctx, res.to_dict(), lambda: render(res))
