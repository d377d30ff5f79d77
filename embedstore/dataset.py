"""A dataset handle, ``store.dataset(name)``: one dataset's reads, as :class:`~embedstore.formats.Rows`.

Each method delegates to the store's own (:mod:`embedstore.data`,
:mod:`embedstore.neighbors`) with the dataset filled in, and returns rows
that convert with ``to_arrow()``/``to_polars()``/``to_numpy()``. Models are
``model_key`` values, canonical ids or identities, as everywhere in the
store; a user's spelling is resolved by :func:`embedstore.refs.lookup_model`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .formats import Rows
from .identity import ModelIdentity
from .keys import NO_ALIGNMENT
from .schema import samples_table


class Dataset:
    """One dataset of a store.

    Parameters
    ----------
    store : Store
    name : str
        The dataset (``samples__<name>``); it need not exist yet.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> rows = pa.table({"sample_id": ["a", "b"], "text": ["x", "y"],
    ...     "text_sha256": ["1", "2"], "prompt_name": ["p"] * 2,
    ...     "prompt_template": ["{t}"] * 2, "image_ref": ["a.jpg", "b.jpg"],
    ...     "image_sha256": ["3", "4"], "label": ["0", "1"],
    ...     "split_paper": ["train", "test"]})
    >>> toy = s.dataset("toy")
    >>> _ = toy.write_samples(rows)
    >>> toy.exists, toy.samples(split="test").to_numpy()["sample_id"].tolist()
    (True, ['b'])
    """

    def __init__(self, store, name: str) -> None:
        self.store, self.name = store, name

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, store={self.store.uri!r})"

    @property
    def exists(self) -> bool:
        """Whether the dataset has a samples table."""
        return self.store.has_table(samples_table(self.name))

    def split_column(self, split_by: str | None = None) -> str:
        """The ``split_<name>`` column used; see :meth:`Store.split_column`."""
        return self.store.split_column(self.name, split_by)

    def write_samples(self, rows, *, tag: str | None = None, prune: bool = False):
        """Upsert sample rows; see :meth:`Store.write_samples`. Returns the WriteResult."""
        return self.store.write_samples(self.name, rows, tag=tag, prune=prune)

    def samples(self, *, split: str | Sequence[str] | None = None, split_by: str | None = None,
                version: int | str | None = None, columns: Sequence[str] | None = None) -> Rows:
        """Sample rows, optionally one split, as of a version; see :meth:`Store.samples`."""
        return Rows(self.store.samples(self.name, split=split, split_by=split_by, version=version,
                                       columns=columns))

    def embeddings(self, model: str | ModelIdentity, modality: str, *, alignment_key: str = NO_ALIGNMENT,
                   split: str | Sequence[str] | None = None, split_by: str | None = None,
                   version: int | str | None = None, samples_version: int | str | None = None,
                   dim: int | None = None) -> Rows:
        """Current embeddings (``sample_id``, ``content_sha256``, ``vector``); see :meth:`Store.embeddings`.

        ``Rows.matrix()`` gives the ``(n, d)`` vectors.
        """
        return Rows(self.store.embeddings(self.name, model, modality, alignment_key=alignment_key, split=split,
                                          split_by=split_by, version=version, samples_version=samples_version,
                                          dim=dim))

    def missing(self, model: str | ModelIdentity, modality: str, *, reuse: bool = True,
                limit: int | None = None) -> Rows:
        """Samples that still need a forward pass; see :meth:`Store.missing`."""
        return Rows(self.store.missing(self.name, model, modality, reuse=reuse, limit=limit))

    def neighbors(self, model: str | ModelIdentity, modality: str, *,
                  vector: Sequence[float] | np.ndarray | None = None, sample_id: str | None = None,
                  k: int = 10, **options: Any) -> Rows:
        """The ``k`` nearest samples to a vector or a stored sample; see :meth:`Store.neighbors` (its options)."""
        return Rows(self.store.neighbors(self.name, model, modality, vector=vector, sample_id=sample_id, k=k,
                                         **options))

    neighbours = neighbors

    def export(self, model: str | ModelIdentity, modality: str, out: str, *,
               alignment_key: str = NO_ALIGNMENT, version: int | str | None = None) -> int:
        """Write current embeddings with labels and splits to Parquet/CSV; rows written.

        See :func:`embedstore.data.export_embeddings`.
        """
        from .data import export_embeddings

        return export_embeddings(self.store, self.name, model, modality, out, alignment_key=alignment_key,
                                 version=version)
