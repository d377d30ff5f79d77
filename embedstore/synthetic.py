"""A small, deterministic, clearly labelled SYNTHETIC multimodal dataset.

Used by ``embedstore demo`` when no real data is given. Each class has its own
shape and colour family in the image and its own (noisy) metadata pattern in
the text, so that both modalities carry signal and their fusion carries more.
Nothing here is real patient data: every file name, text and label says
"synthetic".
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ("synthetic-disc", "synthetic-square", "synthetic-triangle", "synthetic-ring")
_COLOURS = ((200, 60, 60), (60, 160, 70), (70, 90, 200), (190, 150, 40))
_SITES = ("back", "face", "upper extremity", "lower extremity", "trunk", "scalp")
_SIZE = 96


@dataclass(frozen=True)
class SyntheticDataset:
    """Where a generated synthetic dataset lives."""

    root: Path
    manifest: Path
    n: int
    classes: tuple[str, ...] = CLASSES


def make_synthetic(root: str | Path, n: int = 240, seed: int = 0) -> SyntheticDataset:
    """Write ``n`` synthetic images and a ``manifest.csv`` under ``root``.

    The same ``n`` and ``seed`` always give byte-identical files, so a second
    demo run finds every embedding in the cache.

    Columns: ``sample_id, image, label, text, group, age, site``.

    Examples
    --------
    >>> import tempfile
    >>> ds = make_synthetic(tempfile.mkdtemp(), n=8)
    >>> ds.manifest.read_text().splitlines()[0]
    'sample_id,image,label,text,group,age,site'
    """
    from PIL import Image, ImageDraw

    root = Path(root)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % len(CLASSES)
        sid = f"synthetic-{i:04d}"
        img = Image.new("RGB", (_SIZE, _SIZE), tuple(int(v) for v in rng.integers(200, 256, 3)))
        draw = ImageDraw.Draw(img)
        colour = tuple(int(np.clip(c + rng.normal(0, 35), 0, 255)) for c in _COLOURS[k])
        r = int(rng.integers(18, 34))
        cx, cy = (int(v) for v in rng.integers(30, _SIZE - 30, 2))
        _draw_shape(draw, k, cx, cy, r, colour)
        noise = rng.normal(0, 12, (_SIZE, _SIZE, 3))
        arr = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        path = images / f"{sid}.png"
        Image.fromarray(arr).save(path, optimize=False)
        # Text: metadata that agrees with the class 60% of the time.
        informative = rng.random() < 0.6
        site = _SITES[k] if informative else _SITES[int(rng.integers(0, len(_SITES)))]
        age = int(np.clip(rng.normal(30 + 10 * k, 8), 5, 90))
        text = (f"SYNTHETIC record {i}. Age: {age} years. Localization: {site}. "
                f"Not a real patient.")
        rows.append({"sample_id": sid, "image": str(path.relative_to(root)), "label": CLASSES[k],
                     "text": text, "group": f"synthetic-patient-{i // 2:04d}", "age": age, "site": site})
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return SyntheticDataset(root, manifest, n)


def _draw_shape(draw, kind: int, cx: int, cy: int, r: int, colour: tuple[int, int, int]) -> None:
    if kind == 0:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == 1:
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == 2:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(4, r // 3))
