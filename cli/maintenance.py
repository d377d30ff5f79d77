"""Maintenance commands: compact, cleanup, doctor, upgrade, repair, index (wrappers over the store API)."""

from __future__ import annotations

import click

from .common import command, emit, get_store, table


@command()
@click.argument("table_name", metavar="[TABLE]", required=False)
def compact(ctx, store_uri, storage_options, as_json, table_name):
    """Merge the small fragments of TABLE (default: every table).

    Content is unchanged; readers keep working while it runs. Fragments an
    old version pinned by a user tag, a run or a lease still reads are left
    as they are (skipped_pinned), so compact then cleanup never grows the store.

    \b
    Example:
      embedstore compact emb__image__0123456789abcdef__1280
    """
    from embedstore.maintenance import as_rows, compact as run

    rows = as_rows(run(get_store(ctx, store_uri, storage_options), table_name))
    emit(ctx, rows, lambda: table(rows, ["table", "fragments_before", "fragments_after",
                                         "version_before", "version_after", "retries", "skipped_pinned"]))


@command()
@click.option("--older-than", "older_than", type=float, required=True, metavar="DAYS",
              help="Remove versions older than DAYS days (0 = every old version).")
@click.option("--table", "table_name", default=None, help="Only this table (default: all).")
@click.option("--dry-run", is_flag=True, help="Show what would be removed and the bytes freed; delete nothing.")
def cleanup(ctx, store_uri, storage_options, as_json, older_than, table_name, dry_run):
    """Remove old table versions nothing pins: user tags, recorded runs and leases keep theirs.

    The latest version of each table always stays. Bookkeeping tags of
    ingest/extract/align do not pin; they go with their version. Every
    version kept is listed with why.

    \b
    Example:
      embedstore cleanup --older-than 30 --dry-run
    """
    from embedstore.maintenance import as_rows, cleanup as run
    from embedstore.pins import describe_pins

    results = run(get_store(ctx, store_uri, storage_options), older_than, table=table_name, dry_run=dry_run)
    rows = as_rows(results)

    def text() -> str:
        shown = [{"table": r.table, "removed": len(r.removed), "kept_tagged": len(r.kept_tagged),
                  "kept_by_runs": len(r.kept_referenced), "kept_by_leases": len(r.kept_leased),
                  "MiB_freed": f"{r.bytes_removed / 2**20:.2f}"} for r in results]
        verb = "would remove" if dry_run else "removed"
        freed = sum(r.bytes_removed for r in results) / 2**20
        lines = [table(shown), f"{verb} {sum(len(r.removed) for r in results)} version(s), "
                               f"{'would free' if dry_run else 'freed'} {freed:.2f} MiB"]
        kept = [{"table": r.table, "kept": describe_pins(r.kept)} for r in results if r.kept]
        if kept:
            lines += ["", "kept (and why):", table(kept)]
        return "\n".join(lines)

    emit(ctx, rows, text)


@command()
@click.option("--verify-files", is_flag=True,
              help="Also read and hash every sample's image file: report files changed or missing since ingest.")
def doctor(ctx, store_uri, storage_options, as_json, verify_files):
    """Check the store: unique keys, embeddings with samples, registered models and alignments.

    With --verify-files, every image file is re-read and hashed (one read of
    each dataset's images): a file replaced on disk since ingest is named
    with the fix (re-ingest the dataset). Exits with status 1 when any
    problem is found.

    \b
    Example:
      embedstore --store ./lab-store doctor
      embedstore --store ./lab-store doctor --verify-files
    """
    import dataclasses

    from embedstore.maintenance import doctor as run

    report = run(get_store(ctx, store_uri, storage_options), verify_files=verify_files)
    payload = dataclasses.asdict(report) | {"ok": report.ok}
    emit(ctx, payload, report.summary)
    if not report.ok:
        ctx.exit(1)


@command()
@click.argument("table_name", metavar="[TABLE]", required=False)
def upgrade(ctx, store_uri, storage_options, as_json, table_name):
    """Upgrade a store made by an older embedstore in place; no embedding is recomputed.

    Declares the primary key of TABLE (default: every table) of a store made
    by embedstore 0.1: two new versions per table. Without TABLE it also
    turns alignments stored as full rows (before aligned rows were computed
    when read) into parameters
    computed when read, once every stored row is reproduced within float32
    rounding, and deletes those rows from the latest versions. Older
    versions, tags and run references stay readable, and recorded runs
    re-execute identically. Writes upgrade a table's key by themselves; run
    this once before several machines write to an old store.

    \b
    Example:
      embedstore --store s3://lab-bucket/store upgrade
    """
    from embedstore.upgrade import upgrade as run
    from embedstore.upgrade_alignments import convert_alignments

    store = get_store(ctx, store_uri, storage_options)
    results = run(store, table_name)
    rows = [{"table": r.table, "key": r.key, "upgraded": r.upgraded, "version_before": r.version_before,
             "version_after": r.version_after} for r in results]
    conversions = [] if table_name else [c.to_dict() for c in convert_alignments(store)]

    def text() -> str:
        out = table(rows) + f"\nupgraded {sum(r.upgraded for r in results)} table(s)"
        if conversions:
            done = [c for c in conversions if c["converted"]]
            out += ("\n\n" + table(conversions, ["alignment_key", "method", "converted", "rows_removed",
                                                 "max_difference", "reason"])
                    + f"\nconverted {len(done)} alignment(s) stored as rows to parameters computed when read, "
                      f"{sum(c['rows_removed'] for c in done)} row(s) removed from the latest versions "
                      "('embedstore cleanup' frees them once no run or tag pins the old versions)")
        return out

    emit(ctx, {"tables": rows, "alignments": conversions}, text)


@command()
@click.argument("table_name", metavar="[TABLE]", required=False)
@click.option("--dry-run", is_flag=True, help="Count duplicates; delete nothing.")
def repair(ctx, store_uri, storage_options, as_json, table_name, dry_run):
    """Keep the newest row of each key of TABLE (default: every table), in one commit per table.

    \b
    Example:
      embedstore repair --dry-run
    """
    from embedstore.maintenance import as_rows
    from embedstore.upgrade import repair as run

    results = run(get_store(ctx, store_uri, storage_options), table_name, dry_run=dry_run)
    rows = as_rows(results)
    verb = "would remove" if dry_run else "removed"
    emit(ctx, rows, lambda: table(rows, ["table", "key", "duplicate_keys", "removed", "version_before",
                                         "version_after"]) + f"\n{verb} {sum(r.removed for r in results)} row(s)")


@command()
@click.option("--model", "model", required=True, help="Model id or model_key whose embeddings to index.")
@click.option("--modality", type=click.Choice(["image", "text"]), required=True)
@click.option("--kind", type=click.Choice(["ivf_flat", "ivf_pq", "ivf_hnsw_sq"]), default="ivf_flat",
              show_default=True, help="LanceDB vector index type.")
@click.option("--metric", type=click.Choice(["cosine", "l2", "dot"]), default="cosine", show_default=True)
@click.option("--partitions", "num_partitions", type=click.IntRange(min=1), default=None,
              help="IVF partitions (default: the square root of the row count).")
def index(ctx, store_uri, storage_options, as_json, model, modality, kind, metric, num_partitions):
    """Build (or rebuild) an ANN vector index on a model's embeddings table.

    'embedstore neighbors --use-index' then searches it instead of scanning.

    \b
    Example:
      embedstore index --model builtin:efficientnet-lite0 --modality image --kind ivf_flat
    """
    store = get_store(ctx, store_uri, storage_options)
    name = store.create_index(model, modality, metric=metric, kind=kind, num_partitions=num_partitions)
    tbl = store.open_table(name)
    row = {"table": name, "kind": kind, "metric": metric, "rows": tbl.count_rows(),
           "indices": [i.name for i in tbl.list_indices()]}
    emit(ctx, row, lambda: table([{k: v for k, v in row.items() if k != "indices"}]) + f"\nindex built on {name}")
