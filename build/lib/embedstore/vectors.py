"""Embedding vectors in Arrow: the column names of content hashes and the (n, d) view of a vector column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: Samples-table column holding each modality's content hash (the cache key of a vector).
HASH_COLUMN = {"image": "image_sha256", "text": "text_sha256"}


def vectors_of(table: pa.Table, column: str = "vector") -> np.ndarray:
    """The fixed-size-list column ``column`` as an (n, d) float32 matrix (zero-copy when possible).

    Examples
    --------
    >>> t = pa.table({"vector": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32(), 2))})
    >>> vectors_of(t).shape
    (2, 2)
    """
    col = table.column(column).combine_chunks()
    if len(col) == 0:
        width = col.type.list_size if hasattr(col.type, "list_size") else 0
        return np.zeros((0, width), dtype=np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(col), -1).astype(np.float32, copy=False)
