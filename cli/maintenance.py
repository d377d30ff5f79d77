"""Maintenance commands: compact, cleanup, doctor, upgrade, repair, index (wrappers over the store API)."""

from __future__ import annotations

import click

from .common import command, emit, get_store, table


@command()
@click.argument("table_name", metavar="[TABLE]", required=False)
def compact(ctx, store_uri, storage_options, as_json, table_name):
    """Merge the small fragments of TABLE (default: every table).

    Content is unchanged; readers keep working while it runs.

    \b
    Example:
      embedstore compact emb__image__0123456789abcdef__1280
    """
    from embedstore.maintenance import as_rows, compact as run

    rows = as_rows(run(get_store(ctx, store_uri, storage_options), table_name))
    emit(ctx, rows, lambda: table(rows, ["table", "fragments_before", "fragments_after",
                                         "version_before", "version_after", "retries"]))


@command()
@click.option("--older-than", "older_than", type=float, required=True, metavar="DAYS",
              help="Remove versions older than DAYS days (0 = every old version).")
@click.option("--table", "table_name", default=None, help="Only this table (default: all).")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; delete nothing.")
def cleanup(ctx, store_uri, storage_options, as_json, older_than, table_name, dry_run):
    """Remove old table versions; tagged and run-referenced versions are always kept.

    \b
    Example:
      embedstore cleanup --older-than 30 --dry-run
    """
    from embedstore.maintenance import as_rows, cleanup as run

    results = run(get_store(ctx, store_uri, storage_options), older_than, table=table_name, dry_run=dry_run)
    rows = as_rows(results)

    def text() -> str:
        shown = [{"table": r.table, "removed": len(r.removed), "kept_tagged": len(r.kept_tagged),
                  "kept_by_runs": len(r.kept_referenced), "bytes_removed": r.bytes_removed} for r in results]
        verb = "would remove" if dry_run else "removed"
        return table(shown) + f"\n{verb} {sum(len(r.removed) for r in results)} version(s)"

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
    """Declare the primary key of TABLE (default: every table) of a store made by embedstore 0.1.

    Two new versions per table; older versions, tags and run references
    stay readable. Writes upgrade a table by themselves; run this once
    before several machines write to an old store.

    \b
    Example:
      embedstore --store s3://lab-bucket/store upgrade
    """
    from embedstore.upgrade import upgrade as run

    results = run(get_store(ctx, store_uri, storage_options), table_name)
    rows = [{"table": r.table, "key": r.key, "upgraded": r.upgraded, "version_before": r.version_before,
             "version_after": r.version_after} for r in results]
    emit(ctx, rows, lambda: table(rows) + f"\nupgraded {sum(r.upgraded for r in results)} table(s)")


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
