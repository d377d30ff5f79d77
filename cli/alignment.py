"""``embedstore align``, ``gap``, ``sweep`` and ``report``: thin wrappers over the alignment API.

* ``align`` → :func:`embedstore.transform_align.align_method`
* ``gap`` → :func:`embedstore.diagnostics.gap_diagnostics` (+ :func:`embedstore.figures.gap_figures`)
* ``sweep`` → :func:`embedstore.trainers.sweep.sweep`
* ``report`` → :func:`embedstore.report.write_report`

Width matching defaults to ``auto``: the paper's index interpolation of the
narrower modality when the two widths differ (e.g. EfficientNet-Lite0 1280-d
images and MiniLM 384-d texts), nothing when they are equal. Pass
``--match none`` to require equal widths.
"""

from __future__ import annotations

import click

from .common import command, emit, get_store, table

_MATCH = click.Choice(["auto", "interp", "none"])
_METHODS = ("gapshift", "center", "standardize", "whiten", "procrustes", "cca")  # embedstore.transforms.METHODS


def _match(value: str):
    return None if value == "none" else value


@command()
@click.argument("dataset")
@click.option("--image-model", required=True, help="Image model id or model_key.")
@click.option("--text-model", required=True, help="Text model id or model_key.")
@click.option("--method", type=click.Choice(_METHODS), default="gapshift", show_default=True,
              help="Transform fitted on the training rows, then the λ shift.")
@click.option("--lam", type=float, default=1.0, show_default=True, help="λ of the shift after the map.")
@click.option("--n-components", type=click.IntRange(min=1), default=None,
              help="Output width of whiten/procrustes/cca.")
@click.option("--match", type=_MATCH, default="auto", show_default=True)
@click.option("--fit-on", type=click.Choice(["train", "all"]), default="train", show_default=True)
@click.option("--split", "split_by", default=None, help="Split column for --fit-on train (default: the store's).")
def align(ctx, store_uri, storage_options, as_json, dataset, image_model, text_model, method, lam, n_components,
          match, fit_on, split_by):
    """Fit an alignment of DATASET and store its vectors and fitted state (reused when it exists).

    Re-running it with the same settings also stores again a fitted state
    kept in an older format.

    \b
    Example:
      embedstore align ham10000 --image-model builtin:efficientnet-lite0 \\
          --text-model builtin:minilm-l6 --method procrustes --lam 0
    """
    from embedstore.transform_align import align_method

    store = get_store(ctx, store_uri, storage_options)
    res = align_method(store, dataset, method=method, image_model=image_model, text_model=text_model, lam=lam,
                       n_components=n_components, match=_match(match), fit_on=fit_on, split_by=split_by)
    emit(ctx, res.to_dict(), lambda: f"alignment {res.alignment_key}: {res.rows} rows, width {res.dim}, method "
                                     f"{method}, λ={lam:g}, fit on {res.n_fit_rows} rows"
                                     + (" (reused)" if res.reused else ""))


@command()
@click.argument("dataset")
@click.option("--image-model", default=None, help="Image model id or model_key.")
@click.option("--text-model", default=None, help="Text model id or model_key.")
@click.option("--alignment", "alignment_key", default=None, help="Diagnose this stored alignment (its settings win).")
@click.option("--lam", type=float, default=1.0, show_default=True, help="λ of the alignment (1 closes the gap).")
@click.option("--match", type=_MATCH, default="auto", show_default=True,
              help="Width matching: auto = interpolate only when widths differ.")
@click.option("--fit-on", type=click.Choice(["train", "all"]), default="train", show_default=True,
              help="Rows the gap is fitted on (all = the paper, test included).")
@click.option("--noise-std", type=float, default=0.0, show_default=True, help="Seeded noise (our interpretation).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--split", "split_by", default=None, help="Split column for --fit-on train (default: the store's).")
@click.option("--max-queries", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Retrieval / kNN queries (seeded subset when there are more rows).")
@click.option("--knn-k", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False), default=None,
              help="Also write the 2-D/3-D PCA, before/after and paired-cosine PNGs here.")
@click.option("--method", type=click.Choice(_METHODS), default="gapshift", show_default=True,
              help="Transform of the 'after' stage (fitted on train rows), then the λ shift.")
@click.option("--n-components", type=click.IntRange(min=1), default=None,
              help="Output width of whiten/procrustes/cca (default: whiten/procrustes full, cca 16).")
def gap(ctx, store_uri, storage_options, as_json, dataset, image_model, text_model, alignment_key, lam, match,
        fit_on, noise_std, seed, split_by, max_queries, knn_k, figures_dir, method, n_components):
    """Modality-gap diagnostics of DATASET before (λ=0) and after an alignment.

    Both stages are stored alignments (created once, then reused).

    \b
    Example:
      embedstore gap ham10000 --image-model builtin:efficientnet-lite0 \\
          --text-model builtin:minilm-l6 --lam 1 --figures gap-figs
    """
    from embedstore.diagnostics import gap_diagnostics, report_rows

    store = get_store(ctx, store_uri, storage_options)
    rep = gap_diagnostics(store, dataset, image_model=image_model, text_model=text_model,
                          alignment_key=alignment_key, lam=lam, match=_match(match), fit_on=fit_on,
                          noise_std=noise_std, seed=seed, split_by=split_by, knn_k=knn_k, max_queries=max_queries,
                          method=method, n_components=n_components)
    payload = rep.to_dict()
    if figures_dir:
        from embedstore.figures import gap_figures

        payload["figures"] = {k: str(v) for k, v in gap_figures(store, rep, figures_dir).items()}

    def text() -> str:
        s = rep.settings
        lines = [f"dataset {dataset}: image {rep.image_model} ({s['image_model_key']}), "
                 f"text {rep.text_model} ({s['text_model_key']})",
                 f"alignment {rep.after.alignment_key}: method {s['method']}, λ={s['lam']:g}, fit on {s['fit_on']} "
                 f"({s.get('split_column') or 'all rows'}), match={s['match']}, noise_std={s['noise_std']:g}, "
                 f"width {s['dim']}; before = λ=0 ({rep.before.alignment_key})",
                 f"rows {rep.before.rows}, retrieval/kNN queries {rep.before.retrieval_queries}, "
                 f"unpaired {rep.unpaired}; retrieval on {rep.after.retrieval_rows}", "",
                 table(report_rows(rep), ["metric", "before", "after"]), "",
                 "store versions: " + ", ".join(f"{t}@{v}" for t, v in sorted(rep.after.versions.items()))]
        if figures_dir:
            lines.append("figures: " + ", ".join(payload["figures"].values()))
        return "\n".join(lines)

    emit(ctx, payload, text)


@command()
@click.argument("dataset")
@click.option("--image-model", required=True, help="Image model id or model_key.")
@click.option("--text-model", required=True, help="Text model id or model_key.")
@click.option("--fusion", type=click.Choice(["early", "late", "image", "text"]), default="early", show_default=True)
@click.option("--lambdas", default="-1:1:0.1", show_default=True, help="START:STOP:STEP (inclusive) or a,b,c.")
@click.option("--mode", type=click.Choice(["honest", "paper"]), default="honest", show_default=True,
              help="honest: gap fitted on train, λ chosen on validation; paper: all rows, best on test.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="First training seed.")
@click.option("--split", "split_by", default=None, help="Split (default: paper in paper mode, else the store's).")
@click.option("--epochs", type=int, default=None,
              help="Epochs (default: the protocol's 30; paper mode: the sweep runs' 50, protocol §5.3).")
@click.option("--lr", type=float, default=None,
              help="AdamW learning rate (default 1e-3; paper mode: §5.3's 3e-4 for DINOv2+LLaMA, 1e-3 for CLIP).")
@click.option("--match", type=_MATCH, default="auto", show_default=True)
@click.option("--noise-std", type=float, default=0.0, show_default=True)
@click.option("--align-seed", type=int, default=0, show_default=True)
@click.option("--align-loss-weight", type=float, default=0.0, show_default=True,
              help="Late fusion: weight of mean(1 - cos(h_text, h_image)).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="PNG of accuracy and macro-F1 vs λ (default DATASET-FUSION-MODE-sweep.png).")
@click.option("--fresh", is_flag=True, help="Start a new sweep instead of reusing recorded seeds.")
@click.option("--no-record", is_flag=True, help="Record no run (e.g. a store you may only read).")
@click.option("--keep-heads", is_flag=True,
              help="Keep every run's trained head for 'embedstore predict' (default: scores only).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--method", type=click.Choice(_METHODS), default="gapshift", show_default=True,
              help="Transform fitted (on train rows in honest mode) before each λ shift.")
@click.option("--n-components", type=click.IntRange(min=1), default=None,
              help="Output width of whiten/procrustes/cca.")
def sweep(ctx, store_uri, storage_options, as_json, dataset, image_model, text_model, fusion, lambdas, mode, seeds,
          seed, split_by, epochs, lr, match, noise_std, align_seed, align_loss_weight, out, fresh, no_record, progress,
          method, n_components, keep_heads):
    """Align, train and record DATASET for each λ; print the table and write the plot.

    \b
    Example:
      embedstore sweep ham10000 --image-model builtin:efficientnet-lite0 \\
          --text-model builtin:minilm-l6 --fusion late --lambdas -1:1:0.5 --seeds 2
    """
    from embedstore.trainers.sweep import sweep as run_sweep

    store = get_store(ctx, store_uri, storage_options)
    out = out or f"{dataset}-{fusion}-{mode}-sweep.png"
    extra = {"lr": lr} if lr is not None else {}
    res = run_sweep(store, dataset, image_model=image_model, text_model=text_model, fusion=fusion,
                    lambdas=lambdas, mode=mode, seeds=seeds, seed=seed, split_by=split_by, epochs=epochs,
                    match=_match(match), noise_std=noise_std, align_seed=align_seed,
                    align_loss_weight=align_loss_weight, out=out, resume=not fresh, progress=progress,
                    method=method, n_components=n_components, record=not no_record,
                    **({"train_options": {"save_heads": True}} if keep_heads else {}), **extra)

    def text() -> str:
        sel = res.selection
        lines = [f"sweep {res.sweep_id}: {dataset} {fusion} fusion, {mode} mode, method {method}, seeds {res.seeds}, "
                 f"match={res.settings['match']}, gap fitted on {res.settings['fit_on']} rows "
                 f"({res.settings['split_column']})",
                 f"trained λ {res.trained or '-'}; reused λ {res.reused or '-'}", "", table(res.table()), ""]
        from embedstore.modes import mode_rules

        if mode_rules(mode).selects_on_val:
            lines.append(f"selected on validation macro-F1: λ={sel['lam']:+.2f} → test accuracy "
                         f"{sel['test_acc']:.4f} ± {sel['test_acc_sd']:.4f}, macro-F1 {sel['test_f1']:.4f} ± "
                         f"{sel['test_f1_sd']:.4f}")
        else:
            lines.append(f"paper (best on test): accuracy {sel['best_acc']:.4f} at λ={sel['best_acc_lam']:+.2f}, "
                         f"F1 {sel['best_f1']:.4f} at λ={sel['best_f1_lam']:+.2f}")
        if "lam0" in sel:
            z = sel["lam0"]
            lines.append(f"λ=0: test accuracy {z['test_acc']:.4f} ± {z['test_acc_sd']:.4f}, macro-F1 "
                         f"{z['test_f1']:.4f} ± {z['test_f1_sd']:.4f}")
        if res.reference is not None:
            r = res.reference
            lines.append(f"no alignment: test macro-F1 {r.test_f1:.4f} ± {r.test_f1_sd:.4f} (group {r.group_id})")
        for name, label in (("vs_none", "no alignment"), ("vs_lam0", "λ=0")):
            if sel.get(name):
                iv = sel[name]
                bounds = "" if iv["low"] is None else f" [95% CI {iv['low']:+.4f}, {iv['high']:+.4f}]"
                lines.append(f"selected λ − {label}: test macro-F1 {iv['difference']:+.4f}{bounds} ({iv['method']}, "
                             f"{iv['n']} seeds)")
        lines.append(f"plot: {res.png}")
        return "\n".join(lines)

    emit(ctx, res.to_dict(), text)


@command()
@click.argument("dataset")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default DATASET-report.html).")
@click.option("--runs", "runs", multiple=True, metavar="ID",
              help="Run, group or sweep id to include (repeatable; default: all runs of DATASET).")
@click.option("--image-model", default=None, help="Image model of the gap section (default: from the runs).")
@click.option("--text-model", default=None, help="Text model of the gap section (default: from the runs).")
@click.option("--alignment", "alignment_key", default=None, help="Alignment of the gap section.")
@click.option("--lam", type=float, default=1.0, show_default=True, help="λ of the gap section's alignment.")
@click.option("--max-queries", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--no-gap", is_flag=True, help="Leave out the gap diagnostics.")
@click.option("--force", is_flag=True, help="Write the report even when the file is up to date.")
def report(ctx, store_uri, storage_options, as_json, dataset, out, runs, image_model, text_model, alignment_key,
           lam, max_queries, no_gap, force):
    """Write one self-contained HTML report (figures embedded) of DATASET.

    A report already written from the same store commits, options and code
    is left as it is (instant); --force writes it again.

    \b
    Example:
      embedstore report ham10000 --out ham-report.html
    """
    from embedstore.report import write_report

    store = get_store(ctx, store_uri, storage_options)
    res = write_report(store, dataset, out or f"{dataset}-report.html", runs=list(runs) or None,
                       image_model=image_model, text_model=text_model, alignment_key=alignment_key, lam=lam,
                       max_queries=max_queries, gap=not no_gap, reuse=not force)
    what = (f"{res.images} embedded figures, {res.run_groups} run groups, {res.sweeps} sweeps"
            f"{'' if res.gap else ', no gap section'}")
    emit(ctx, res.to_dict(), f"{res.path} is unchanged: written {res.generated} from the same store commits, options "
                             f"and code ({what}); --force writes it again" if res.reused else f"wrote {res.path}: {what}")
