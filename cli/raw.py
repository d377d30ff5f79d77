"""``embedstore train-raw``: a thin wrapper over :func:`embedstore.trainers.raw.train_raw`."""

from __future__ import annotations

import click

from .common import command, emit, get_store, table
from .train import _ints, _row


@command()
@click.argument("dataset")
@click.option("--text-model", default="hf:bert-base-uncased", show_default=True,
              help="BERT-family text backbone: hf:ORG/NAME or a saved model directory.")
@click.option("--image-model", default="hf:google/vit-base-patch16-224-in21k", show_default=True,
              help="ViT image backbone: hf:ORG/NAME or a saved model directory.")
@click.option("--fusion", "fusions", multiple=True, type=click.Choice(["early", "late"]), default=("early",),
              show_default=True, help="Head; repeat to train both.")
@click.option("--backbone", type=click.Choice(["frozen", "finetune"]), default="frozen", show_default=True,
              help="frozen = the paper's code; finetune = its text's claim (paper mode only).")
@click.option("--cache-features", is_flag=True,
              help="Frozen: compute backbone features once and train the head on them (= the embedding method).")
@click.option("--mode", type=click.Choice(["honest", "paper"]), default="honest", show_default=True)
@click.option("--split", "split_by", default=None, help="Split name (default: paper in paper mode, else grouped).")
@click.option("--epochs", type=int, default=None, help="Epochs (max in honest mode; default 30).")
@click.option("--seeds", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="First seed.")
@click.option("--hidden", default=None, help="Head hidden sizes, e.g. 128 (late: per branch).")
@click.option("--dropout", type=float, default=None, help="Head dropout p (default 0; feature dropout is 0.2).")
@click.option("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--max-batches", type=int, default=None, help="At most N batches per pass (smoke tests, timing).")
@click.option("--max-length", type=int, default=50, show_default=True, help="Text length in word-pieces.")
@click.option("--image-norm", type=click.Choice(["imagenet", "model"]), default="imagenet", show_default=True,
              help="ImageNet mean/std (the paper) or the checkpoint's own.")
@click.option("--bf16", is_flag=True, help="Run the backbones under bfloat16 autocast.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--no-record", is_flag=True, help="Do not write the runs table.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train_raw(ctx, store_uri, storage_options, as_json, dataset, text_model, image_model, fusions, backbone,
              cache_features, mode, split_by, epochs, seeds, seed, hidden, dropout, lr, batch_size, max_batches,
              max_length, image_norm, bf16, label_column, no_record, progress):
    """Train the raw-data baseline (BERT + ViT + fusion head) on DATASET's images and texts.

    Slow on a CPU by design: every epoch runs both backbones over every
    sample, which is the paper's cost. --cache-features computes the frozen
    features once, which is exactly the embedding method.

    \b
    Examples:
      embedstore train-raw ham10000 --fusion early --fusion late --mode paper
      embedstore train-raw ham10000 --text-model ./bert --image-model ./vit \\
          --fusion late --max-batches 2 --epochs 1
    """
    from embedstore.trainers.raw import load_backbones, train_raw as train_raw_api

    store = get_store(ctx, store_uri, storage_options)
    store.require_dataset(dataset)  # before loading the backbones: a misspelled dataset is named as such
    results, backbones = [], None
    for fusion in fusions:
        if backbones is None or backbone == "finetune":  # fine-tuning changes the weights: reload per head
            backbones = load_backbones(text_model, image_model, max_length=max_length, image_norm=image_norm)
        results.append(train_raw_api(
            store, dataset, fusion=fusion, backbone=backbone, cache_features=cache_features, mode=mode,
            split_by=split_by, epochs=epochs, seeds=seeds, seed=seed, hidden=_ints(hidden), dropout=dropout, lr=lr,
            batch_size=batch_size, bf16=bf16, max_batches=max_batches, label_column=label_column,
            backbones=backbones, record=not no_record, progress=progress and not as_json))

    def text() -> str:
        rows = []
        for res in results:
            row = _row(res)
            cost = res.runs[0].cost
            mem = cost["raw_data_mib"]
            row["model_MiB (all params)"] = f"{cost['model_mib_total']:.2f}"
            row["raw data_MiB train/test(paper) | train/test"] = (
                f"{mem['train_paper']:.2f}/{mem['test_paper']:.2f} | {mem['train']:.2f}/{mem['test']:.2f}")
            row.pop("data_MiB train/test(paper)/test", None)
            rows.append(row)
        first = results[0].runs[0]
        lines = [f"dataset {dataset}, raw baseline ({backbone}{', cached features' if cache_features else ''}), "
                 f"mode {mode}, samples {first.table_versions}", "", table(rows)]
        skipped = sum(r.cost.get("skipped_images", 0) for res in results for r in res.runs)
        if skipped:
            lines.append(f"skipped {skipped} unreadable image(s) (listed with --json)")
        if max_batches:
            lines.append(f"note: at most {max_batches} batch(es) per pass (--max-batches): metrics cover those rows")
        if not no_record:
            lines.append("runs: " + ", ".join(rid for r in results for rid in r.run_ids))
        return "\n".join(lines)

    payload = []
    for res in results:
        d = res.to_dict()
        d["loader"] = res.source.describe() if res.source is not None else None
        payload.append(d)
    emit(ctx, payload, text)
