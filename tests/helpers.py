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
