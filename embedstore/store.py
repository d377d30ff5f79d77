"""The store: one LanceDB database at a URI, and the single write path.

Open one with :func:`open_store` (or :class:`Store`). The URI is, in order:
the ``uri`` argument (``--store`` on the CLI), ``$EMBEDSTORE_URI``, or the
embedded default, a local directory (:func:`default_uri`). Any URI LanceDB
accepts passes through (``s3://``, ``gs://``, ``az://`` with
``storage_options``).

Concurrency design
------------------
Every write goes through :meth:`Store.upsert`: a keyed ``merge_insert`` into a
table whose key column is declared as Lance's unenforced primary key
(:func:`embedstore.schema.keyed_schema`). Each batch is first deduplicated on
the key (the last row of a key wins). No external lock is taken: Lance
records the keys a commit inserts and turns a concurrent insert of the same
key into a retried update, so any number of writers, on one machine or on
many sharing an ``s3://``/``gs://``/``az://`` store (commits use conditional
PUT), leave exactly one row per key. Conflicts Lance does not resolve itself
are retried here with bounded exponential backoff; :class:`WriteResult`
reports the attempts. Every commit is atomic: readers only ever see committed
versions, and a writer killed mid-write leaves the table at its last
committed version. Each write returns its new version; a run tags the
versions it wrote so it can be read back exactly. The connection uses
``read_consistency_interval=0``, so handles always see other writers' commits.
A table made before keys were declared is upgraded in place by its first
write (or by ``embedstore upgrade``, :mod:`embedstore.upgrade`).

Table layout: see :mod:`embedstore.schema`. Registries: :mod:`embedstore.model_registry`.
Sample/embedding reads and writes: :mod:`embedstore.data`. Search:
:mod:`embedstore.neighbors`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa

from .data import DataMixin
from .errors import InputError, NotFoundError
from .locks import maintenance_lock_dir, table_lock
from .model_registry import AlignmentRegistry, ModelRegistry
from .neighbors import NeighborsMixin
from .retries import with_retries
from .schema import check_table_name, keyed_schema
from .store_compat import StoreCompat
from .writes import WriteResult, drop_identical, last_row_per_key  # noqa: F401 (WriteResult: public here too)
from .uris import _REMOTE_SCHEMES, check_local_path, committed_locally, default_uri, resolve_uri  # noqa: F401 (default_uri, resolve_uri: public here too)
from .versions import Tags, new_run_tag, read_retrying, set_tag  # noqa: F401 (new_run_tag: public here too)


class Store(StoreCompat, DataMixin, NeighborsMixin):
    """A LanceDB-backed embedding store.

    Parameters
    ----------
    uri : str or path, optional
        Database URI; see :func:`resolve_uri`.
    storage_options : dict, optional
        Passed through to LanceDB (object-store credentials, endpoints...).
        For object-store URIs they are added to the ``EMBEDSTORE_STORAGE_<KEY>``
        environment variables (:func:`embedstore.objstore.env_storage_options`);
        a key given here wins.
    create : bool
        Create a missing local directory (its parent must exist, except for
        the embedded default, whose parents are created too).

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> store = Store(tempfile.mkdtemp() + "/store")
    >>> r = store.upsert("t", pa.table({"k": ["a", "b"], "x": [1, 2]}), key="k")
    >>> (r.version, r.inserted, store.read("t").num_rows)
    (1, 2, 2)

    Registries are managers on the store (``store.models``,
    ``store.alignments``, ``store.runs``, ``store.tags(table)``) and a
    dataset is a handle (``store.dataset(name)``); the older methods
    (``register_model``, ``model``, ``tag``...) delegate to them
    (:mod:`embedstore.store_compat`).
    """

    def __init__(self, uri: str | os.PathLike | None = None, *,
                 storage_options: dict[str, str] | None = None, create: bool = True) -> None:
        self.uri = resolve_uri(uri)
        self.is_local = not self.uri.startswith(_REMOTE_SCHEMES) and "://" not in self.uri
        self.storage_options = dict(storage_options or {})
        if not self.is_local:
            from .objstore import env_storage_options

            self.storage_options = env_storage_options() | self.storage_options
        if self.is_local:
            if create and self.uri == default_uri():  # a fresh machine has no ~/.local/share/embedstore yet
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            check_local_path(Path(self.uri), create)
        self._db = None
        self.models = ModelRegistry(self)
        self.alignments = AlignmentRegistry(self)

    # -- connection -------------------------------------------------------
    @property
    def db(self):
        """The underlying ``lancedb`` connection (opened lazily)."""
        if self._db is None:
            import lancedb

            os.environ.setdefault("LANCEDB_LOG", "error")
            try:
                self._db = lancedb.connect(self.uri, storage_options=self.storage_options or None,
                                           read_consistency_interval=timedelta(0))
            except Exception as exc:  # object stores: turn the Rust error dump into one line
                if self.is_local:
                    raise
                from .objstore import connect_error

                raise connect_error(self.uri, exc) from exc
        return self._db

    @property
    def lock_dir(self) -> Path:
        """Directory of the maintenance locks (``compact``/``cleanup``/index builds, :mod:`embedstore.locks`)."""
        return maintenance_lock_dir(self.uri, self.is_local)

    def _check_writable(self) -> None:
        if self.is_local and not os.access(self.uri, os.W_OK):
            raise InputError(f"store path {self.uri} is read-only: fix its permissions or pass a writable uri=")

    # -- handles and managers ---------------------------------------------
    @property
    def runs(self):
        """The recorded runs, :class:`~embedstore.runs.RunRegistry` (list, get, record)."""
        from .runs import RunRegistry

        return RunRegistry(self)

    def tags(self, name: str) -> Tags:
        """Tags of table ``name``: a ``{tag: version}`` dict with ``create``/``list``/``delete``."""
        return Tags(self, name)

    def dataset(self, name: str):
        """The handle of dataset ``name``, :class:`~embedstore.dataset.Dataset` (samples, embeddings...)."""
        from .dataset import Dataset

        return Dataset(self, name)

    # -- tables -----------------------------------------------------------
    def list_tables(self) -> list[str]:
        """Names of all tables, sorted.

        Examples
        --------
        >>> import tempfile
        >>> Store(tempfile.mkdtemp() + "/s").list_tables()
        []
        """
        names: list[str] = []
        token = None
        while True:
            resp = self.db.list_tables(page_token=token) if token else self.db.list_tables()
            names.extend(resp.tables)
            token = getattr(resp, "page_token", None)
            if not token:
                if self.is_local:
                    return sorted(n for n in names if committed_locally(Path(self.uri) / f"{n}.lance"))
                return sorted(n for n in names if self.has_table(n))

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` has a committed version.

        A table another writer is creating right now (its data files written,
        its first version not yet committed), or whose creation was killed,
        does not exist yet.
        """
        try:
            self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            return False
        return True

    def open_table(self, name: str, version: int | str | None = None):
        """Open table ``name`` as of ``version`` (int or tag), default latest."""
        check_table_name(name)
        try:
            tbl = self.db.open_table(name)
        except (ValueError, FileNotFoundError) as exc:
            raise self._missing_table(name) from exc
        if version is not None:
            try:
                read_retrying(lambda: tbl.checkout(_as_version(version)))
            except Exception as exc:  # lance raises several types here
                raise NotFoundError(
                    f"table '{name}' has no version or tag {version!r}: see 'embedstore versions {name}'"
                ) from exc
        return tbl

    def _missing_table(self, name: str) -> NotFoundError:
        """The error for a table that does not exist: a samples table is a dataset; others get the closest names."""
        from .errors import did_you_mean, missing_dataset
        from .schema import SAMPLES_PREFIX

        if name.startswith(SAMPLES_PREFIX):
            return missing_dataset(self, name[len(SAMPLES_PREFIX):])
        return NotFoundError(f"unknown table '{name}': table '{name}' does not exist in store {self.uri}"
                             f"{did_you_mean(name, self.list_tables())}; see 'embedstore info'")

    def version(self, name: str) -> int:
        """Latest version of table ``name``."""
        return int(self.open_table(name).version)

    def read(self, name: str, *, version: int | str | None = None,
             columns: Sequence[str] | None = None, where: str | None = None) -> pa.Table:
        """Read table ``name`` (optionally as of a version or tag) as Arrow.

        Parameters
        ----------
        name : str
        version : int or str, optional
            Version number or tag; latest when omitted.
        columns : list of str, optional
        where : str, optional
            SQL filter, e.g. ``"split_paper = 'train'"``.
        """
        from .errors import check_columns

        ds = self.open_table(name, version).to_lance()
        check_columns(name, columns, ds.schema.names)  # named here, not as Lance's projection error
        return ds.to_table(columns=list(columns) if columns else None, filter=where)

    def info(self) -> dict[str, Any]:
        """Summary of the store: tables, their size on disk and what pins their old versions; models, datasets.

        Each table has ``rows``, ``version`` (latest), ``tags``, ``bytes``
        (every file of every version), ``old_bytes`` (files only old versions
        read: what ``cleanup`` can free unless pinned), ``fragments`` (of the
        latest version), ``versions`` and ``pinned_by`` (``{version: [user
        tag, runs, lease...]}``, :mod:`embedstore.pins`).

        Examples
        --------
        >>> import tempfile
        >>> Store(tempfile.mkdtemp() + "/s").info()["tables"]
        []
        """
        from .pins import table_space, version_pins

        pins = version_pins(self)
        tables = []
        for name in self.list_tables():
            tbl = self.open_table(name)
            space = table_space(self, name, pins.get(name, {}))
            tables.append({"table": name, "rows": space.rows, "version": space.latest,
                           "tags": len(read_retrying(tbl.tags.list)), "bytes": space.bytes,
                           "old_bytes": space.old_only_bytes, "fragments": space.fragments,
                           "versions": space.versions, "pinned_by": space.pins})
        models = [{"model_key": m.key, "model_id": m.model_id, "modalities": ",".join(m.modalities),
                   "dims": m.dims, "dtype": m.dtype, "pooling": m.pooling} for m in self.models.list()]
        return {"uri": self.uri, "datasets": self.datasets(), "tables": tables, "models": models,
                "bytes": sum(t["bytes"] for t in tables)}

    # -- the single write path -------------------------------------------
    def upsert(self, name: str, data: pa.Table, key: str, *, tag: str | None = None,
               skip_unchanged: bool = False, schema: pa.Schema | None = None,
               prune: bool = False) -> WriteResult:
        """Keyed upsert of ``data`` into table ``name``; the only write path.

        Rows whose ``key`` exists are overwritten, others inserted; when the
        batch holds a key twice, its last row wins. With ``skip_unchanged``,
        rows identical to the stored ones are not written, and a write with
        nothing new creates no version. Safe to run from many processes and
        machines at once (see the module docstring).

        Parameters
        ----------
        name : str
        data : pyarrow.Table
        key : str
            Column holding the unique key (declared as the table's primary key).
        tag : str, optional
            Tag (created or moved) on the resulting version.
        skip_unchanged : bool
        schema : pyarrow.Schema, optional
            Schema of the table when it must be created.
        prune : bool
            Also delete the stored rows whose key is absent from ``data``, in
            the same commit (the table then holds exactly ``data``; when the
            columns differ, that commit overwrites the table).

        Returns
        -------
        WriteResult

        Examples
        --------
        >>> import tempfile, pyarrow as pa
        >>> s = Store(tempfile.mkdtemp() + "/s")
        >>> t = pa.table({"k": ["a"], "x": [1]})
        >>> _ = s.upsert("t", t, key="k")
        >>> r = s.upsert("t", pa.table({"k": ["a", "a"], "x": [2, 3]}), key="k")
        >>> (r.version, r.updated, r.deduplicated, s.read("t").to_pylist())
        (2, 1, 1, [{'k': 'a', 'x': 3}])
        """
        if key not in data.column_names:
            raise InputError(f"write to '{name}': key column '{key}' missing from data columns {data.column_names}")
        if data.column(key).null_count:
            raise InputError(f"write to '{name}': {data.column(key).null_count} row(s) with an empty key "
                             f"'{key}'; give every row a {key}")
        self._check_writable()
        if schema is not None:
            data = data.select(schema.names).cast(schema)
        before = data.num_rows
        data = last_row_per_key(data, key)
        deduplicated = before - data.num_rows
        state = {"attempts": 0, "unchanged": 0, "deleted": 0}

        def attempt() -> tuple[int, int, int]:
            return self._write_once(name, data, key, schema, skip_unchanged, prune, state)

        (version, inserted, updated), _ = with_retries(attempt)
        attempts, deleted = state["attempts"], state["deleted"]
        if inserted + updated + deleted == 0:
            # Nothing new: no version, and no tag (the version was tagged when written).
            return WriteResult(name, version, unchanged=state["unchanged"], deduplicated=deduplicated)
        if tag:
            with_retries(lambda: set_tag(self.db.open_table(name).tags, tag, version))
        return WriteResult(name, version, inserted, updated, state["unchanged"], max(0, attempts - 1),
                           attempts, deduplicated, tag, deleted)

    def _write_once(self, name: str, data: pa.Table, key: str, schema: pa.Schema | None,
                    skip_unchanged: bool, prune: bool, state: dict[str, int]) -> tuple[int, int, int]:
        """One attempt of :meth:`upsert`: create the table, or merge into it; ``(version, inserted, updated)``.

        With ``prune``, stored rows whose key is absent from ``data`` are
        deleted in the same commit (``when_not_matched_by_source_delete``);
        when the columns changed too, the table is overwritten in one commit
        with its key still declared (older versions stay readable).
        """
        import pyarrow.compute as pc

        from .upgrade import declare_key

        if not self.has_table(name):
            state["attempts"] += 1
            created = self._create_keyed(name, data, key, schema)
            if created is not None:
                return created
        tbl = self.db.open_table(name)
        declare_key(tbl, key)
        doomed = 0
        if prune:
            stored = tbl.to_lance().to_table(columns=[key])[key]
            doomed = int(pc.sum(pc.invert(pc.is_in(stored, value_set=data.column(key)))).as_py() or 0)
        state["deleted"] = doomed
        unchanged = 0
        if skip_unchanged and data.num_rows:
            fresh = drop_identical(tbl.to_lance().to_table(), data, key)
            unchanged = data.num_rows - fresh.num_rows
            if not doomed:  # a pruning commit must carry every kept key
                data = fresh
        state["unchanged"] = unchanged
        if data.num_rows == 0 and not doomed:
            return int(tbl.version), 0, 0
        if prune and set(tbl.schema.names) != set(data.column_names):
            target = keyed_schema(schema or data.schema, key)
            state["attempts"] += 1
            tbl = self.db.create_table(name, data.cast(target), schema=target, mode="overwrite")
            return int(tbl.version), data.num_rows, 0
        data = data.cast(data.schema.set(data.schema.get_field_index(key), tbl.schema.field(key)))
        builder = tbl.merge_insert(key).when_matched_update_all().when_not_matched_insert_all()
        if doomed:
            builder = builder.when_not_matched_by_source_delete()
        state["attempts"] += 1  # counted before, so an attempt that raises a conflict counts too
        res = builder.execute(data)
        state["attempts"] += max(0, int(getattr(res, "num_attempts", 1) or 1) - 1)  # Lance's own retries
        updated = max(0, int(res.num_updated_rows) - (unchanged if doomed else 0))
        return int(res.version), int(res.num_inserted_rows), updated

    def _create_keyed(self, name: str, data: pa.Table, key: str,
                      schema: pa.Schema | None) -> tuple[int, int, int] | None:
        """Create ``name`` with its key declared; ``None`` when another writer created it first."""
        target = keyed_schema(schema or data.schema, key)
        if not self.is_local:
            # Object stores: two creations racing can both "win" version 1 (measured: 4 writers on moto lost
            # one creator's first chunk). An empty version 1 loses nothing when overwritten; rows go in by merge.
            self.db.create_table(name, schema=target, exist_ok=True)
            return None
        # Local: two processes creating one table at once can both commit version 1, and one creator's rows
        # are lost (seen: 4 extract processes, 16 of 24 rows). Creation is serialised by a creation lock (not
        # the maintenance lock: writes never wait for a compaction); whoever comes second merges instead.
        with table_lock(self.lock_dir / "create", name):
            if self.has_table(name):
                return None
            try:
                tbl = self.db.create_table(name, data.cast(target), schema=target, exist_ok=False)
            except Exception:
                if self.has_table(name):
                    return None  # created meanwhile by a process that does not take the lock: merge instead
                raise
        return int(tbl.version), data.num_rows, 0


def open_store(uri: str | os.PathLike | None = None, **kwargs: Any) -> Store:
    """Open (or create) the store at ``uri``; see :class:`Store`.

    Examples
    --------
    >>> import tempfile
    >>> open_store(tempfile.mkdtemp() + "/store").list_tables()
    []
    """
    return Store(uri, **kwargs)


def _as_version(version: int | str) -> int | str:
    if isinstance(version, str) and version.isdigit():
        return int(version)
    return version
