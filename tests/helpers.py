"""Small builders shared by tests (sample rows, toy identities)."""

from __future__ import annotations

import pyarrow as pa

from embedstore import ModelIdentity
from embedstore.keys import sha256_text
from embedstore.synthetic import sample_table


def sample_rows(ids, *, labels=None, splits=None, texts=None, image_hashes=None) -> pa.Table:
    """Minimal valid samples-table rows."""
    n = len(ids)
    return sample_table(list(ids), texts or [f"text {i}" for i in ids], labels or ["0"] * n,
                        prompt=("default", "{x}"), image_refs=[f"/nowhere/{i}.jpg" for i in ids],
                        image_hashes=image_hashes or [sha256_text(f"img-{i}") for i in ids],
                        splits={"paper": splits or ["train"] * n})


def toy_model(dim: int = 4, modality: str = "image", name: str = "hf:toy") -> ModelIdentity:
    """A registered-able identity of a fake encoder of width ``dim``."""
    return ModelIdentity(name, "weights-sha", (modality,), {modality: dim}, pooling="cls")


def manifest_copy(src, out, *, drop=(), keep=None) -> str:
    """A copy of manifest ``src`` in folder ``out`` without columns ``drop`` (image paths made absolute),
    with only the rows whose ``sample_id`` is in ``keep`` (all when None); returns its path."""
    import csv

    rows = list(csv.DictReader(open(src)))
    cols = [c for c in rows[0] if c not in drop]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            if keep is None or r["sample_id"] in keep:
                w.writerow({c: r[c] if c != "image" else str(src.parent / r[c]) for c in cols})
    return str(path)


def invoke_cli(store_uri, *args):
    """``embedstore --store URI ARGS...`` through click's runner (exceptions become the exit code)."""
    from click.testing import CliRunner

    from embedstore.cli.main import cli

    return CliRunner().invoke(cli, ["--store", str(store_uri), *map(str, args)], obj={})


def one_line_error(result, *needles):
    """Exit code 1 and a single ``Error: ...`` line that contains every needle."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def random_image_vectors(store, dataset: str, n: int, dim: int, seed: int):
    """``n`` random image vectors of a toy model of width ``dim`` written for ``dataset``.

    Returns ``(model, ids, vecs, rng)``, the generator as it is after drawing ``vecs``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    model = toy_model(dim=dim)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    ids = [f"s{i:03d}" for i in range(n)]
    store.write_embeddings(dataset, model, "image", ids, vecs, ids)
    return model, ids, vecs, rng


def embedded_manifest(base):
    """A 60-row synthetic manifest (real images, grouped) ingested as ``ds`` and embedded by a tiny real CLIP.

    Returns ``(store, model_dir, data)``.
    """
    from embedstore import Store
    from embedstore.extract import extract
    from embedstore.ingest import ingest
    from embedstore.synthetic import make_synthetic
    from tests.tiny_models import make_tiny_clip_hf

    data = make_synthetic(base / "data", n=60)
    model = make_tiny_clip_hf(base / "clip", projection_dim=16)
    store = Store(base / "store")
    ingest(store, "manifest", data.manifest, name="ds", id_column="sample_id", group_column="group",
           progress=False)
    extract(store, "ds", model, progress=False, threads=1)
    return store, model, data

