"""A small, deterministic, clearly labelled SYNTHETIC multimodal dataset.

Used by ``embedstore demo`` when no real data is given. Each of the four
classes is a *shape* (disc or square, seen in the image) crossed with a
*body site* (back or lower extremity, named in the metadata-like text):

=========================  ======  ===============  ===========
class                      shape   site             colour
=========================  ======  ===============  ===========
``synthetic-disc-back``    disc    back             red
``synthetic-disc-leg``     disc    lower extremity  orange-red
``synthetic-square-back``  square  back             blue
``synthetic-square-leg``   square  lower extremity  violet-blue
=========================  ======  ===============  ===========

So each modality sees half of the label: the image gives the shape (and
only a faint colour hint of the site), the text gives the site in
:data:`TEXT_AGREEMENT` of the records (a random site otherwise) and only a
faint age hint of the shape. Image-only and text-only classifiers are well
above chance (0.25) but stuck well below fusion, the pattern the demo is
meant to show. Nothing here is real patient data: every file name, id,
text and label says "synthetic".

Generation is sequential from one seeded generator, so the first ``m``
samples of ``make_synthetic(root, n)`` are byte-identical to those of
``make_synthetic(root, m)``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASSES = ("synthetic-disc-back", "synthetic-disc-leg", "synthetic-square-back", "synthetic-square-leg")
_COLOURS = ((200, 70, 60), (205, 100, 55), (60, 90, 200), (85, 80, 205))  # close within a shape: a faint cue
_SHAPE_OF = (0, 0, 1, 1)  # index into _draw_shape's kinds
_SITE_OF = ("back", "lower extremity", "back", "lower extremity")
_SITES = ("back", "lower extremity", "face", "scalp", "trunk", "upper extremity")
_AGE_OF = (38, 38, 52, 52)  # mean age per class (sd 12): a faint cue of the shape in the text
_SEXES = ("female", "male")
_SIZE = 96
#: Share of texts that name their class's site (the others name a random one of six).
TEXT_AGREEMENT = 0.85


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
    demo run finds every embedding in the cache; a file that already holds
    those bytes is left untouched (its modification time too).

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
        colour = tuple(int(np.clip(c + rng.normal(0, 25), 0, 255)) for c in _COLOURS[k])
        r = int(rng.integers(18, 34))
        cx, cy = (int(v) for v in rng.integers(30, _SIZE - 30, 2))
        _draw_shape(draw, _SHAPE_OF[k], cx, cy, r, colour)
        noise = rng.normal(0, 12, (_SIZE, _SIZE, 3))
        arr = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        path = images / f"{sid}.png"
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", optimize=False)
        _write_if_changed(path, buf.getvalue())
        site = _SITE_OF[k] if rng.random() < TEXT_AGREEMENT else _SITES[int(rng.integers(0, len(_SITES)))]
        age = int(np.clip(rng.normal(_AGE_OF[k], 12), 5, 90))
        sex = _SEXES[int(rng.integers(0, 2))]
        text = (f"SYNTHETIC record (not a real patient). Age: {age} years. Sex: {sex}. "
                f"Localization: {site}.")
        rows.append({"sample_id": sid, "image": str(path.relative_to(root)), "label": CLASSES[k],
                     "text": text, "group": f"synthetic-patient-{i // 2:04d}", "age": age, "site": site})
    manifest = root / "manifest.csv"
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _write_if_changed(manifest, text.getvalue().encode("utf-8"))
    return SyntheticDataset(root, manifest, n)


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    path.write_bytes(data)


def _draw_shape(draw, kind: int, cx: int, cy: int, r: int, colour: tuple[int, int, int]) -> None:
    if kind == 0:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)


def sample_table(ids, texts, labels, *, prompt: tuple[str, str], image_refs, image_hashes, splits,
                 text_hashes=None, extra=None):
    """A samples-table Arrow table for constructed data (no files): the columns ingest would write.

    The one builder behind :func:`embedstore.pairs.toy_pairs`,
    :func:`embedstore.trainers.synthetic_vectors.write_synthetic` and the tests'
    ``sample_rows``. Values are taken as given (lists or arrays);
    ``prompt`` is ``(prompt_name, prompt_template)``, ``splits`` maps a
    split name to its column (``{"paper": [...]}`` → ``split_paper``),
    ``text_hashes`` default to the texts' SHA-256 and ``extra`` adds
    columns (e.g. ``group_id``) after the splits.

    Examples
    --------
    >>> t = sample_table(["a", "b"], ["x", "y"], ["0", "1"], prompt=("p", "{x}"), image_refs=["a.png", "b.png"],
    ...                  image_hashes=["1", "2"], splits={"paper": ["train", "test"]})
    >>> t.column_names[-2:], t["text_sha256"][0].as_py()[:8]
    (['label', 'split_paper'], '2d711642')
    """
    import pyarrow as pa

    from .keys import sha256_text

    n = len(ids)
    return pa.table({
        "sample_id": ids, "text": texts,
        "text_sha256": [sha256_text(t) for t in texts] if text_hashes is None else text_hashes,
        "prompt_name": [prompt[0]] * n, "prompt_template": [prompt[1]] * n,
        "image_ref": image_refs, "image_sha256": image_hashes, "label": labels,
        **{f"split_{name}": column for name, column in splits.items()}, **(extra or {}),
    })
