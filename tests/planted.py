"""Copies of a HAM10000-layout folder with planted problems, for the data-check acceptance tests.

Each builder writes a new folder (metadata CSV + images) that ``embedstore.ingest(store, "ham10000", ...)``
reads like the original; the originals' image files are linked, never copied into the repository.
What was planted is returned, so a test can score what ``check``/``drift`` found.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

METADATA = "HAM10000_metadata.csv"


def read_rows(root: Path, n: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """The metadata rows of ``root`` (a stratified-by-order random subset of ``n`` rows when given)."""
    with open(root / METADATA, newline="") as f:
        rows = list(csv.DictReader(f))
    if n is not None and n < len(rows):
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def write_copy(rows: list[dict[str, str]], src: Path, out: Path, images: dict[str, bytes] | None = None) -> Path:
    """Write ``rows`` as a HAM10000 folder at ``out``: new images from ``images`` (id -> JPEG bytes), others linked."""
    images = images or {}
    (out / "images").mkdir(parents=True, exist_ok=True)
    with open(out / METADATA, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        dst = out / "images" / f"{r['image_id']}.jpg"
        if dst.exists():
            continue
        if r["image_id"] in images:
            dst.write_bytes(images[r["image_id"]])
        else:
            os.symlink(src / "images" / f"{r['image_id']}.jpg", dst)
    return out


def altered(path: Path, rng: np.random.Generator) -> bytes:
    """The photo at ``path`` re-saved: a small crop (1-5 % a side, resized back) and/or JPEG re-compression (quality 70-95)."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
    kind = rng.integers(3)  # 0 crop, 1 re-compression, 2 both
    if kind in (0, 2):
        w, h = img.size
        l, t, r, b = (rng.uniform(0.01, 0.05, 4) * [w, h, w, h]).astype(int)
        img = img.crop((l, t, w - r, h - b)).resize((w, h), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(70, 96)) if kind in (1, 2) else 95)
    return buf.getvalue()


def with_duplicates(src: Path, out: Path, *, n_rows: int, n_dups: int, seed: int = 0):
    """``n_rows`` photos of ``src`` plus ``n_dups`` altered re-saves of some of them, each under a new image and lesion id.

    Returns ``(folder, pairs)`` with ``pairs`` the planted ``(original_id, copy_id)``.
    """
    rng = np.random.default_rng(seed)
    rows = read_rows(src, n_rows, seed)
    picks = rng.choice(len(rows), n_dups, replace=False)
    images, pairs, extra = {}, [], []
    for j, i in enumerate(picks):
        r = dict(rows[i])
        new = f"ISIC_9{j:06d}"
        images[new] = altered(src / "images" / f"{r['image_id']}.jpg", rng)
        pairs.append((r["image_id"], new))
        extra.append(dict(r, image_id=new, lesion_id=f"HAM_9{j:06d}"))
    return write_copy(rows + extra, src, out, images), pairs


def with_flipped_labels(src: Path, out: Path, *, n_rows: int | None = None, fraction: float = 0.1, seed: int = 0):
    """A copy of ``src`` whose labels are flipped to another class (drawn uniformly) on ``fraction`` of the rows.

    Returns ``(folder, flipped)`` with ``flipped`` the ``{image_id: (true, given)}`` of the changed rows.
    """
    rng = np.random.default_rng(seed)
    rows = read_rows(src, n_rows, seed)
    classes = sorted({r["dx"] for r in rows})
    flipped = {}
    for i in rng.choice(len(rows), int(round(fraction * len(rows))), replace=False):
        true = rows[i]["dx"]
        given = str(rng.choice([c for c in classes if c != true]))
        rows[i] = dict(rows[i], dx=given)
        flipped[rows[i]["image_id"]] = (true, given)
    return write_copy(rows, src, out), flipped


def colour_shifted(path: Path, gains: tuple[float, float, float]) -> bytes:
    """The photo at ``path`` with its R, G, B channels scaled by ``gains`` (another camera's white balance)."""
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.float32)
    out = np.clip(a * np.asarray(gains, dtype=np.float32), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def two_sites(src: Path, out_a: Path, out_b: Path, *, n_rows: int | None = None, gains=(1.0, 1.0, 1.0),
              seed: int = 0) -> tuple[Path, Path]:
    """``src`` (or ``n_rows`` of it) split at random into two halves, "site A" and "site B"; B's photos re-coloured by ``gains``.

    With ``gains=(1, 1, 1)`` B's photos are the originals (linked), so the two sites differ by chance only.
    """
    rng = np.random.default_rng(seed)
    rows = read_rows(src, n_rows, seed)
    order = rng.permutation(len(rows))
    half = len(rows) // 2
    a = [rows[i] for i in sorted(order[:half])]
    b = [rows[i] for i in sorted(order[half:])]
    shifted = tuple(gains) != (1.0, 1.0, 1.0)
    images = {r["image_id"]: colour_shifted(src / "images" / f"{r['image_id']}.jpg", gains) for r in b} if shifted else {}
    return write_copy(a, src, out_a), write_copy(b, src, out_b, images)
