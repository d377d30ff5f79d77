"""``embedstore predict`` and ``embedstore export-head``: thin wrappers over trainers.predict / embedstore.trainers.export."""

from __future__ import annotations

import click

from .common import command, emit, get_store, table


@command()
@click.argument("dataset")
@click.option("--run", "run_id", required=True,
              help="Run id whose stored head to apply, or a group id: the ensemble of its runs' heads "
                   "(see 'embedstore runs').")
@click.option("--ensemble", is_flag=True, help="Mean probability over every seed/fold of the run's group.")
@click.option("--out", default=None, help="Also write the predictions to a .csv or .parquet file.")
@click.option("--no-store", is_flag=True,
              help="Only write --out; leave the store as it is (implied when the store is read-only).")
@click.option("--progress/--no-progress", default=False, show_default=True)
def predict(ctx, store_uri, storage_options, as_json, dataset, run_id, ensemble, out, no_store, progress):
    """Predict DATASET with a run's stored head; writes the predictions__DATASET table.

    With --no-store (or on a store you may only read) the predictions go
    to --out only.

    \b
    Examples:
      embedstore predict clinic2 --run run-20261201T101500-01234-abcd1234
      embedstore predict clinic2 --run RUN_ID --ensemble --out predictions.csv --json
    """
    from embedstore.alignment_home import store_writable
    from embedstore.trainers.predict import predict as predict_api

    store = get_store(ctx, store_uri, storage_options)
    write = not no_store and (out is None or store_writable(store))
    res = predict_api(store, dataset, run_id, ensemble=ensemble, out=out, progress=progress, write=write)
    rows = [{"sample_id": s, "predicted": lab, "probability": f"{p.max():.4f}"}
            for s, lab, p in list(zip(res.sample_ids, res.labels, res.proba))[:10]]
    where = f"{res.table} v{res.version} ({res.written} written" if write else f"{out} (store not written"
    heads = (f"the ensemble of {len(res.head_ids)} heads (mean probability)" if len(res.head_ids) > 1
             else "1 head")
    emit(ctx, res.to_dict(), lambda: table(rows) + f"\n{len(res.sample_ids)} rows -> {where}, "
         f"{res.forward_calls} forward passes; {heads})")


@command("export-head")
@click.argument("run_id")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--out", required=True, help="Output file, e.g. head.onnx (a head.onnx.json sidecar is written too).")
def export_head(ctx, store_uri, storage_options, as_json, run_id, fmt, out):
    """Export RUN_ID's head (alignment and scaling folded in) to ONNX, with a JSON sidecar.

    \b
    Examples:
      embedstore export-head RUN_ID --format onnx --out head.onnx
    """
    from embedstore.trainers.export import export_head as export_api

    side = export_api(get_store(ctx, store_uri, storage_options), run_id, out, format=fmt)
    emit(ctx, side, lambda: f"wrote {out} and {out}.json (inputs {', '.join(side['inputs'])}; "
         f"classes {', '.join(side['classes'])})")
