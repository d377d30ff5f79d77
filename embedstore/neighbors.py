"""Nearest-neighbour search over stored embeddings (mixed into the Store).

Exact search is the default (a flat scan, ``bypass_vector_index``). An
optional IVF index can be built with :meth:`NeighborsMixin.create_index`;
:meth:`NeighborsMixin.index_recall` measures its recall@k against exact
search. Distances are LanceDB's: ``cosine`` = 1 − cos, ``l2`` = squared
Euclidean, ``dot`` = 1 − dot product.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from .errors import InputError, NotFoundError
from .identity import ModelIdentity
from .keys import NO_ALIGNMENT

METRICS = ("cosine", "l2", "dot")


def _q(value: str) -> str:
    return str(value).replace("'", "''")


class NeighborsMixin:
    """Search methods of :class:`~embedstore.store.Store`."""

    def neighbors(self, dataset: str, model: str | ModelIdentity, modality: str, *,
                  vector: Sequence[float] | np.ndarray | None = None, sample_id: str | None = None,
                  k: int = 10, metric: str = "cosine", where: str | None = None,
                  alignment_key: str = NO_ALIGNMENT, version: int | str | None = None,
                  use_index: bool = False, nprobes: int = 20, refine_factor: int | None = 10,
                  exclude_self: bool = True) -> pa.Table:
        """The ``k`` nearest stored embeddings to a vector or a stored sample.

        Parameters
        ----------
        dataset, modality : str
        model : str or ModelIdentity
        vector : array-like, optional
            Query vector (exactly one of ``vector``/``sample_id``).
        sample_id : str, optional
            Query by a stored sample's own vector; it is excluded from the
            result unless ``exclude_self=False``.
        k : int
        metric : {"cosine", "l2", "dot"}
        where : str, optional
            Extra SQL filter on the embeddings table (prefiltered).
        use_index : bool
            Use an ANN index if one exists (see :meth:`create_index`).

        Returns
        -------
        pyarrow.Table
            ``sample_id`` and ``distance``, nearest first.

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> from embedstore import Store, ModelIdentity
        >>> s = Store(tempfile.mkdtemp() + "/s")
        >>> m = ModelIdentity("hf:toy", "w", ("image",), {"image": 2})
        >>> _ = s.write_embeddings("d", m, "image", ["a", "b", "c"],
        ...     np.array([[1, 0], [0, 1], [1, 1]], np.float32), ["h1", "h2", "h3"])
        >>> s.neighbors("d", m, "image", vector=[1, 0.1], k=2)["sample_id"].to_pylist()
        ['a', 'c']
        """
        if metric not in METRICS:
            raise InputError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        if (vector is None) == (sample_id is None):
            raise InputError("neighbors: give exactly one of a vector (--vector-file) or a sample id (--sample)")
        identity = model if isinstance(model, ModelIdentity) else self.model(model, modality)
        table = self._emb_table(identity, modality)
        if not self.has_table(table):
            raise NotFoundError(f"no {modality} embeddings for {identity.model_id} in store {self.uri}")
        filters = [f"dataset = '{_q(dataset)}'", f"alignment_key = '{_q(alignment_key)}'"]
        if sample_id is not None:
            row = self.read(table, version=version, columns=["vector"],
                            where=" AND ".join(filters + [f"sample_id = '{_q(sample_id)}'"]))
            if row.num_rows == 0:
                raise NotFoundError(f"sample '{sample_id}' has no {modality} embedding in dataset '{dataset}'")
            vector = row["vector"][0].as_py()
            if exclude_self:
                filters.append(f"sample_id != '{_q(sample_id)}'")
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != identity.dim(modality):
            raise InputError(f"query vector has width {query.shape[0]}, table expects {identity.dim(modality)}")
        if where:
            filters.append(f"({where})")
        tbl = self.open_table(table, version)
        search = (tbl.search(query, vector_column_name="vector").distance_type(metric)
                  .where(" AND ".join(filters), prefilter=True).limit(k)
                  .select(["sample_id", "_distance"]))
        if use_index:
            search = search.nprobes(nprobes)
            if refine_factor:
                search = search.refine_factor(refine_factor)
        else:
            search = search.bypass_vector_index()
        res = search.to_arrow()
        return pa.table({"sample_id": res["sample_id"],
                         "distance": res["_distance"].cast(pa.float64())})

    def create_index(self, model: str | ModelIdentity, modality: str, *, metric: str = "cosine",
                     kind: str = "ivf_flat", num_partitions: int | None = None) -> None:
        """Build an ANN index (``ivf_flat``, ``ivf_pq`` or ``ivf_hnsw_sq``) on a model's table."""
        from lancedb.index import IvfFlat, IvfHnswSq, IvfPq

        identity = model if isinstance(model, ModelIdentity) else self.model(model, modality)
        table = self._emb_table(identity, modality)
        n = self.open_table(table).count_rows()
        parts = num_partitions or max(1, int(np.sqrt(n)))
        configs = {"ivf_flat": lambda: IvfFlat(distance_type=metric, num_partitions=parts),
                   "ivf_pq": lambda: IvfPq(distance_type=metric, num_partitions=parts),
                   "ivf_hnsw_sq": lambda: IvfHnswSq(distance_type=metric, num_partitions=parts)}
        if kind not in configs:
            raise InputError(f"unknown index kind {kind!r}: use one of {', '.join(configs)}")
        from .locks import table_lock

        with table_lock(self.lock_dir, table):
            self.db.open_table(table).create_index("vector", config=configs[kind](), replace=True)

    def index_recall(self, dataset: str, model: str | ModelIdentity, modality: str, *,
                     queries: np.ndarray, k: int = 10, metric: str = "cosine",
                     nprobes: int = 20, refine_factor: int | None = 10) -> float:
        """Mean recall@k of the ANN index against exact search over ``queries``."""
        hits = 0
        for q in np.asarray(queries, dtype=np.float32):
            exact = set(self.neighbors(dataset, model, modality, vector=q, k=k, metric=metric)["sample_id"].to_pylist())
            approx = set(self.neighbors(dataset, model, modality, vector=q, k=k, metric=metric, use_index=True,
                                        nprobes=nprobes, refine_factor=refine_factor)["sample_id"].to_pylist())
            hits += len(exact & approx) / max(1, len(exact))
        return hits / max(1, len(queries))
