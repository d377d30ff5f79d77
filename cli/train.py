"""``embedstore train``, ``runs`` and ``rerun``: thin wrappers over trainers.train / embedstore.runs."""

from __future__ import annotations

from typing import Any

import click

from .common import command, emit, get_store, table


def _ints(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"{value!r}: use comma-separated integers, e.g. 256,128") from None


def _pm(mean: float | None, sd: float | None, fmt: str = ".4f") -> str:
    if mean is None or mean != mean:  # NaN
        return ""
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def _row(res) -> dict[str, Any]:
    first = res.runs[0]
    cv = res.config.get("cv")
    row = {"fusion": res.fusion, "mode": res.mode,
           "runs": f"{cv['k']} folds x {cv['repeats']} x {len(res.runs) // (cv['k'] * cv['repeats'])} seeds"
           if cv else len(res.runs),
           "macro_f1": _pm(res.mean["macro_f1"], res.sd["macro_f1"]),
           "accuracy": _pm(res.mean["accuracy"], res.sd["accuracy"]),
           "auc": _pm(res.mean["roc_auc_ovr"], res.sd["roc_auc_ovr"]),
           "epoch": _pm(res.mean["selected_epoch"], res.sd["selected_epoch"], ".1f"),
           "train_s/ep": f"{res.mean['train_s_per_epoch']:.3f}", "infer_s/ep": f"{res.mean['infer_s_per_epoch']:.3f}",
           "params": first.cost["params"], "model_MiB": f"{first.cost['model_mib']:.2f}"}
    mem = first.cost["data_mib"]
    row["data_MiB train/test(paper)/test"] = f"{mem['train']:.2f}/{mem['test_paper']:.2f}/{mem['test']:.2f}"
    from embedstore.modes import mode_rules

    if not mode_rules(res.mode).tests_once:  # the paper reports its best-on-test epochs
        row["best_acc (acc/F1@ep)"] = "; ".join(
            f"{r.selection['best_accuracy']['accuracy']:.4f}/{r.selection['best_accuracy']['macro_f1']:.4f}"
            f"@{r.selection['best_accuracy']['epoch']}" for r in res.runs)
        row["best_F1 (F1@ep)"] = "; ".join(
            f"{r.selection['best_f1']['macro_f1']:.4f}@{r.selection['best_f1']['epoch']}" for r in res.runs)
    row["loader"] = first.loader
    return row


def _against_baseline(res) -> dict[str, Any] | None:
    """The head's macro-F1 with its interval, the baseline's, and the paired difference (honest runs)."""
    from embedstore.compare import baseline_verdict

    ci, cmp = res.interval(), res.against_baseline()
    if ci is None or cmp is None:
        return None
    return {"fusion": res.fusion, "macro_f1 (95% CI)": f"{ci[0]:.4f} ({ci[1]:.4f}-{ci[2]:.4f})",
            "baseline macro_f1": f"{cmp.mean_b:.4f}",
            "head - baseline (95% CI)": f"{cmp.difference:+.4f} ({cmp.low:+.4f} to {cmp.high:+.4f})",
            "verdict": baseline_verdict(cmp)}


@command()
@click.argument("dataset")
@click.option("--image-model", default=None, help="Image model id or model_key.")
@click.option("--text-model", default=None, help="Text model id or model_key.")
@click.option("--fusion", "fusions", multiple=True,
              type=click.Choice(["early", "late", "image", "text", "linear"]), default=("early",),
              show_default=True, help="Head (linear = logistic-regression probe); repeat to train several.")
@click.option("--mode", type=click.Choice(["honest", "paper"]), default="honest", show_default=True)
@click.option("--split", "split_by", default=None,
              help="Train on this one split (default: paper in paper mode; honest mode cross-validates small "
                   "datasets, see --cv).")
@click.option("--epochs", type=int, default=None, help="Epochs (max in honest mode; default 30).")
@click.option("--seeds", type=int, default=1, show_default=True, help="Number of seeds (mean ± sd).")
@click.option("--cv", "cv", type=int, default=None,
              help="Honest mode: K-fold cross-validation grouped by patient/lesion. Default: 5-fold on datasets "
                   "of at most 5,000 labelled samples unless --split is given, else the fixed split.")
@click.option("--select", "select_on", type=click.Choice(["inner", "val"]), default="inner", show_default=True,
              help="Honest mode: choose epoch / C / search by inner grouped CV of the training rows, or on the "
                   "validation part; then refit on all training rows.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Honest mode: fit the independent scikit-learn baseline on the same rows and show the paired "
                   "difference.")
@click.option("--repeats", type=int, default=1, show_default=True,
              help="--cv repeats, each with new folds (split seeds --cv-seed, +1, ...).")
@click.option("--cv-seed", type=int, default=0, show_default=True, help="First split seed of --cv.")
@click.option("--val-fraction", type=float, default=0.2, show_default=True,
              help="--cv: share of each training fold's groups held out for validation.")
@click.option("--scale", default=None,
              help="Input scaling fitted on train rows: none, l2, standard, or image=...,text=... "
                   "(honest default: standard; paper mode: raw).")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--hidden", default=None, help="Hidden sizes, e.g. 128 or 256,128 (late: per branch).")
@click.option("--hidden-image", default=None, help="Late fusion image-branch hidden sizes (default: --hidden).")
@click.option("--dropout", type=float, default=None, help="Dropout p (default 0).")
@click.option("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--patience", type=int, default=None,
              help="Honest mode early-stopping patience in epochs (default 10).")
@click.option("--output-size", type=int, default=None, help="Outputs (default: 1 for binary, else classes).")
@click.option("--alignment", "alignment_key", default=None, help="Alignment key for both modalities.")
@click.option("--image-alignment", default="none", show_default=True)
@click.option("--text-alignment", default="none", show_default=True)
@click.option("--align-loss-weight", type=float, default=0.0, show_default=True,
              help="Late fusion: weight of mean(1 - cos(h_text, h_image)).")
@click.option("--label-column", default="label", show_default=True)
@click.option("--loader", type=click.Choice(["auto", "memory", "stream"]), default="auto", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads while training (the heads are tiny; 1 is fastest on shared CPUs).")
@click.option("--no-record", is_flag=True, help="Do not write the runs table.")
@click.option("--save-heads/--no-save-heads", default=None,
              help="Keep the trained heads for 'embedstore predict' (default: kept for a single split; "
                   "with an explicit --cv K only when --save-heads is given).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(ctx, store_uri, storage_options, as_json, dataset, image_model, text_model, fusions, mode, split_by,
          epochs, seeds, cv, select_on, baseline, repeats, cv_seed, val_fraction, scale, seed, hidden, hidden_image,
          dropout, lr, batch_size, patience, output_size, alignment_key, image_alignment, text_alignment,
          align_loss_weight, label_column, loader, threads, no_record, save_heads, progress):
    """Train fusion heads on DATASET's stored embeddings and print mean ± sd metrics.

    \b
    Examples:
      embedstore train ham10000 --image-model builtin:efficientnet-lite0 \\
          --text-model builtin:minilm-l6 --fusion early --fusion late --seeds 3
      embedstore train ham10000 --image-model builtin:efficientnet-lite0 \\
          --text-model builtin:minilm-l6 --fusion early --fusion linear --cv 5
      embedstore train brset --image-model hf:facebook/dinov2-base \\
          --text-model hf:meta-llama/Llama-2-7b-chat-hf --mode paper
    """
    from embedstore.trainers.train import train as train_api

    import warnings

    store = get_store(ctx, store_uri, storage_options)
    if cv is None and split_by is None and mode == "honest":
        cv = "auto"  # small datasets: grouped 5-fold CV (embedstore.trainers.train.auto_cv)
    results = []
    warnings.filterwarnings("ignore", message="paper mode on ", category=UserWarning)  # printed below
    for fusion in fusions:
        kw = {"patience": patience, "output_size": output_size, "hidden_image": _ints(hidden_image),
              "label_column": label_column, "loader": loader, "seed": seed, "threads": threads,
              "save_heads": save_heads,
              **({"cv_seed": cv_seed, "val_fraction": val_fraction} if cv else {}),
              **({"select_on": select_on, "baseline": baseline} if mode == "honest" else {})}
        results.append(train_api(
            store, dataset, image_model=image_model, text_model=text_model, fusion=fusion, mode=mode,
            split_by=split_by, epochs=epochs, seeds=seeds, hidden=_ints(hidden), dropout=dropout,
            batch_size=batch_size, lr=lr, image_alignment_key=image_alignment, text_alignment_key=text_alignment,
            alignment_key=alignment_key, align_loss_weight=align_loss_weight, record=not no_record,
            progress=progress and not as_json, cv=cv, repeats=repeats, scale=scale,
            **{k: v for k, v in kw.items() if v is not None}))

    def text() -> str:
        first = results[0]
        done = first.config.get("cv")
        split = (f"{done['k']}-fold grouped CV x {done['repeats']}" if done else
                 f"split {first.config['split_column']}")
        if done and cv == "auto":
            split += " (default for datasets of at most 5,000 labelled samples; --split NAME for one split)"
        lines = [f"dataset {dataset}, mode {mode}, {split}, scaling {first.config.get('scale')}, "
                 f"tables {first.runs[0].table_versions}", "", table([_row(r) for r in results])]
        against = [b for b in (_against_baseline(r) for r in results) if b]
        if against:
            from embedstore.trainers.baseline import BASELINE_NAME

            lines += ["", f"against the independent baseline ({BASELINE_NAME}), same test rows; 95% CI: paired "
                      "bootstrap over test rows", table(against)]
        skipped = first.source.describe().get("skipped") if first.source is not None else None
        if skipped:
            lines.append(f"skipped samples (no current embedding or label): {skipped}")
        notes = {n for r in results for run in r.runs for n in [run.selection.get("dropped_final_batch")] if n}
        preset = first.config.get("paper_preset")
        if preset:
            lines.append(f"paper preset for {preset['kind'] or 'an unrecognised dataset'}: {preset['applied'] or 'none'}"
                         + (f" ({preset['loss']})" if preset.get("loss") else ""))
            lines += [f"warning: {w}" for w in preset["warnings"]]
        lines += [f"note: {n}" for n in sorted(notes)]
        if not no_record:
            lines.append("groups: " + ", ".join(f"{r.fusion}={r.group_id}" for r in results)
                         + "  (compare two with: embedstore runs --compare A B)")
            if not cv:
                lines.append("runs: " + ", ".join(rid for r in results for rid in r.run_ids))
        return "\n".join(lines)

    emit(ctx, [r.to_dict() for r in results], text)


@command()
@click.argument("dataset", required=False)
@click.option("--group", "group_id", default=None, help="Only this group of seeds.")
@click.option("--each", is_flag=True, help="One line per run (seed) instead of per group.")
@click.option("--compare", "compare", nargs=2, default=None, metavar="A B",
              help="Paired difference of groups A and B on their common folds, with a 95% interval.")
@click.option("--metric", type=click.Choice(["macro_f1", "accuracy"]), default="macro_f1", show_default=True,
              help="Metric of --compare.")
def runs(ctx, store_uri, storage_options, as_json, dataset, group_id, each, compare, metric):
    """List recorded training runs, grouped by setting with mean ± sd over seeds.

    \b
    Examples:
      embedstore runs ham10000
      embedstore runs --each --json
      embedstore runs --compare grp-A grp-B
    """
    from embedstore.runs import compare_groups, list_runs

    if compare:
        from embedstore.compare import compare_settings

        from embedstore.compare import compare_with_baseline

        store = get_store(ctx, store_uri, storage_options)
        result = compare_settings(store, compare[0], compare[1], metric=metric)
        against = {g: compare_with_baseline(store, g, metric=metric) for g in compare}
        lines = [result.line()] + [f"{g} against the independent baseline: " + (
            c.line() if c is not None else "no baseline recorded (runs trained before baselines were recorded)")
            for g, c in against.items()]
        emit(ctx, {**result.to_dict(), "baselines": {g: c.to_dict() if c is not None else None
                                                     for g, c in against.items()}}, lambda: "\n".join(lines))
        return
    from embedstore.datacheck.records import flag_summary, flagged_runs

    store = get_store(ctx, store_uri, storage_options)
    records = list_runs(store, dataset, group_id=group_id)
    if not records:  # nothing listed: say why when a name is wrong, instead of an empty table
        from embedstore.runs import unknown_run

        if dataset and not list_runs(store, dataset):
            store.require_dataset(dataset)
        if group_id and not list_runs(store, group_id=group_id):
            raise unknown_run(store, group_id, expected="group")
    flags = flagged_runs(store, dataset)  # runs that read rows a later 'embedstore check' flagged
    if as_json:
        emit(ctx, [r.to_dict() | {"check_flags": flags.get(r.run_id, [])} for r in records], "")
        return
    if each:
        rows = [r.summary() | {"flags": flag_summary(flags.get(r.run_id, []))} for r in records]
        click.echo(table(rows, ["run_id", "dataset", "fusion", "mode", "seed", "alignment", "accuracy",
                                "macro_f1", "roc_auc_ovr", "epoch", "loader", "created_at", "flags"]))
    else:
        by_group: dict[str, list] = {}
        for r in records:
            by_group.setdefault(r.group_id or r.run_id, []).extend(flags.get(r.run_id, []))
        rows = [g | {"flags": flag_summary(by_group.get(g["group_id"], []))} for g in compare_groups(records)]
        click.echo(table(rows, ["group_id", "dataset", "fusion", "mode", "alignment", "seeds", "accuracy", "macro_f1",
                                "created_at", "flags"]))
    if flags:
        click.echo(f"flags: {len(flags)} run(s) read rows that 'embedstore check' flagged (leaks, duplicates across "
                   "their split, label issues); 'embedstore runs --json' lists them per check")


@command()
@click.argument("run_id")
@click.option("--record", is_flag=True, help="Record the rerun as a new run (rerun_of = RUN_ID).")
@click.option("--loader", type=click.Choice(["memory", "stream"]), default=None,
              help="Read path (default: the recorded run's; both give the same batches).")
def rerun(ctx, store_uri, storage_options, as_json, run_id, record, loader):
    """Re-execute recorded run RUN_ID at its pinned table versions and compare its metrics.

    \b
    Examples:
      embedstore rerun run-20260101-abcdef
      embedstore rerun run-20260101-abcdef --loader stream --record
    """
    from embedstore.runs import get_run
    from embedstore.trainers.train import rerun as rerun_api

    store = get_store(ctx, store_uri, storage_options)
    recorded = get_run(store, run_id).metrics
    res = rerun_api(store, run_id, record=record, loader=loader)
    names = ("accuracy", "macro_f1", "roc_auc_ovr", "selected_epoch")
    rows = [{"metric": n, "recorded": recorded.get(n), "rerun": res.metrics.get(n)} for n in names]
    same = all(r["recorded"] == r["rerun"] for r in rows)
    payload = {"run_id": run_id, "rerun_id": res.run_id, "identical": same, "loader": res.loader,
               "table_versions": res.table_versions, "metrics": {r["metric"]: r["rerun"] for r in rows},
               "recorded": {r["metric"]: r["recorded"] for r in rows}}
    emit(ctx, payload, lambda: table(rows) + f"\nloader {res.loader}, tables {res.table_versions}: "
         + ("identical to the recorded run" if same else "DIFFERS from the recorded run")
         + (f"\nrecorded as {res.run_id}" if res.run_id else ""))
