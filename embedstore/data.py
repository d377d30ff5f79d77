"""Samples and embeddings: keyed writes, version-pinned reads, the lab cache.

Mixed into :class:`embedstore.store.Store`. Reads return Arrow by default,
or polars / NumPy with ``as_=``. An embedding is *stale* when its
``content_sha256`` differs from its sample's current content hash (the image
bytes changed, or the text was re-rendered with another prompt); stale rows
count as missing and are recomputed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .errors import DimensionMismatchError, InputError, NotFoundError, missing_dataset
from .formats import Format, convert
from .identity import MODALITIES, ModelIdentity
from .keys import NO_ALIGNMENT, check_name, row_key
from .schema import (EMB_KEY, SAMPLE_CORE, SAMPLES_PREFIX, embeddings_schema,
                     embeddings_table, parse_embeddings_table, samples_table)
from .sql import eq, isin
from .vectors import HASH_COLUMN, vectors_of  # noqa: F401 (their home; re-exported)



def _check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}: use one of {', '.join(MODALITIES)}")
    return modality


class DataMixin:
    """Sample and embedding methods of :class:`~embedstore.store.Store`."""

    # -- samples ----------------------------------------------------------
    def datasets(self) -> list[str]:
        """Names of the datasets that have a samples table."""
        return [t[len(SAMPLES_PREFIX):] for t in self.list_tables() if t.startswith(SAMPLES_PREFIX)]

    def require_dataset(self, dataset: str) -> None:
        """Raise the one "unknown dataset" error (with the closest names) when ``dataset`` has no samples table."""
        if not self.has_table(samples_table(dataset)):
            raise missing_dataset(self, dataset)

    def write_samples(self, dataset: str, rows: pa.Table, *, tag: str | None = None, prune: bool = False):
        """Upsert sample rows of ``dataset`` keyed by ``sample_id``.

        Identical rows are skipped, so re-ingesting unchanged data creates no
        new version. ``rows`` must have the core columns of
        :data:`embedstore.schema.SAMPLE_CORE` and at least one ``split_*``.
        With ``prune`` the stored rows absent from ``rows`` are deleted in
        the same commit. Every write checks that no ``group_id`` ends up in
        two ``split_grouped`` values (:func:`embedstore.reingest.check_group_splits`).

        Returns
        -------
        WriteResult
        """
        check_name(dataset)
        missing = [c for c in SAMPLE_CORE if c not in rows.column_names]
        if missing:
            raise InputError(f"samples for '{dataset}' lack columns {missing}; found {rows.column_names}")
        if not any(c.startswith("split_") for c in rows.column_names):
            raise InputError(f"samples for '{dataset}' need at least one split_<name> column")
        if "group_id" in rows.column_names and "split_grouped" in rows.column_names:
            from .reingest import after_write, check_group_splits

            table = samples_table(dataset)
            stored = (self.read(table, columns=["sample_id", "group_id", "split_grouped"])
                      if self.has_table(table) and {"group_id", "split_grouped"} <= set(
                          self.open_table(table).schema.names) else None)
            check_group_splits(dataset, after_write(stored, rows, prune=prune))
        return self.upsert(samples_table(dataset), rows, key="sample_id", tag=tag, skip_unchanged=True,
                           prune=prune)

    def split_column(self, dataset: str, split_by: str | None = None) -> str:
        """The ``split_<name>`` column to use: ``split_by`` or the default.

        The default is ``grouped`` when present, else ``paper``, else the
        only split column.
        """
        cols = [c for c in self.open_table(samples_table(dataset)).schema.names if c.startswith("split_")]
        if split_by is not None:
            col = split_by if split_by.startswith("split_") else f"split_{split_by}"
            if col not in cols:
                raise NotFoundError(f"dataset '{dataset}' has no split '{split_by}'; it has {[c[6:] for c in cols]}")
            return col
        for pref in ("split_grouped", "split_paper"):
            if pref in cols:
                return pref
        return cols[0]

    def samples(self, dataset: str, *, split: str | Sequence[str] | None = None,
                split_by: str | None = None, version: int | str | None = None,
                columns: Sequence[str] | None = None, as_: Format = "arrow") -> Any:
        """Sample rows of ``dataset``, optionally one split, as of a version.

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
        >>> _ = s.write_samples("toy", rows)
        >>> s.samples("toy", split="test")["sample_id"].to_pylist()
        ['b']
        """
        table = samples_table(dataset)
        if not self.has_table(table):
            raise missing_dataset(self, dataset)
        where = None
        if split is not None:
            col = self.split_column(dataset, split_by)
            values = [split] if isinstance(split, str) else list(split)
            where = isin(col, values)
        data = self.read(table, version=version, columns=columns, where=where)
        return convert(data, as_)

    # -- embeddings -------------------------------------------------------
    def embedding_tables(self, model: str | None = None, modality: str | None = None) -> list[str]:
        """Embedding tables, optionally of one model key and/or modality."""
        out = []
        for name in self.list_tables():
            parsed = parse_embeddings_table(name)
            if parsed and (modality is None or parsed[0] == modality) and (model is None or parsed[1] == model):
                out.append(name)
        return out

    def _emb_table(self, identity: ModelIdentity, modality: str, dim: int | None = None) -> str:
        return embeddings_table(identity.key, modality, dim or identity.dim(modality))

    def write_embeddings(self, dataset: str, model: ModelIdentity | str, modality: str,
                         sample_ids: Sequence[str], vectors: np.ndarray,
                         content_hashes: Sequence[str], *, alignment_key: str = NO_ALIGNMENT,
                         dim: int | None = None, tag: str | None = None):
        """Upsert embedding vectors keyed by (dataset, sample_id, modality, model, alignment).

        Parameters
        ----------
        dataset, modality : str
        model : ModelIdentity or str
            The identity (registered if needed) or a registered key/id.
        sample_ids : sequence of str
        vectors : ndarray, shape (n, d)
        content_hashes : sequence of str
            Hash of each input (the sample's ``image_sha256``/``text_sha256``).
        alignment_key : str
            ``"none"`` for unaligned vectors.
        dim : int, optional
            Expected width for aligned vectors whose width differs from the model's.

        Raises
        ------
        DimensionMismatchError
            When ``vectors.shape[1]`` differs from the expected width.
        """
        _check_modality(modality)
        identity = self.models.identity(model, modality)
        if isinstance(model, ModelIdentity):
            self.models.register(identity, tag=tag)
        vectors = np.asarray(vectors, dtype=np.float32)
        expected = int(dim) if dim is not None else identity.dim(modality)
        if vectors.ndim != 2 or vectors.shape[1] != expected:
            got = vectors.shape[1] if vectors.ndim == 2 else f"shape {vectors.shape}"
            raise DimensionMismatchError(
                f"model {identity.model_id} ({identity.key}) {modality} vectors must have width "
                f"{expected}, got {got}: check the model or the table you write to")
        if not (len(sample_ids) == len(content_hashes) == vectors.shape[0]):
            raise InputError("write_embeddings: sample_ids, content_hashes and vectors differ in length")
        n = len(sample_ids)
        table = self._emb_table(identity, modality, expected)
        schema = embeddings_schema(expected)
        data = pa.table({
            EMB_KEY: [row_key(dataset, s, alignment_key) for s in sample_ids],
            "dataset": [dataset] * n, "sample_id": list(map(str, sample_ids)),
            "modality": [modality] * n, "model_key": [identity.key] * n,
            "alignment_key": [alignment_key] * n, "content_sha256": list(content_hashes),
            "run_tag": [tag] * n,
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), expected),
        }, schema=schema)
        return self.upsert(table, data, key=EMB_KEY, tag=tag, schema=schema)

    def embeddings(self, dataset: str, model: str | ModelIdentity, modality: str, *,
                   alignment_key: str = NO_ALIGNMENT, split: str | Sequence[str] | None = None,
                   split_by: str | None = None, version: int | str | None = None,
                   samples_version: int | str | None = None, dim: int | None = None,
                   as_: Format = "arrow") -> Any:
        """Current embeddings of ``dataset`` for one model and modality, sorted by ``sample_id``.

        Read through :class:`~embedstore.snapshot.Snapshot`: a vector whose
        content hash differs from its sample's current hash (stale), or that
        has no sample, is left out. Returns Arrow/polars with ``sample_id``,
        ``content_sha256`` and ``vector``, or with ``as_="numpy"`` a tuple
        ``(sample_ids, matrix)``. ``split`` filters through the samples
        table; ``version``/``samples_version`` pin the two tables.
        """
        from .snapshot import Snapshot

        _check_modality(modality)
        snap = Snapshot(self, dataset, split_by=split_by, versions={modality: version, "samples": samples_version},
                        **{f"{modality}_model": model, f"{modality}_alignment_key": alignment_key,
                           f"{modality}_dim": dim})
        rows, vectors, _ = snap.current(split=split)
        mat = vectors[modality]
        if as_ == "numpy":
            return rows["sample_id"].to_pylist(), mat
        data = pa.table({"sample_id": rows["sample_id"], "content_sha256": rows[HASH_COLUMN[modality]],
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), mat.shape[1])})
        return convert(data, as_)

    def export(self, dataset: str, model: str | ModelIdentity, modality: str, out: str, **kwargs: Any) -> int:
        """Export embeddings with labels/splits to Parquet or CSV; see :func:`export_embeddings`."""
        return export_embeddings(self, dataset, model, modality, out, **kwargs)

    # -- the lab cache ----------------------------------------------------
    def missing(self, dataset: str, model: ModelIdentity | str, modality: str, *,
                reuse: bool = True, limit: int | None = None) -> pa.Table:
        """Samples of ``dataset`` that still need a forward pass.

        A sample is missing when it has no current (non-stale) embedding for
        this model and modality and, with ``reuse``, when no row of the same
        table (any dataset) has its content hash: those are copied by
        :meth:`reuse_by_hash` instead of recomputed.

        Returns
        -------
        pyarrow.Table
            The sample rows (all columns), in sample order.
        """
        _check_modality(modality)
        identity = self.models.identity(model, modality)
        import polars as pl

        hash_col = HASH_COLUMN[modality]
        samples = pl.from_arrow(self.samples(dataset))
        samples = samples.filter(pl.col(hash_col).is_not_null())
        table = self._emb_table(identity, modality)
        if self.has_table(table):
            have = pl.from_arrow(self.read(table, columns=["dataset", "sample_id", "content_sha256"],
                                           where=eq("alignment_key", NO_ALIGNMENT)))
            mine = have.filter(pl.col("dataset") == dataset).select(
                pl.col("sample_id"), pl.col("content_sha256").alias(hash_col))
            samples = samples.join(mine, on=["sample_id", hash_col], how="anti")
            if reuse:
                hashes = have.select(pl.col("content_sha256").alias(hash_col)).unique()
                samples = samples.join(hashes, on=hash_col, how="anti")
        if limit is not None:
            samples = samples.head(limit)
        return samples.to_arrow()

    def reuse_by_hash(self, dataset: str, model: ModelIdentity | str, modality: str, *,
                      tag: str | None = None):
        """Copy vectors with identical content hash into ``dataset``'s missing rows.

        Returns
        -------
        WriteResult or None
            ``None`` when nothing could be reused.
        """
        identity = self.models.identity(model, modality)
        table = self._emb_table(identity, modality)
        if not self.has_table(table):
            return None
        import polars as pl

        hash_col = HASH_COLUMN[modality]
        need = pl.from_arrow(self.missing(dataset, identity, modality, reuse=False)).select("sample_id", hash_col)
        if need.height == 0:
            return None
        src = pl.from_arrow(self.read(table, columns=["content_sha256", "vector"],
                                      where=eq("alignment_key", NO_ALIGNMENT)))
        src = src.unique(subset="content_sha256", keep="first").rename({"content_sha256": hash_col})
        hit = need.join(src, on=hash_col, how="inner")
        if hit.height == 0:
            return None
        arrow = hit.to_arrow()
        return self.write_embeddings(dataset, identity, modality, arrow["sample_id"].to_pylist(),
                                     vectors_of(arrow), arrow[hash_col].to_pylist(), tag=tag)


def export_embeddings(store, dataset: str, model: str | ModelIdentity, modality: str, out: str, *,
                      alignment_key: str = NO_ALIGNMENT, version: int | str | None = None) -> int:
    """Write a dataset's current embeddings joined with labels and splits to ``.parquet`` or ``.csv``.

    Stale vectors (the sample's content changed since extraction) are left
    out, as everywhere (:class:`~embedstore.snapshot.Snapshot`). CSV gets one
    column per dimension (``<modality>_0``...); Parquet keeps a list column.
    Missing parent folders of ``out`` are created. Returns the number of
    rows written.
    """
    import polars as pl

    from .files import output_file
    from .snapshot import Snapshot

    out = output_file(out, (".parquet", ".csv"), "export target")
    snap = Snapshot(store, dataset, versions={modality: version},
                    **{f"{modality}_model": model, f"{modality}_alignment_key": alignment_key})
    names = snap._ds[snap.samples_table].schema.names
    keep = ["label"] + [c for c in names if c.startswith(("split_", "label_"))]
    rows, vectors, _ = snap.current(keep)
    mat = vectors[modality]
    frame = pl.from_arrow(rows.select(["sample_id", *keep])).with_columns(
        pl.Series("vector", mat, dtype=pl.Array(pl.Float32, mat.shape[1])))
    if str(out).endswith(".csv"):
        frame = frame.with_columns(pl.col("vector").arr.to_struct(
            fields=[f"{modality}_{i}" for i in range(mat.shape[1])])).unnest("vector")
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    return frame.height
