"""Maintenance commands: compact, cleanup, doctor (wrappers over :mod:`embedstore.maintenance`)."""

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
def doctor(ctx, store_uri, storage_options, as_json):
    """Check the store: unique keys, embeddings with samples, registered models and alignments.

    Exits with status 1 when any problem is found.

    \b
    Example:
      embedstore --store ./lab-store doctor
    """
    import dataclasses

    from embedstore.maintenance import doctor as run

    report = run(get_store(ctx, store_uri, storage_options))
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
