"""``embedstore ingest``: a thin wrapper over :func:`embedstore.ingest.ingest`."""

from __future__ import annotations

import click

from .common import command, emit, get_store, table

KINDS = ("ham10000", "brset", "satellitebench", "manifest")


def _reason_kind(reason: str) -> str:
    return reason.split(";")[0].split(" (")[0]


def render(report) -> str:
    """Console text of an :class:`~embedstore.ingest.IngestReport`."""
    from embedstore.modalities import describe

    lines = [f"ingested {report.kind} from {report.root} as dataset '{report.dataset}' "
             f"(prompt {report.prompt_name}; {describe(report.modalities)})",
             f"rows: {report.rows_total} valid, {report.rows_written} written "
             f"({report.inserted} new, {report.updated} updated, {report.unchanged} unchanged"
             + (f", {report.removed} removed" if report.removed else "") + "), "
             f"{len(report.skipped)} skipped"]
    splits = list(report.class_counts)
    labels = sorted({lab for counts in report.class_counts.values() for lab in counts})
    rows = [{"label": lab, **{s: report.class_counts[s].get(lab, 0) for s in splits},
             "total": sum(report.class_counts[s].get(lab, 0) for s in splits)} for lab in labels]
    rows.append({"label": "total", **{s: sum(report.class_counts[s].values()) for s in splits},
                 "total": report.rows_total})
    lines += ["", f"class counts (split_{report.split}):", table(rows, ["label", *splits, "total"])]
    other = {k: v for k, v in report.split_counts.items() if k != report.split}
    for scheme, counts in other.items():
        lines.append(f"split_{scheme}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if report.skipped:
        by_reason: dict[str, int] = {}
        for s in report.skipped:
            by_reason[_reason_kind(s.reason)] = by_reason.get(_reason_kind(s.reason), 0) + 1
        lines += ["", f"skipped {len(report.skipped)} sample(s) (full list with --json):"]
        lines += [f"  {n:>6}  {reason}" for reason, n in sorted(by_reason.items(), key=lambda kv: -kv[1])]
        lines += [f"  e.g. {s.sample_id}: {s.path}" for s in report.skipped[:5]]
    for note in report.notes:
        lines.append(f"note: {note}")
    state = "new version" if report.changed else "unchanged, no new version"
    lines += ["", f"store: {report.table} version {report.version} ({state}), tag {report.tag}"]
    return "\n".join(lines)


@command()
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--root", required=True, type=click.Path(exists=True), help="Dataset folder (manifest: folder or file).")
@click.option("--name", default=None, help="Dataset name in the store (default: KIND).")
@click.option("--prompt", default="default", show_default=True, metavar="paper|default|FILE",
              help="Prompt template: the paper's sentences, the leak-free default, or a template file.")
@click.option("--split", "split", type=click.Choice(["grouped", "paper"]), default="grouped", show_default=True,
              help="Split scheme to summarise (both split_paper and split_grouped are stored).")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the splits.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--prune", is_flag=True,
              help="Remove stored samples absent from the source (without it such a re-ingest is refused).")
@click.option("--keep-missing", is_flag=True,
              help="Keep stored samples absent from the source (the source adds to the dataset).")
@click.option("--rgb", type=click.Choice(["true", "paper", "paper255"]), default=None,
              help="satellitebench: true colour B4,B3,B2 (default), the paper's B,G,R order, or B,G,R with "
                   "the notebook's /255 (paper255, inferred).")
@click.option("--layout", type=click.Choice(["auto", "physionet", "metadengue"]), default=None,
              help="satellitebench: file layout (default auto).")
@click.option("--median-over", type=click.Choice(["window", "samples"]), default=None,
              help="satellitebench: median of the study window (default) or of the joined samples (paper code).")
@click.option("--manifest", default=None, help="manifest: CSV/Parquet file inside --root.")
@click.option("--id-column", default=None, help="manifest: id column (default id, else sample_id).")
@click.option("--image-column", default=None, help="manifest: image path column (default image).")
@click.option("--label-column", default=None, help="manifest: label column (default label).")
@click.option("--text-column", default=None, help="manifest: text column (default text).")
@click.option("--text-template", default=None, metavar="FORMAT|FILE",
              help="manifest: format string over columns, e.g. 'Age: {age}.', or a file holding one.")
@click.option("--group-column", default=None, help="manifest: group column for the grouped split.")
@click.option("--split-column", default=None, help="manifest: existing train/val/test column (stored as split_paper).")
@click.option("--delimiter", default=None,
              help="manifest: CSV delimiter (default: ',' or, when the header has none, the one of ; tab | it uses).")
@click.option("--column-type", "column_types", multiple=True, metavar="NAME=TYPE",
              help="manifest: store metadata column NAME as str, int, float or bool (repeatable; default: text, "
                   "or a number when every value is exactly one).")
@click.option("--image-root", default=None, type=click.Path(exists=True, file_okay=False),
              help="manifest: folder relative image paths start from (default: the manifest's folder).")
def ingest(ctx, store_uri, storage_options, as_json, kind, root, name, prompt, split, seed, no_progress, prune,
           keep_missing, rgb, layout, median_over, manifest, id_column, image_column, label_column, text_column,
           text_template, group_column, split_column, delimiter, column_types, image_root):
    """Ingest a dataset folder into the store (KIND: ham10000, brset, satellitebench, manifest).

    Reads the dataset in its publisher's layout, decode-checks every image,
    renders the prompt text and writes the sample rows with split_paper and
    split_grouped columns. Samples with a missing, empty or corrupt image are
    skipped and reported. Re-running on unchanged data writes nothing.
    A manifest without any text is an image-only dataset, one without an
    image column a text-only one (fusion heads then refuse to train).
    A re-ingest that would leave stored samples absent from the source is
    refused with the diff unless --prune (then the stored samples equal the
    source, in one commit; stored groups keep their split) or --keep-missing
    (the source adds to the dataset, e.g. one ingested in parts).

    \b
    Examples:
      embedstore ingest ham10000 --root data/ham10000
      embedstore ingest brset --root data/brset --prompt paper
      embedstore ingest ham10000 --root data/ham10000-curated --name ham10000 --prune
      embedstore ingest satellitebench --root data/satellite --rgb paper
      embedstore ingest manifest --root data/mine --manifest labels.csv \\
          --id-column file --image-column path --label-column y --text-template 'Age: {age}.'
    """
    from embedstore.ingest import ingest as run

    options = dict(rgb=rgb, layout=layout, median_over=median_over, manifest=manifest, id_column=id_column,
                   image_column=image_column, label_column=label_column, text_column=text_column,
                   text_template=text_template, group_column=group_column, split_column=split_column,
                   delimiter=delimiter, image_root=image_root, column_types=list(column_types) or None)
    store = get_store(ctx, store_uri, storage_options)
    report = run(store, kind, root, name=name, prompt=prompt, split=split, seed=seed,
                 progress=not no_progress and not as_json, prune=prune, keep_missing=keep_missing,
                 **options)
    emit(ctx, report.to_dict(), lambda: render(report))
