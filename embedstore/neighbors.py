"""Nearest-neighbour search over stored embeddings (mixed into the Store).

Exact search is the default. It runs as a NumPy brute force over the
table's matrix, which is read once per (table, version, dataset, alignment)
and cached on the :class:`~embedstore.store.Store` (a small LRU bounded by
``$EMBEDSTORE_NEIGHBORS_CACHE_MB``, default 1024). A new write makes a new
version, so the cache can never serve stale vectors. ``where`` filters are
evaluated by LanceDB on the scalar columns of the same version, on their own,
and intersected with the (dataset, alignment) scope (:mod:`embedstore.sql`):
a filter can only narrow that scope, never widen it, and filtered results
are exact too. ``engine="lance"``
runs LanceDB's own flat scan (``bypass_vector_index``) instead; it is slower
(about 25-50 ms per query at 16k x 512 on 2 cores, see
``benchmarks/results/store.md``) and returns the same rows.

The brute force is exact, not approximate: candidates are ranked with a
float32 matrix product, the best are rescored in float64, and a rigorous
float32 error bound proves that no other row can beat the k-th result;
when the bound cannot prove it, every row is rescored in float64.

An optional IVF index can be built with :meth:`NeighborsMixin.create_index`
and used with ``use_index=True`` (through LanceDB);
:meth:`NeighborsMixin.index_recall` measures its recall@k against exact
search. Distances are LanceDB's: ``cosine`` = 1 − cos (rows with a zero
vector have no cosine distance and are never returned), ``l2`` = squared
Euclidean, ``dot`` = 1 − dot product.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa

from .errors import InputError, NotFoundError
from .identity import ModelIdentity
from .keys import NO_ALIGNMENT, check_name
from .sql import eq, isin, rows_matching, within

METRICS = ("cosine", "l2", "dot")
ENGINES = ("numpy", "lance")
_MIN_CANDIDATES = 64
_BLAS = None  # threadpoolctl controller, created on first use


@dataclass
class _Matrix:
    """One cached (table version, dataset, alignment) slice of an embeddings table."""

    ids: list[str]
    position: dict[str, int]
    rowids: np.ndarray  # sorted LanceDB row ids
    order: np.ndarray  # position of each sorted row id in ``matrix``
    matrix: np.ndarray  # (n, d) float32, C-contiguous
    norms: np.ndarray  # (n,) float64 L2 norms

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.norms.nbytes + self.rowids.nbytes * 2)

    def positions_of(self, rowids: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.rowids, rowids)
        return self.order[idx]


class NeighborsMixin:
    """Search methods of :class:`~embedstore.store.Store`."""

    def neighbors(self, dataset: str, model: str | ModelIdentity, modality: str, *,
                  vector: Sequence[float] | np.ndarray | None = None, sample_id: str | None = None,
                  k: int = 10, metric: str = "cosine", where: str | None = None,
                  alignment_key: str = NO_ALIGNMENT, version: int | str | None = None,
                  use_index: bool = False, nprobes: int = 20, refine_factor: int | None = 10,
                  exclude_self: bool = True, engine: str = "numpy", dim: int | None = None) -> pa.Table:
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
        version : int or str, optional
            Table version or tag to search; latest when omitted.
        use_index : bool
            Use an ANN index if one exists (see :meth:`create_index`).
        engine : {"numpy", "lance"}
            Exact-search engine: the cached NumPy brute force (default) or
            LanceDB's flat scan. Ignored with ``use_index``.
        dim : int, optional
            Width of the table to search, when it differs from the model's
            (aligned vectors of an interpolated alignment).

        Returns
        -------
        pyarrow.Table
            ``sample_id`` and ``distance``, nearest first (ties by table order).

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
        >>> s.neighbors("d", m, "image", vector=[1, 0.1], k=2, engine="lance")["sample_id"].to_pylist()
        ['a', 'c']
        """
        if metric not in METRICS:
            raise InputError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        if engine not in ENGINES:
            raise InputError(f"unknown search engine {engine!r}: use one of {', '.join(ENGINES)}")
        if (vector is None) == (sample_id is None):
            raise InputError("neighbors: give exactly one of a vector (vector=) or a sample id (sample_id=)")
        if int(k) < 1:
            raise InputError(f"neighbors: k must be at least 1, got {k}")
        check_name(dataset)
        identity = self.models.identity(model, modality)
        computed = _on_read(self, identity, modality, alignment_key, dataset, version)
        if computed is not None and (use_index or engine != "numpy"):
            raise InputError(f"alignment '{alignment_key}' is computed when read, not stored: search it with the "
                             "exact engine (engine='numpy', no use_index=)")
        table = self._emb_table(identity, modality, None if computed is not None else dim)
        width = computed.dim if computed is not None else int(dim) if dim is not None else identity.dim(modality)
        if not self.has_table(table):
            raise NotFoundError(f"no {modality} embeddings for {identity.model_id} in store {self.uri}")
        stored = NO_ALIGNMENT if computed is not None else alignment_key
        base = [eq("dataset", dataset), eq("alignment_key", stored)]
        if not use_index and engine == "numpy":
            return self._exact_neighbors(table, width, base, dataset, modality, identity,
                                         vector, sample_id, int(k), metric, where, version, exclude_self, computed)
        filters = list(base)
        if sample_id is not None:
            row = self.read(table, version=version, columns=["vector"],
                            where=" AND ".join(filters + [eq("sample_id", sample_id)]))
            if row.num_rows == 0:
                raise self._no_query(dataset, sample_id, modality, identity)
            vector = row["vector"][0].as_py()
            if exclude_self:
                filters.append(f"NOT ({eq('sample_id', sample_id)})")
        query = _check_query(vector, width)
        tbl = self.open_table(table, version)
        if where:  # evaluated alone, then narrowed to the scope: it can never widen it
            filters.append(isin("sample_id", _ids_matching(tbl.to_lance(), base, where)))
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
        if res.num_rows == 0 and not where:
            raise self._no_query(dataset, None, modality, identity)
        return pa.table({"sample_id": res["sample_id"],
                         "distance": res["_distance"].cast(pa.float64())})

    def _no_query(self, dataset: str, sample_id: str | None, modality: str, identity: ModelIdentity) -> NotFoundError:
        """Why a search found nothing to start from: an unknown dataset, an unknown sample, or a missing vector."""
        from .errors import did_you_mean, missing_dataset
        from .schema import samples_table

        if not self.has_table(samples_table(dataset)):
            return missing_dataset(self, dataset)
        if sample_id is not None:
            ids = self.read(samples_table(dataset), columns=["sample_id"])["sample_id"].to_pylist()
            if sample_id not in set(ids):
                return NotFoundError(f"unknown sample '{sample_id}': dataset '{dataset}' has no such sample"
                                     f"{did_you_mean(sample_id, ids)}")
            what = f"sample '{sample_id}' of dataset '{dataset}' has no {modality} embedding"
        else:
            what = f"dataset '{dataset}' has no {modality} embeddings"
        return NotFoundError(f"{what} from {identity.model_id} (alignment and width as asked): run 'embedstore "
                             f"extract {dataset} --model {identity.model_id} --modality {modality}'")

    # -- exact brute force over a cached matrix -----------------------------
    def _exact_neighbors(self, table: str, dim: int, base: list[str], dataset: str, modality: str,
                         identity: ModelIdentity,
                         vector, sample_id: str | None, k: int, metric: str, where: str | None,
                         version: int | str | None, exclude_self: bool, computed=None) -> pa.Table:
        ds = self.open_table(table, version).to_lance()
        entry = self._cached_matrix(table, ds, base, computed)
        mask = None
        if where:  # evaluated alone, then narrowed to the cached scope: it can never widen it
            hit = within(entry.rowids, rows_matching(ds, where))
            mask = np.zeros(len(entry.ids), dtype=bool)
            mask[entry.positions_of(hit)] = True
        if not entry.ids:
            raise self._no_query(dataset, sample_id, modality, identity)
        if sample_id is not None:
            pos = entry.position.get(str(sample_id))
            if pos is None:
                raise self._no_query(dataset, sample_id, modality, identity)
            query = entry.matrix[pos]
            if exclude_self:
                mask = np.ones(len(entry.ids), dtype=bool) if mask is None else mask
                mask[pos] = False
        else:
            query = _check_query(vector, dim)
        top, dist = exact_search(entry.matrix, entry.norms, query, k, metric, mask)
        return pa.table({"sample_id": pa.array([entry.ids[i] for i in top], pa.string()),
                         "distance": pa.array(dist, pa.float64())})

    def _cached_matrix(self, table: str, ds, base: list[str], computed=None) -> _Matrix:
        cache = self.__dict__.setdefault("_neighbors_cache", OrderedDict())
        files = tuple(df.path for frag in ds.get_fragments() for df in frag.data_files())
        key = (table, int(ds.version), files, tuple(base),
               None if computed is None else computed.record.alignment_key)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        columns = ["sample_id", "vector"] + (["content_sha256"] if computed is not None else [])
        data = ds.to_table(columns=columns, with_row_id=True, filter=" AND ".join(base))
        from .data import vectors_of

        if computed is not None:  # the alignment's samples, each computed from its unaligned row
            _, pos = computed.keys(data.select(["sample_id", "content_sha256"]), np.arange(data.num_rows))
            pos = np.sort(pos[pos >= 0])
            data = data.take(pos)
            matrix = np.ascontiguousarray(computed.apply(vectors_of(data), pos))
        else:
            matrix = np.ascontiguousarray(vectors_of(data))
        rowids = data["_rowid"].to_numpy()
        order = np.argsort(rowids, kind="stable")
        ids = [str(s) for s in data["sample_id"].to_pylist()]
        entry = _Matrix(ids=ids, position={s: i for i, s in enumerate(ids)}, rowids=rowids[order],
                        order=order, matrix=matrix,
                        norms=np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64)))
        cache[key] = entry
        budget = float(os.environ.get("EMBEDSTORE_NEIGHBORS_CACHE_MB", "1024")) * 2**20
        while len(cache) > 1 and sum(e.nbytes for e in cache.values()) > budget:
            cache.popitem(last=False)
        return entry

    def clear_neighbors_cache(self) -> None:
        """Drop the matrices cached by exact :meth:`neighbors` searches."""
        self.__dict__.pop("_neighbors_cache", None)

    # -- ANN index ------------------------------------------------------------
    def create_index(self, model: str | ModelIdentity, modality: str, *, metric: str = "cosine",
                     kind: str = "ivf_flat", num_partitions: int | None = None) -> str:
        """Build an ANN index (``ivf_flat``, ``ivf_pq`` or ``ivf_hnsw_sq``) on a model's table; returns the table."""
        from lancedb.index import IvfFlat, IvfHnswSq, IvfPq

        identity = self.models.identity(model, modality)
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
        return table

    def index_recall(self, dataset: str, model: str | ModelIdentity, modality: str, *,
                     queries: np.ndarray, k: int = 10, metric: str = "cosine",
                     nprobes: int = 20, refine_factor: int | None = 10) -> float:
        """Mean recall@k of the ANN index against exact search over ``queries``."""
        hits = 0.0
        for q in np.asarray(queries, dtype=np.float32):
            exact = set(self.neighbors(dataset, model, modality, vector=q, k=k, metric=metric)["sample_id"].to_pylist())
            approx = set(self.neighbors(dataset, model, modality, vector=q, k=k, metric=metric, use_index=True,
                                        nprobes=nprobes, refine_factor=refine_factor)["sample_id"].to_pylist())
            hits += len(exact & approx) / max(1, len(exact))
        return hits / max(1, len(queries))


def _on_read(store, identity: ModelIdentity, modality: str, alignment_key: str, dataset: str,
             version: int | str | None):
    """The :class:`~embedstore.aligned_reads.OnRead` when ``alignment_key``'s rows are computed when read."""
    if alignment_key == NO_ALIGNMENT:
        return None
    from .schema import ALIGNMENTS
    from .snapshot import _on_read as of_snapshot

    # one registry read per registry version, not per query (gap diagnostics search once per row)
    registry = store.version(ALIGNMENTS) if store.has_table(ALIGNMENTS) else 0
    cache = store.__dict__.setdefault("_on_read_cache", {})
    key = (identity.key, modality, alignment_key, version, registry)
    if key not in cache:
        try:
            cache[key] = of_snapshot(store, identity, modality, alignment_key,
                                     {} if version is None else {modality: version})
        except NotFoundError:
            return None  # an unknown key (not cached: it may be fitted next): searched as stored rows, none
        if len(cache) > 64:
            cache.pop(next(iter(cache)))
    return cache[key]


def _ids_matching(ds, base: list[str], where: str) -> list[str]:
    """Sample ids inside the scope ``base`` that also satisfy the user filter ``where``."""
    scope = ds.to_table(columns=["sample_id"], with_row_id=True, filter=" AND ".join(base))
    keep = np.isin(scope["_rowid"].to_numpy(), rows_matching(ds, where))
    return [s for s, k in zip(scope["sample_id"].to_pylist(), keep) if k]


def _check_query(vector, dim: int) -> np.ndarray:
    query = np.asarray(vector, dtype=np.float32).reshape(-1)
    if query.shape[0] != dim:
        raise InputError(f"query vector has width {query.shape[0]}, table expects {dim}: pass a {dim}-d vector "
                         "from the same model (and alignment) as the table")
    if not np.all(np.isfinite(query)):
        raise InputError("query vector contains NaN or infinite values: pass a finite vector")
    return query


def _one_blas_thread():
    """Run a matrix-vector product on one BLAS thread.

    The product is memory-bound: a second thread gains little on an idle
    machine and, on a busy one, its synchronisation doubles the wall and CPU
    time (measured: 16k x 512, 7 ms vs 16 ms p50 at load 9 on 2 cores).
    """
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()  # scans the loaded libraries once
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _BLAS = False
    return _BLAS.limit(limits=1, user_api="blas") if _BLAS else contextlib.nullcontext()


def _exact_distances(rows: np.ndarray, norms: np.ndarray, q: np.ndarray, qn: float, metric: str) -> np.ndarray:
    """Float64 distances of ``rows`` (float32, with their float64 ``norms``) to ``q``."""
    dots = rows.astype(np.float64) @ q.astype(np.float64)
    if metric == "cosine":
        return 1.0 - dots / (norms * qn)
    if metric == "l2":
        diff = rows.astype(np.float64) - q.astype(np.float64)
        return np.einsum("ij,ij->i", diff, diff)
    return 1.0 - dots


def exact_search(matrix: np.ndarray, norms: np.ndarray, query: np.ndarray, k: int, metric: str,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` rows of ``matrix`` by LanceDB-style distance to ``query``.

    A float32 matrix product ranks all rows; the best ``max(4k, k+64)`` are
    rescored in float64 and sorted by (distance, row). The float32 error of
    the product is bounded by ``2·d·2⁻²⁴·|row|·|query|``; if that bound cannot
    prove that no other row is closer than the k-th, every row is rescored in
    float64. The result therefore equals a float64 brute force.

    Parameters
    ----------
    matrix : ndarray (n, d) float32
    norms : ndarray (n,) float64
        L2 norms of the rows.
    query : ndarray (d,) float32
    k : int
    metric : {"cosine", "l2", "dot"}
    mask : ndarray (n,) bool, optional
        Rows allowed in the result.

    Returns
    -------
    (indices, distances)
        Row indices and float64 distances, nearest first.

    Examples
    --------
    >>> m = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    >>> n = np.linalg.norm(m.astype(float), axis=1)
    >>> idx, d = exact_search(m, n, np.array([1, 0], np.float32), 2, "l2")
    >>> idx.tolist(), d.tolist()
    ([0, 2], [0.0, 1.0])
    """
    n, d = matrix.shape
    qn = float(np.linalg.norm(query.astype(np.float64)))
    allowed = np.ones(n, dtype=bool) if mask is None else mask.copy()
    if metric == "cosine":
        if qn == 0.0:
            raise InputError("cosine distance is undefined for a zero query vector: use metric 'l2' or 'dot'")
        allowed &= norms > 0
    idx = np.flatnonzero(allowed)
    if idx.size == 0:
        return idx, np.zeros(0)
    with _one_blas_thread():  # a gather copies rows: only worth it for a selective mask
        scores = matrix[idx] @ query if idx.size * 4 < n else (matrix @ query)[idx]
    err = 2.0 * d * 2.0**-24 * norms[idx] * qn  # bound on |float32 dot - exact dot|
    if metric == "cosine":
        approx, bound = 1.0 - scores / (norms[idx] * qn), err / (norms[idx] * qn)
    elif metric == "l2":
        approx, bound = norms[idx] ** 2 - 2.0 * scores + qn * qn, 2.0 * err + 1e-12 * (norms[idx] ** 2 + qn * qn)
    else:
        approx, bound = 1.0 - scores, err
    c = min(idx.size, max(4 * k, k + _MIN_CANDIDATES))
    if c < idx.size:
        local = np.argpartition(approx, c - 1)[:c]
    else:
        local = np.arange(idx.size)
    exact = _exact_distances(matrix[idx[local]], norms[idx[local]], query, qn, metric)
    take = np.lexsort((idx[local], exact))[:k]
    if c < idx.size:
        lower = approx - bound
        lower[local] = np.inf
        if not lower.min() > exact[take[-1]]:  # cannot prove it: rescore everything
            local = np.arange(idx.size)
            exact = _exact_distances(matrix[idx], norms[idx], query, qn, metric)
            take = np.lexsort((idx, exact))[:k]
    return idx[local[take]], exact[take]
