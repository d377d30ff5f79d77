"""Which modalities a dataset has: the one place that decides and checks it.

A dataset may have images and text (HAM10000, BRSET...), images only
(most imaging datasets, e.g. RetinaMNIST) or text only. The record is the
samples table itself: a modality is present when its content hash column
(``image_sha256`` / ``text_sha256``) is filled. An image-only dataset is
ingested with ``text``/``text_sha256`` null (``prompt_name`` ``"none"``), a
text-only one with ``image_ref``/``image_sha256`` null, and the whole
dataset is one or the other (an adapter never mixes), so the record can not
drift from the rows. Samples tables written before single-modality datasets
existed have both columns filled, so they read as image + text unchanged.

Every consumer asks here: ``ingest`` reports the modalities,
``extract`` embeds only the ones present, ``train`` refuses a fusion head
that needs an absent one, ``predict`` refuses a head whose input modality
the dataset lacks.

Examples
--------
>>> import pyarrow as pa
>>> row_modalities(pa.table({"image_sha256": ["a", "b"], "text_sha256": pa.array([None, None], pa.string())}))
('image',)
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .errors import InputError
from .identity import MODALITIES

#: Hash column recording each modality's content.
HASH_COLUMNS = {"image": "image_sha256", "text": "text_sha256"}
#: ``prompt_name`` of an image-only dataset (no text was rendered).
NO_TEXT_PROMPT = "none"
#: Fusion heads that read both modalities.
FUSED = ("early", "late")


def row_modalities(rows: pa.Table) -> tuple[str, ...]:
    """Modalities with a filled hash column in ``rows`` (in :data:`MODALITIES` order)."""
    out = []
    for m in MODALITIES:
        col = HASH_COLUMNS[m]
        if col in rows.column_names and rows.num_rows and rows[col].null_count < rows.num_rows:
            out.append(m)
    return tuple(out)


def dataset_modalities(store, dataset: str, version: int | str | None = None) -> tuple[str, ...]:
    """Modalities of ``dataset`` (as of ``version``): ``("image", "text")``, ``("image",)`` or ``("text",)``.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.pairs import toy_pairs
    >>> store = Store(tempfile.mkdtemp() + "/s")
    >>> _ = toy_pairs(store, "toy", n=4)
    >>> dataset_modalities(store, "toy")
    ('image', 'text')
    """
    rows = store.samples(dataset, version=version, columns=list(HASH_COLUMNS.values()))
    return row_modalities(rows)


def describe(modalities: tuple[str, ...] | list[str]) -> str:
    """``"image and text"``, ``"image only"`` or ``"text only"``.

    Examples
    --------
    >>> describe(("image",)), describe(("image", "text"))
    ('image only', 'image and text')
    """
    mods = tuple(modalities)
    return " and ".join(mods) if len(mods) > 1 else f"{mods[0]} only" if mods else "no modality"


def require(store, dataset: str, modality: str, fix: str, *, have: tuple[str, ...] | None = None) -> None:
    """Raise a one-line :class:`InputError` when ``dataset`` has no ``modality``; ``fix`` ends the message."""
    have = dataset_modalities(store, dataset) if have is None else have
    if modality not in have:
        raise InputError(f"dataset '{dataset}' has no {modality} ({describe(have)}): {fix}")


def check_training(store, dataset: str, fusion: str, uses: dict[str, Any]) -> None:
    """Refuse a head that reads a modality ``dataset`` lacks (one line naming the fix).

    ``uses`` is ``{modality: bool}``, the modalities the head reads.
    Early/late fusion on a single-modality dataset is pointed at the
    single-modality heads and the linear probe.
    """
    have = dataset_modalities(store, dataset)
    for m in MODALITIES:
        if not uses.get(m) or m in have:
            continue
        if fusion in FUSED:
            only = have[0] if have else "image"
            raise InputError(f"dataset '{dataset}' has {describe(have)}: {fusion} fusion needs image and text; "
                             f"train fusion='{only}' or fusion='linear' with {only}_model= only")
        require(store, dataset, m, f"drop {m}_model= (the {fusion} head reads only what the dataset has)",
                have=have)
