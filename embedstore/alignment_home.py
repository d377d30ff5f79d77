"""Where a fitted alignment lives: in the store, or in a user-local cache when the store is read-only.

An alignment is small (:mod:`embedstore.aligned_reads`): its registry row
(settings and gap), its fitted transform (arrays + JSON,
:mod:`embedstore.transform_state`) and the list of samples it covers.
Lab members who may only read the shared store still run ``gap``,
``report``, ``sweep --no-record`` and ``train --no-record`` on alignments:
:func:`fit_and_store <embedstore.alignment_store.fit_and_store>` then keeps
those three parts in :class:`LocalAlignments`, a folder of the user's own
cache (``$EMBEDSTORE_ALIGNMENT_CACHE``, else
``$XDG_CACHE_HOME/embedstore/alignments/<store digest>``), and every reader
(the registry, :class:`~embedstore.snapshot.Snapshot`, ``load_transform``)
looks there after the store. Nothing in it is needed by anyone else: it is
recomputed from the store when deleted.

Examples
--------
>>> import tempfile, os
>>> from embedstore import Store
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> os.environ["EMBEDSTORE_ALIGNMENT_CACHE"] = tempfile.mkdtemp()
>>> home = LocalAlignments(s)
>>> home.register("gs-1", "gapshift", {"lam": 1.0}, [0.5, 0.25])
>>> [(r["alignment_key"], r["gap"].tolist()) for r in home.records()]
[('gs-1', [0.5, 0.25])]
>>> del os.environ["EMBEDSTORE_ALIGNMENT_CACHE"]
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .keys import check_name


def store_writable(store) -> bool:
    """Whether this process may write ``store`` (a local directory it can write; remote unless told read-only).

    ``EMBEDSTORE_READ_ONLY=1`` marks any store read-only (e.g. an ``s3://``
    store opened with read-only credentials, which cannot be probed).
    """
    if os.environ.get("EMBEDSTORE_READ_ONLY", "").strip() not in ("", "0"):
        return False
    if not store.is_local:
        return True
    return os.access(store.uri, os.W_OK)


def cache_root(store) -> Path:
    """The user-local folder of ``store``'s alignments."""
    env = os.environ.get("EMBEDSTORE_ALIGNMENT_CACHE")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(xdg) / "embedstore" / "alignments"
    uri = os.path.abspath(store.uri) if store.is_local else store.uri
    return base / hashlib.sha256(uri.encode()).hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalAlignments:
    """The alignments one user computed for a store they cannot write (see the module docstring)."""

    def __init__(self, store) -> None:
        self.store = store
        self.root = cache_root(store)

    def _path(self, name: str, suffix: str) -> Path:
        return self.root / f"{check_name(name, 'alignment key')}{suffix}"

    # -- registry rows ----------------------------------------------------
    def register(self, alignment_key: str, method: str, settings: dict[str, Any],
                 gap: Sequence[float] | np.ndarray) -> None:
        """Keep an alignment's registry row (settings JSON and gap)."""
        row = {"alignment_key": alignment_key, "method": method, "settings": settings,
               "gap": np.asarray(gap, dtype=np.float32).tolist()}
        _write_atomic(self._path(alignment_key, ".json"), json.dumps(row, sort_keys=True, default=str).encode())

    def records(self) -> list[dict[str, Any]]:
        """Every alignment kept here: ``{"alignment_key", "method", "settings", "gap"}`` (gap as float32)."""
        out = []
        if not self.root.is_dir():
            return out
        for path in sorted(self.root.glob("*.json")):
            try:
                row = json.loads(path.read_text())
                out.append({"alignment_key": row["alignment_key"], "method": row["method"],
                            "settings": dict(row["settings"]), "gap": np.asarray(row["gap"], dtype=np.float32)})
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a damaged cache entry is recomputed, never trusted
        return out

    # -- fitted transforms ------------------------------------------------
    def save_state(self, alignment_key: str, method: str, fmt: str, meta: str, arrays: bytes) -> None:
        """Keep the fitted transform of ``alignment_key``."""
        head = json.dumps({"method": method, "format": fmt, "meta": meta}).encode()
        _write_atomic(self._path(alignment_key, ".state"), len(head).to_bytes(8, "little") + head + arrays)

    def state_row(self, alignment_key: str) -> dict[str, Any] | None:
        """``{"method", "format", "meta", "arrays"}`` of ``alignment_key``, or ``None``."""
        try:
            data = self._path(alignment_key, ".state").read_bytes()
            n = int.from_bytes(data[:8], "little")
            head = json.loads(data[8:8 + n])
        except (OSError, ValueError):
            return None
        return {"alignment_key": alignment_key, **head, "arrays": data[8 + n:]}

    # -- members ----------------------------------------------------------
    def save_members(self, members_id: str, rows: pa.Table) -> None:
        """Keep the member list ``members_id`` (see :mod:`embedstore.aligned_reads`)."""
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(rows, sink)
        _write_atomic(self._path(members_id, ".members.parquet"), sink.getvalue().to_pybytes())

    def members(self, members_id: str) -> pa.Table | None:
        """The member list ``members_id``, or ``None``."""
        import pyarrow.parquet as pq

        path = self._path(members_id, ".members.parquet")
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            return None
