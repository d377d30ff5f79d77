"""Store commands: info, versions, tag, neighbors, export."""

from __future__ import annotations

import click

from .common import command, emit, get_store, table


@command()
def info(ctx, store_uri, storage_options, as_json):
    """Tables (rows, latest version, size, fragments, what pins old versions), datasets and models.

    MiB counts every version's files; old_MiB the files only old versions
    read (what 'cleanup' frees unless a user tag, a recorded run or a
    lease pins them: pinned_by).

    \b
    Example:
      embedstore --store ./lab-store info
    """
    from embedstore.pins import describe_pins

    store = get_store(ctx, store_uri, storage_options)
    data = store.info()

    def text() -> str:
        rows = [{**t, "MiB": f"{t['bytes'] / 2**20:.2f}", "old_MiB": f"{t['old_bytes'] / 2**20:.2f}",
                 "pinned_by": describe_pins(t["pinned_by"])} for t in data["tables"]]
        parts = [f"store: {data['uri']} ({data['bytes'] / 2**20:.2f} MiB)",
                 f"datasets: {', '.join(data['datasets']) or '(none)'}", "",
                 table(rows, ["table", "rows", "version", "versions", "fragments", "MiB", "old_MiB", "tags",
                              "pinned_by"]), ""]
        parts.append(table(data["models"], ["model_key", "model_id", "modalities", "dims", "dtype", "pooling"])
                     if data["models"] else "models: (none)")
        return "\n".join(parts)

    emit(ctx, data, text)


@command()
@click.argument("table_name", metavar="TABLE")
def versions(ctx, store_uri, storage_options, as_json, table_name):
    """List the versions of TABLE with their tags.

    \b
    Example:
      embedstore versions samples__ham10000
    """
    rows = [v.to_dict() | {"tags": ",".join(v.tags)} for v in get_store(ctx, store_uri, storage_options).versions(table_name)]
    emit(ctx, rows, lambda: table(rows, ["version", "timestamp", "rows", "tags"]))


@command()
@click.argument("table_name", metavar="TABLE")
@click.argument("name")
@click.option("--version", "version", type=int, default=None, help="Version to tag (default: latest).")
def tag(ctx, store_uri, storage_options, as_json, table_name, name, version):
    """Tag a version of TABLE as NAME.

    \b
    Example:
      embedstore tag samples__ham10000 before-cleanup --version 3
    """
    v = get_store(ctx, store_uri, storage_options).tag(table_name, name, version)
    emit(ctx, {"table": table_name, "tag": name, "version": v}, f"tagged {table_name} version {v} as {name}")


@command()
@click.argument("dataset")
@click.option("--model", required=True, help="Model id or model_key.")
@click.option("--modality", type=click.Choice(["image", "text"]), required=True)
@click.option("--sample", "sample_id", default=None, help="Query with this stored sample's vector.")
@click.option("--vector-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=".npy file or a text file of numbers holding the query vector.")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--metric", type=click.Choice(["cosine", "l2", "dot"]), default="cosine", show_default=True)
@click.option("--where", default=None, help="SQL filter on the embeddings table.")
@click.option("--alignment", "alignment_key", default="none", show_default=True)
@click.option("--use-index", is_flag=True, help="Use the ANN index if one exists.")
def neighbors(ctx, store_uri, storage_options, as_json, dataset, model, modality, sample_id,
              vector_file, k, metric, where, alignment_key, use_index):
    """The k nearest stored embeddings to a sample or a vector.

    \b
    Example:
      embedstore neighbors ham10000 --model builtin:efficientnet-lite0 \\
          --modality image --sample ISIC_0024306 -k 5
    """
    from embedstore.files import read_vector

    vector = read_vector(vector_file) if vector_file else None
    rows = get_store(ctx, store_uri, storage_options).dataset(dataset).neighbors(
        model, modality, vector=vector, sample_id=sample_id, k=k, metric=metric,
        where=where, alignment_key=alignment_key, use_index=use_index).to_pylist()
    emit(ctx, rows, lambda: table(rows, ["sample_id", "distance"]))


@command()
@click.argument("dataset")
@click.option("--model", required=True, help="Model id or model_key.")
@click.option("--modality", type=click.Choice(["image", "text"]), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="FILE.parquet or FILE.csv")
@click.option("--alignment", "alignment_key", default="none", show_default=True)
@click.option("--version", default=None, help="Embeddings table version or tag.")
def export(ctx, store_uri, storage_options, as_json, dataset, model, modality, out, alignment_key, version):
    """Export a dataset's embeddings with labels and splits to Parquet or CSV.

    \b
    Example:
      embedstore export ham10000 --model builtin:minilm-l6 --modality text --out text.parquet
    """
    n = get_store(ctx, store_uri, storage_options).dataset(dataset).export(
        model, modality, out, alignment_key=alignment_key, version=version)
    emit(ctx, {"rows": n, "out": out}, f"wrote {n} rows to {out}")
