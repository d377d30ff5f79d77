"""Store maintenance: compaction, safe version cleanup, and a health check.

* :func:`compact` merges a table's small fragments (many small upserts leave
  many) into few large ones. It commits a new version with identical content.
* :func:`cleanup` deletes versions older than N days, except the latest
  version of each table, every **tagged** version, and every version that a
  recorded training run points to (:func:`embedstore.runs.referenced_versions`).
  Those keep reading back exactly as they were.
* :func:`doctor` (:mod:`embedstore.doctor`, re-exported here) checks the
  invariants the rest of embedstore relies on and returns a
  :class:`DoctorReport` listing every problem found.

Compaction and cleanup of a table hold its maintenance lock
(:mod:`embedstore.locks`), so two of them never redo each other's work;
upserts go on meanwhile (Lance retries whichever commit conflicts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .errors import InputError
from .locks import table_lock
from .formats import ToDict
from .versions import read_retrying
from .schema import (RUNS, key_column)

from .doctor import DoctorReport, Problem, doctor  # noqa: F401 (part of this module's API)


# -- compaction ------------------------------------------------------------
@dataclass(frozen=True)
class CompactResult(ToDict):
    """Outcome of compacting one table.

    Attributes
    ----------
    table : str
    version_before, version_after : int
        Latest version before and after (equal when nothing was merged).
    fragments_before, fragments_after : int
    retries : int
        Retryable commit conflicts that were retried.
    """

    table: str
    version_before: int
    version_after: int
    fragments_before: int
    fragments_after: int
    retries: int = 0


def compact(store, table: str | None = None) -> list[CompactResult]:
    """Merge the fragments of ``table`` (default: every table).

    Content is unchanged; a new version is committed when fragments were
    merged. Indices are remapped (and updated with new rows) when present.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> for i in range(3):
    ...     _ = s.upsert("t", pa.table({"k": [str(i)]}), key="k")
    >>> r = compact(s, "t")[0]
    >>> (r.fragments_before, r.fragments_after, s.read("t").num_rows)
    (3, 1, 3)
    """
    from .retries import with_retries

    store._check_writable()
    names = [table] if table else store.list_tables()
    if table and not store.has_table(table):
        store.open_table(table)  # raises the NotFoundError with its fix
    out = []
    for name in names:
        with table_lock(store.lock_dir, name):
            ds = store.open_table(name).to_lance()
            before, frags = int(ds.version), len(ds.get_fragments())

            def run(name=name):
                latest = store.open_table(name).to_lance()
                latest.optimize.compact_files()
                if latest.list_indices():
                    latest.optimize.optimize_indices()

            _, retries = with_retries(run)
            ds = store.open_table(name).to_lance()
            out.append(CompactResult(name, before, int(ds.version), frags, len(ds.get_fragments()), retries))
    return out


# -- cleanup ---------------------------------------------------------------
@dataclass(frozen=True)
class CleanupResult(ToDict):
    """Outcome of cleaning up one table.

    Attributes
    ----------
    table : str
    removed : tuple of int
        Versions deleted (or that would be, with ``dry_run``).
    kept_tagged, kept_referenced : tuple of int
        Old versions kept because a tag or a recorded run points to them.
    bytes_removed : int
    """

    table: str
    removed: tuple[int, ...]
    kept_tagged: tuple[int, ...]
    kept_referenced: tuple[int, ...]
    bytes_removed: int = 0


def cleanup(store, older_than_days: float, *, table: str | None = None,
            dry_run: bool = False) -> list[CleanupResult]:
    """Delete table versions older than ``older_than_days`` days.

    Never deleted: the latest version of a table, a tagged version, a version
    that a recorded run points to. Data files still used by a kept version
    stay; everything else of a deleted version is removed.

    Parameters
    ----------
    store : Store
    older_than_days : float
        Age threshold; ``0`` removes every unprotected old version.
    table : str, optional
        Only this table (default: all).
    dry_run : bool
        Report what would be removed without deleting anything.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> for i in range(3):
    ...     _ = s.upsert("t", pa.table({"k": ["a"], "x": [i]}), key="k")
    >>> _ = s.tag("t", "first", 1)
    >>> r = cleanup(s, 0)[0]
    >>> (r.removed, r.kept_tagged, [v.version for v in s.versions("t")])
    ((2,), (1,), [1, 3])
    """
    if older_than_days is None or older_than_days < 0:
        raise InputError(f"cleanup: older_than_days= must be a number of days >= 0, got {older_than_days!r}")
    if not dry_run:
        store._check_writable()
    referenced = _referenced_versions(store)
    names = [table] if table else store.list_tables()
    out = []
    for name in names:
        with table_lock(store.lock_dir, name):
            ds = store.open_table(name).to_lance()
            versions = ds.versions()
            latest = max(int(v["version"]) for v in versions)
            cutoff = _now_like(versions[0]["timestamp"]) - timedelta(days=float(older_than_days))
            tagged = {int(i["version"]) for i in read_retrying(ds.tags.list).values()}
            refs = {int(v) for v in referenced.get(name, ())}
            old = [int(v["version"]) for v in versions
                   if int(v["version"]) != latest and v["timestamp"] <= cutoff]
            remove = tuple(v for v in old if v not in tagged and v not in refs)
            result = CleanupResult(name, remove, tuple(v for v in old if v in tagged),
                                   tuple(v for v in old if v in refs and v not in tagged))
            if remove and not dry_run:
                stats = ds.cleanup_old_versions(versions=list(remove), error_if_tagged_old_versions=False)
                result = CleanupResult(name, remove, result.kept_tagged, result.kept_referenced,
                                       int(getattr(stats, "bytes_removed", 0)))
            out.append(result)
    return out


def _now_like(ts: datetime) -> datetime:
    """Now, in the same (naive local or aware) form as lance's timestamps."""
    return datetime.now(ts.tzinfo) if ts.tzinfo else datetime.now()


def _referenced_versions(store) -> dict[str, set[int]]:
    """``{table: versions}`` that recorded runs point to."""
    try:
        from .runs import referenced_versions
    except ImportError:
        if store.has_table(RUNS):
            raise InputError("cleanup: the store has run records but embedstore.runs is not installed; "
                             "upgrade embedstore before cleaning up") from None
        return {}
    return {t: set(map(int, vs)) for t, vs in referenced_versions(store).items()}


def as_rows(results: list[Any]) -> list[dict[str, Any]]:
    """Dataclass results as plain dicts (for tables and JSON)."""
    import dataclasses

    return [dataclasses.asdict(r) for r in results]


__all__ = ["compact", "cleanup", "doctor", "CompactResult", "CleanupResult", "DoctorReport", "Problem",
           "key_column", "as_rows"]
