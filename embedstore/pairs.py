"""Paired image/text embedding matrices of a dataset, read at pinned versions.

Alignment and the gap diagnostics both need, for one dataset and two models,
the samples that have *both* current embeddings, in one order, with their
labels and splits, and the table versions they were read at.
:func:`paired_sources` returns exactly that, read through
:class:`~embedstore.snapshot.Snapshot`; samples lacking a current embedding
are counted in :attr:`PairedSources.unpaired` (never silently dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .identity import ModelIdentity
from .keys import NO_ALIGNMENT


@dataclass
class PairedSources:
    """Row-aligned image and text vectors of one dataset (sorted by ``sample_id``).

    Attributes
    ----------
    ids : list of str
    image, text : ModelIdentity
    image_vectors, text_vectors : ndarray
    image_hashes, text_hashes : list of str
        The stored ``content_sha256`` of each row.
    labels : list of str
    splits : ndarray of str
        Split of each row in :attr:`split_column`.
    split_column : str
    versions : dict
        ``{table: version}`` of the samples and both embeddings tables read.
    alignment_key, dataset : str
    unpaired : dict
        ``{"image": n, "text": n}``: samples skipped for lacking a current
        embedding of that modality (missing or stale).
    stale : dict
        ``{"image": n, "text": n}``: of those, the ones whose stored vector
        is stale (its content hash differs from the sample's current hash).
    """

    ids: list[str]
    image: ModelIdentity
    text: ModelIdentity
    image_vectors: np.ndarray
    text_vectors: np.ndarray
    image_hashes: list[str]
    text_hashes: list[str]
    labels: list[str]
    splits: np.ndarray
    split_column: str
    versions: dict[str, int]
    alignment_key: str = NO_ALIGNMENT
    dataset: str = ""
    unpaired: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of paired samples."""
        return len(self.ids)


def paired_sources(store, dataset: str, image_model: str | ModelIdentity, text_model: str | ModelIdentity, *,
                   split_by: str | None = None, alignment_key: str = NO_ALIGNMENT,
                   dim: int | None = None, versions: dict[str, int] | None = None) -> PairedSources:
    """Read both modalities of ``dataset`` through a :class:`~embedstore.snapshot.Snapshot` and pair them.

    Only *current* vectors are used (content hash equal to the sample's
    current hash); samples lacking one, or whose vector is stale, are counted
    in :attr:`PairedSources.unpaired` and :attr:`PairedSources.stale`.

    Parameters
    ----------
    store : Store
    dataset : str
    image_model, text_model : str or ModelIdentity
        Registered model ids or keys.
    split_by : str, optional
        Split column to report (default: the store's default split).
    alignment_key : str
        ``"none"`` for the extracted vectors, or an alignment's key.
    dim : int, optional
        Width of aligned vectors (an interpolated alignment changes it).
    versions : dict, optional
        ``{table: version}`` to pin (default: latest).

    Raises
    ------
    NotFoundError
        When a model, a table or the dataset is missing.
    InputError
        When no sample has both current embeddings.
    """
    from .refs import lookup_model
    from .snapshot import Snapshot

    snap = Snapshot(store, dataset, image_model=lookup_model(store, image_model, "image"),
                    text_model=lookup_model(store, text_model, "text"), split_by=split_by,
                    image_alignment_key=alignment_key, text_alignment_key=alignment_key,
                    image_dim=dim, text_dim=dim, versions=versions)
    rows, vectors, sel = snap.current(["label", snap.split_column])
    image, text = snap.identities["image"], snap.identities["text"]
    if rows.num_rows == 0:
        stale = sum(sel.stale.values())
        why = (f"; {stale} vector(s) are stale (the sample's content changed since extraction): re-run "
               f"'embedstore extract {dataset}'" if stale else ": extract both first")
        raise InputError(f"dataset '{dataset}' has no sample with both a current {image.model_id} image embedding "
                         f"and a current {text.model_id} text embedding (alignment '{alignment_key}'){why}")
    return PairedSources(
        ids=rows["sample_id"].to_pylist(), image=image, text=text,
        image_vectors=vectors["image"], text_vectors=vectors["text"],
        image_hashes=rows["image_sha256"].to_pylist(), text_hashes=rows["text_sha256"].to_pylist(),
        labels=[str(v) for v in rows["label"].to_pylist()],
        splits=np.asarray([str(v) for v in rows[snap.split_column].to_pylist()]),
        split_column=snap.split_column, versions=dict(snap.versions), alignment_key=alignment_key,
        dataset=dataset, unpaired={m: sel.missing[m] + sel.stale[m] for m in ("image", "text")},
        stale=dict(sel.stale))


def toy_pairs(store, dataset: str = "toy", *, n: int = 60, image_dim: int = 8, text_dim: int = 5,
              classes: int = 3, gap: float = 2.0, seed: int = 0) -> tuple[str, str]:
    """Write a small CONSTRUCTED paired dataset with a known modality gap.

    For examples and tests only (nothing here is real data): each class has a
    random centre; image vectors are ``centre + noise + gap * e_0`` and text
    vectors a noisy projection of the centre shifted by ``-gap`` on their own
    first axis, so the two modalities form separate cones. Splits are
    ``train`` (60 %), ``val`` (20 %) and ``test`` (20 %) in ``split_paper``.

    Returns
    -------
    (image_model_id, text_model_id) : tuple of str
        ``("hf:toy-image", "hf:toy-text")``, both registered.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> toy_pairs(s, "toy", n=10)
    ('hf:toy-image', 'hf:toy-text')
    >>> s.samples("toy").num_rows
    10
    """
    from .keys import sha256_text
    from .synthetic import sample_table

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.standard_normal((classes, image_dim))
    image = centres[labels] + 0.5 * rng.standard_normal((n, image_dim))
    image[:, 0] += gap
    proj = rng.standard_normal((image_dim, text_dim)) / np.sqrt(image_dim)
    text = centres[labels] @ proj + 0.5 * rng.standard_normal((n, text_dim))
    text[:, 0] -= gap
    ids = [f"toy-{i:04d}" for i in range(n)]
    texts = [f"constructed text {i} class {c}" for i, c in enumerate(labels)]
    cut = np.array(["train", "val", "test"])[np.searchsorted([0.6 * n, 0.8 * n], np.arange(n), side="right")]
    rows = sample_table(ids, texts, [f"class-{c}" for c in labels], prompt=("toy", "{text}"),
                        image_refs=[f"constructed://{i}" for i in ids],
                        image_hashes=[sha256_text(f"constructed-image-{i}") for i in ids],
                        splits={"paper": cut.tolist()})
    store.write_samples(dataset, rows)
    img_id = ModelIdentity("hf:toy-image", "constructed", ("image",), {"image": image_dim}, pooling="toy")
    txt_id = ModelIdentity("hf:toy-text", "constructed", ("text",), {"text": text_dim}, pooling="toy")
    store.write_embeddings(dataset, img_id, "image", ids, image.astype(np.float32), rows["image_sha256"].to_pylist())
    store.write_embeddings(dataset, txt_id, "text", ids, text.astype(np.float32), rows["text_sha256"].to_pylist())
    return img_id.model_id, txt_id.model_id
