"""Declared primary keys: upgrading stores made before 0.2, auditing and repairing keys.

A keyed table (``samples__*``, ``emb__*``, ``models``, ``alignments``,
``runs``) declares its key column as Lance's unenforced primary key, which is
what lets concurrent writers keep one row per key without a lock (see
:mod:`embedstore.store`). Tables created by embedstore 0.1 lack the
declaration:

* :func:`declare_key` adds it to one table in place (two new versions: the
  key becomes non-nullable, then declared). Every older version, every tag
  and every version a run record points to stays readable, unchanged.
  :meth:`~embedstore.store.Store.upsert` calls it before its first write to
  such a table, so an old store upgrades itself as it is used.
* :func:`upgrade` (``embedstore upgrade``) does it for every keyed table at
  once, including tables nobody writes to any more; run it once per store
  before several machines write to it.
* :func:`repair` (``embedstore repair``) removes duplicate keys left by
  unsynchronised writers of 0.1 (or by a store that ignores conditional
  PUT), keeping the newest row of each key, in one commit per table.
* :func:`check_declared_keys` is the ``doctor`` check that names
  undeclared tables and the command that fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError
from .formats import ToDict
from .schema import declared_key, key_column


@dataclass(frozen=True)
class UpgradeResult(ToDict):
    """Outcome of upgrading one table.

    Attributes
    ----------
    table, key : str
    version_before, version_after : int
        Equal when the table already declared its key.
    """

    table: str
    key: str
    version_before: int
    version_after: int

    @property
    def upgraded(self) -> bool:
        """True when this call declared the key."""
        return self.version_after != self.version_before


@dataclass(frozen=True)
class RepairResult(ToDict):
    """Outcome of repairing one table.

    Attributes
    ----------
    table, key : str
    duplicate_keys : int
        Keys that had more than one row.
    removed : int
        Rows deleted (all but the newest row of each such key).
    version_before, version_after : int
    """

    table: str
    key: str
    duplicate_keys: int
    removed: int
    version_before: int
    version_after: int


def declare_key(tbl, key: str) -> bool:
    """Declare ``key`` as the primary key of the open LanceDB table ``tbl``; False if it already was.

    Safe when several processes do it at once (the loser finds it declared).

    Examples
    --------
    >>> import tempfile, lancedb, pyarrow as pa
    >>> tbl = lancedb.connect(tempfile.mkdtemp()).create_table("t", pa.table({"k": ["a"]}))
    >>> declare_key(tbl, "k"), declare_key(tbl, "k"), declared_key(tbl.schema)
    (True, False, 'k')
    """
    from .retries import with_retries

    if declared_key(tbl.schema) is not None:
        return False

    def run() -> bool:
        tbl.checkout_latest()
        if declared_key(tbl.schema) is not None:
            return False
        if tbl.schema.field(key).nullable:
            tbl.alter_columns({"path": key, "nullable": False})
        tbl.set_unenforced_primary_key(key)
        return True

    try:
        return with_retries(run)[0]
    except Exception as exc:
        tbl.checkout_latest()
        if declared_key(tbl.schema) is not None:
            return False  # another process declared it at the same moment
        if "NULL" in str(exc):
            raise InputError(f"table '{tbl.name}': rows with an empty key '{key}' block the upgrade; "
                             f"delete them (e.g. embedstore repair) and re-run 'embedstore upgrade'") from None
        raise


def _keyed_tables(store, table: str | None) -> list[tuple[str, str]]:
    """``[(table, key column)]`` of ``table`` or of every keyed table of ``store``."""

    if table is not None:
        store.open_table(table)  # raises the NotFoundError with its fix
        names = [table]
    else:
        names = store.list_tables()
    return [(n, key_column(n)) for n in names if key_column(n)]


def upgrade(store, table: str | None = None) -> list[UpgradeResult]:
    """Declare the primary key of ``table`` (default: every keyed table) in place.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> _ = s.write_samples("toy", pa.table({"sample_id": ["a"], "text": ["t"], "text_sha256": ["h"],
    ...     "prompt_name": [None], "prompt_template": [None], "image_ref": [None], "image_sha256": [None],
    ...     "label": ["x"], "split_paper": ["train"]}))
    >>> [(r.table, r.upgraded) for r in upgrade(s)]  # made by this release: already declared
    [('samples__toy', False)]
    """
    store._check_writable()
    out = []
    for name, key in _keyed_tables(store, table):
        tbl = store.db.open_table(name)
        before = int(tbl.version)
        declare_key(tbl, key)
        tbl.checkout_latest()
        out.append(UpgradeResult(name, key, before, int(tbl.version)))
    return out


def repair(store, table: str | None = None, *, dry_run: bool = False) -> list[RepairResult]:
    """Keep the newest row of each key of ``table`` (default: every keyed table), one commit per table.

    The newest row is the one written last (highest Lance row address: the
    fragment committed last). Tables without duplicates are not touched.

    Examples
    --------
    >>> import tempfile, lancedb, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> tbl = s.db.create_table("models", pa.table({"model_key": ["a"], "x": [1]}))
    >>> _ = tbl.add(pa.table({"model_key": ["a"], "x": [2]}))
    >>> [(r.duplicate_keys, r.removed) for r in repair(s)], s.read("models").to_pylist()
    ([(1, 1)], [{'model_key': 'a', 'x': 2}])
    """
    import polars as pl

    from .locks import table_lock
    from .retries import with_retries

    if not dry_run:
        store._check_writable()
    out = []
    for name, key in _keyed_tables(store, table):
        with table_lock(store.lock_dir, name):
            ds = store.open_table(name).to_lance()
            rows = pl.from_arrow(ds.to_table(columns=[key], with_row_address=True))
            stale = (rows.filter(pl.col(key).is_duplicated())
                     .filter(pl.col("_rowaddr") != pl.col("_rowaddr").max().over(key)))
            dup_keys = stale.get_column(key).n_unique()
            before = after = int(ds.version)
            if stale.height and not dry_run:
                addrs = ", ".join(str(a) for a in stale.get_column("_rowaddr").to_list())
                with_retries(lambda: store.open_table(name).to_lance().delete(f"_rowaddr IN ({addrs})"))
                after = store.version(name)
            out.append(RepairResult(name, key, dup_keys, stale.height, before, after))
    return out


def check_declared_keys(store, report) -> None:
    """``doctor`` check: every keyed table declares its key column as primary key."""

    bad = []
    for name in store.list_tables():
        key = key_column(name)
        try:
            schema = store.open_table(name).schema
        except Exception:  # an unreadable table is reported by doctor's 'readable' check
            continue
        if key and key in schema.names and declared_key(schema) is None:
            bad.append(name)
    for name in bad:
        report.add("declared_key", name, [key_column(name)], "key column not declared as primary key "
                   "(made by embedstore 0.1: concurrent writers may duplicate rows)", "run 'embedstore upgrade'")


__all__ = ["declare_key", "upgrade", "repair", "check_declared_keys", "UpgradeResult", "RepairResult"]
