"""Paired image/text embedding matrices of a dataset, read at pinned versions.

Alignment and the gap diagnostics both need, for one dataset and two models,
the samples that have *both* embeddings, in one order, with their labels and
splits, and the table versions they were read at. :func:`paired_sources`
returns exactly that; samples lacking an embedding are counted in
:attr:`PairedSources.unpaired` (never silently dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, NotFoundError
from .identity import ModelIdentity
from .keys import NO_ALIGNMENT
from .schema import samples_table


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
        ``{"image": n, "text": n}``: samples skipped for lacking that embedding.
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

    @property
    def rows(self) -> int:
        """Number of paired samples."""
        return len(self.ids)


def paired_sources(store, dataset: str, image_model: str | ModelIdentity, text_model: str | ModelIdentity, *,
                   split_by: str | None = None, alignment_key: str = NO_ALIGNMENT,
                   dim: int | None = None) -> PairedSources:
    """Read both modalities of ``dataset`` and pair them by ``sample_id``.

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

    Raises
    ------
    NotFoundError
        When a model, a table or the dataset is missing.
    InputError
        When no sample has both embeddings.
    """
    import polars as pl

    image = image_model if isinstance(image_model, ModelIdentity) else store.model(image_model, "image")
    text = text_model if isinstance(text_model, ModelIdentity) else store.model(text_model, "text")
    stable = samples_table(dataset)
    if not store.has_table(stable):
        raise NotFoundError(f"no dataset '{dataset}' in store {store.uri}: run 'embedstore ingest' first")
    split_col = store.split_column(dataset, split_by)
    versions = {stable: store.version(stable)}
    samples = pl.from_arrow(store.samples(dataset, version=versions[stable],
                                          columns=["sample_id", "label", split_col]))
    frames = {}
    for modality, ident in (("image", image), ("text", text)):
        table = store._emb_table(ident, modality, dim)
        if not store.has_table(table):
            raise NotFoundError(f"no {modality} embeddings for {ident.model_id} ({ident.key}) of width "
                                f"{dim or ident.dim(modality)} in store {store.uri}: run 'embedstore extract "
                                f"{dataset} --model {ident.model_id} --modality {modality}'")
        versions[table] = store.version(table)
        data = store.embeddings(dataset, ident, modality, alignment_key=alignment_key,
                                version=versions[table], dim=dim)
        frames[modality] = pl.from_arrow(data).rename({"content_sha256": f"{modality}_hash",
                                                      "vector": f"{modality}_vector"})
    joined = samples
    unpaired = {}
    for modality, frame in frames.items():
        before = joined.height
        joined = joined.join(frame, on="sample_id", how="inner")
        unpaired[modality] = before - joined.height
    if joined.height == 0:
        raise InputError(f"dataset '{dataset}' has no sample with both a {image.model_id} image embedding and "
                         f"a {text.model_id} text embedding (alignment '{alignment_key}'): extract both first")
    joined = joined.sort("sample_id")
    arrow = joined.to_arrow()
    from .data import vectors_of

    return PairedSources(
        ids=arrow["sample_id"].to_pylist(), image=image, text=text,
        image_vectors=vectors_of(arrow, "image_vector"), text_vectors=vectors_of(arrow, "text_vector"),
        image_hashes=arrow["image_hash"].to_pylist(), text_hashes=arrow["text_hash"].to_pylist(),
        labels=[str(v) for v in arrow["label"].to_pylist()],
        splits=np.asarray([str(v) for v in arrow[split_col].to_pylist()]),
        split_column=split_col, versions=versions, alignment_key=alignment_key, dataset=dataset,
        unpaired=unpaired)


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
    import pyarrow as pa

    from .keys import sha256_text

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
    rows = pa.table({
        "sample_id": ids, "text": texts, "text_sha256": [sha256_text(t) for t in texts],
        "prompt_name": ["toy"] * n, "prompt_template": ["{text}"] * n,
        "image_ref": [f"constructed://{i}" for i in ids],
        "image_sha256": [sha256_text(f"constructed-image-{i}") for i in ids],
        "label": [f"class-{c}" for c in labels], "split_paper": cut.tolist(),
    })
    store.write_samples(dataset, rows)
    img_id = ModelIdentity("hf:toy-image", "constructed", ("image",), {"image": image_dim}, pooling="toy")
    txt_id = ModelIdentity("hf:toy-text", "constructed", ("text",), {"text": text_dim}, pooling="toy")
    store.write_embeddings(dataset, img_id, "image", ids, image.astype(np.float32), rows["image_sha256"].to_pylist())
    store.write_embeddings(dataset, txt_id, "text", ids, text.astype(np.float32), rows["text_sha256"].to_pylist())
    return img_id.model_id, txt_id.model_id
