"""Fitted alignment transforms in the store: the ``transform_states`` table (or the user's cache).

Every alignment keeps its fitted transformer here, keyed by
``alignment_key``, as arrays (safetensors) + JSON
(:mod:`embedstore.transform_state`, never pickle): the mean shift's gap as
much as a rotation or a PCA. Its aligned rows are computed from it when
read (:mod:`embedstore.aligned_reads`), and a stored head applies it to new
rows. In a store this process cannot write, the state sits in the user's
cache (:class:`~embedstore.alignment_home.LocalAlignments`) and is read from
there. Rows of the older pickled ``transforms`` table are refused, never
unpickled.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .errors import InputError, NotFoundError
from .sql import eq
from .transform_state import FORMAT, dump_state, load_state

#: Table of fitted transformers: ``alignment_key`` → JSON meta + safetensors arrays.
TRANSFORM_STATES = "transform_states"
TRANSFORM_STATES_SCHEMA = pa.schema([pa.field("alignment_key", pa.string(), nullable=False),
                                     pa.field("method", pa.string()), pa.field("format", pa.string()),
                                     pa.field("meta", pa.string()), pa.field("arrays", pa.binary())])
#: The older table of pickled transformers: read only to refuse its rows.
LEGACY_TRANSFORMS = "transforms"


def save_state(store, key: str, shift: Any, *, local=None, tag: str | None = None) -> None:
    """Store the fitted transform of alignment ``key`` (arrays + JSON, :mod:`embedstore.transform_state`)."""
    method = getattr(shift, "method", "gapshift")
    meta, arrays = dump_state(shift)
    if local is not None:
        local.save_state(key, method, FORMAT, meta, arrays)
        return
    row = pa.table({"alignment_key": [key], "method": [method], "format": [FORMAT], "meta": [meta],
                    "arrays": [arrays]}, schema=TRANSFORM_STATES_SCHEMA)
    store.upsert(TRANSFORM_STATES, row, key="alignment_key", schema=TRANSFORM_STATES_SCHEMA, tag=tag)


def _state_row(store, alignment_key: str) -> dict[str, Any] | None:
    """The stored transform of ``alignment_key``: from the store, else from the user's cache."""
    if store.has_table(TRANSFORM_STATES):
        rows = store.read(TRANSFORM_STATES, where=eq("alignment_key", alignment_key)).to_pylist()
        if rows:
            return rows[0]
    from .alignment_home import LocalAlignments

    return LocalAlignments(store).state_row(alignment_key)


def has_state(store, alignment_key: str) -> bool:
    """Whether a fitted transform is stored for ``alignment_key`` (store or user cache)."""
    return _state_row(store, alignment_key) is not None


def load_transform(store, alignment_key: str):
    """The fitted transformer stored for ``alignment_key`` (ready to ``transform`` new rows).

    The state is read from arrays and JSON (:func:`~embedstore.transform_state.load_state`);
    a row of the older pickled format is refused with
    :class:`~embedstore.errors.InputError`, never unpickled. Raises
    :class:`~embedstore.errors.NotFoundError` for keys without one
    (mean-shift alignments keep their gap vector in the registry instead).
    """
    row = _state_row(store, alignment_key)
    if row is not None:
        return load_state(row["meta"], row["arrays"], where=f"alignment '{alignment_key}' in table "
                                                            f"{TRANSFORM_STATES}")
    if store.has_table(LEGACY_TRANSFORMS) and store.read(LEGACY_TRANSFORMS,
                                                         where=eq("alignment_key", alignment_key)).num_rows:
        raise InputError(f"alignment '{alignment_key}': its fitted transform is stored pickled in table "
                         f"{LEGACY_TRANSFORMS} (an older format, not loaded for safety): re-run 'embedstore align' "
                         "with the same settings to store it as arrays + JSON")
    raise NotFoundError(f"no fitted transform stored for alignment '{alignment_key}' in store {store.uri}: "
                        "mean-shift alignments made by earlier versions keep their gap in the registry only; "
                        "re-run 'embedstore align' with the same settings to store it")
