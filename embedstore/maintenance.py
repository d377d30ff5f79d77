"""Store maintenance: compaction and cleanup that shrink the store, and a health check.

* :func:`compact` merges a table's small fragments (many small upserts leave
  many) into few large ones, in a new version with identical content. It
  never rewrites a fragment that an old version something pins still reads
  (a user tag, a recorded run, a lease; :mod:`embedstore.pins`): Lance
  would keep the old files for that version next to the new copy, and the
  store would grow. So ``compact`` followed by ``cleanup --older-than 0``
  never leaves the store larger than before.
* :func:`cleanup` deletes versions older than N days, except the latest
  version of each table and every version a user tag, a recorded run
  (:func:`embedstore.runs.referenced_versions`) or a lease
  (:mod:`embedstore.leases`) pins; each kept version comes with why.
  Bookkeeping tags of ``ingest``/``extract``/``align`` do not pin: they go
  with their version. ``dry_run`` says what would go and the bytes freed.
* :func:`doctor` (:mod:`embedstore.doctor`, re-exported here) checks the
  invariants the rest of embedstore relies on and returns a
  :class:`DoctorReport` listing every problem found.

Compaction and cleanup of a table hold its maintenance lock
(:mod:`embedstore.locks`), so two of them never redo each other's work;
upserts go on meanwhile (Lance retries whichever commit conflicts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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
    skipped_pinned : int
        Fragment groups left as they were because a pinned old version reads them.
    """

    table: str
    version_before: int
    version_after: int
    fragments_before: int
    fragments_after: int
    retries: int = 0
    skipped_pinned: int = 0


def compact(store, table: str | None = None) -> list[CompactResult]:
    """Merge the fragments of ``table`` (default: every table), leaving pinned fragments as they are.

    Content is unchanged; a new version is committed when fragments were
    merged. Indices are remapped (and updated with new rows) when present.
    A group of fragments that an old version pinned by a user tag, a run
    or a lease still reads is skipped (:attr:`CompactResult.skipped_pinned`):
    rewriting it would keep both copies until the pin goes.

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
    from .pins import version_pins
    from .retries import with_retries

    store._check_writable()
    names = [table] if table else store.list_tables()
    if table and not store.has_table(table):
        store.open_table(table)  # raises the NotFoundError with its fix
    pins = version_pins(store, tables=names)
    out = []
    for name in names:
        with table_lock(store.lock_dir, name):
            ds = store.open_table(name).to_lance()
            before, frags = int(ds.version), len(ds.get_fragments())
            skipped = [0]

            def run(name=name):
                latest = store.open_table(name).to_lance()
                skipped[0] = _compact_unpinned(latest, pins.get(name, {}))
                if latest.list_indices():
                    latest.optimize.optimize_indices()

            _, retries = with_retries(run)
            ds = store.open_table(name).to_lance()
            out.append(CompactResult(name, before, int(ds.version), frags, len(ds.get_fragments()), retries,
                                     skipped[0]))
    return out


def _compact_unpinned(ds, pins: dict[int, list[str]]) -> int:
    """Compact the fragment groups of ``ds`` that no pinned old version reads; returns the groups skipped."""
    from lance.optimize import Compaction, CompactionOptions

    protected: set[str] = set()
    for version in pins:  # the latest version too: once compacted it is an old version its pin still keeps
        try:
            old = ds.checkout_version(int(version))
        except Exception:  # a pin on a version cleanup already removed (a stale run record)
            continue
        protected |= {f.path for frag in old.get_fragments() for f in frag.data_files()}
    plan = Compaction.plan(ds, CompactionOptions())
    tasks = [t for t in plan.tasks if not any(f.path in protected for frag in t.fragments for f in frag.files)]
    if tasks:
        Compaction.commit(ds, [t.execute(ds) for t in tasks])
    return plan.num_tasks() - len(tasks)


# -- cleanup ---------------------------------------------------------------
@dataclass(frozen=True)
class CleanupResult(ToDict):
    """Outcome of cleaning up one table.

    Attributes
    ----------
    table : str
    removed : tuple of int
        Versions deleted (or that would be, with ``dry_run``).
    kept_tagged, kept_referenced, kept_leased : tuple of int
        Old versions kept because a user tag, a recorded run or a lease pins them.
    bytes_removed : int
        Bytes freed (with ``dry_run``: that would be freed).
    kept : dict
        ``{version: [reasons]}`` of every old version kept (:mod:`embedstore.pins`).
    """

    table: str
    removed: tuple[int, ...]
    kept_tagged: tuple[int, ...]
    kept_referenced: tuple[int, ...]
    bytes_removed: int = 0
    kept_leased: tuple[int, ...] = ()
    kept: dict[int, list[str]] = field(default_factory=dict)


def cleanup(store, older_than_days: float, *, table: str | None = None,
            dry_run: bool = False) -> list[CleanupResult]:
    """Delete table versions older than ``older_than_days`` days that nothing pins.

    Never deleted: the latest version of a table, a version a user tag
    names, a version a recorded run read, a version a running reader holds
    a lease on (:mod:`embedstore.leases`; lance's own cleanup would delete
    its files under it, lance issue 6607). Bookkeeping tags placed by
    ``ingest``/``extract``/``align`` do not protect their version and are
    deleted with it. Data files still used by a kept version stay;
    everything else of a deleted version is removed.

    Parameters
    ----------
    store : Store
    older_than_days : float
        Age threshold; ``0`` removes every unprotected old version.
    table : str, optional
        Only this table (default: all).
    dry_run : bool
        Report what would be removed, and the bytes freed, without deleting anything.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> for i in range(3):
    ...     _ = s.upsert("t", pa.table({"k": ["a"], "x": [i]}), key="k")
    >>> _ = s.tag("t", "first", 1)
    >>> r = cleanup(s, 0)[0]
    >>> (r.removed, r.kept_tagged, r.kept, [v.version for v in s.versions("t")])
    ((2,), (1,), {1: ['tag first']}, [1, 3])
    """
    from .leases import lease_lock
    from .pins import is_bookkeeping_tag, version_pins

    if older_than_days is None or not older_than_days >= 0:
        raise InputError(f"cleanup: older_than_days= must be a number of days >= 0, got {older_than_days!r}")
    if not dry_run:
        store._check_writable()
    _referenced_versions(store)  # refuses a store with runs this installation cannot read
    names = [table] if table else store.list_tables()
    out = []
    for name in names:
        with table_lock(store.lock_dir, name), lease_lock(store, exclusive=True):
            pins = version_pins(store, tables=[name])[name]  # leases read under the lock: none can slip in
            ds = store.open_table(name).to_lance()
            versions = ds.versions()
            latest = max(int(v["version"]) for v in versions)
            cutoff = _now_like(versions[0]["timestamp"]) - timedelta(days=float(older_than_days))
            old = [int(v["version"]) for v in versions
                   if int(v["version"]) != latest and v["timestamp"] <= cutoff]
            remove = tuple(v for v in old if v not in pins)
            kept = {v: pins[v] for v in old if v in pins}

            def why(pattern: str) -> tuple[int, ...]:
                return tuple(v for v, r in kept.items() if any(re.match(pattern, x) for x in r))

            tagged, leased = why("tag "), why("lease ")
            runs = tuple(v for v in why(r"\d+ runs? \(") if v not in tagged)
            freed = 0
            if remove:
                doomed = {t: i["version"] for t, i in read_retrying(ds.tags.list).items()
                          if is_bookkeeping_tag(t) and int(i["version"]) in remove}
                if dry_run:
                    freed = _bytes_freed(ds, remove, doomed)
                else:
                    for tag in doomed:
                        ds.tags.delete(tag)
                    stats = ds.cleanup_old_versions(versions=list(remove), error_if_tagged_old_versions=False)
                    freed = int(getattr(stats, "bytes_removed", 0))
            out.append(CleanupResult(name, remove, tagged, runs, freed, leased, kept))
    return out


def _bytes_freed(ds, remove: tuple[int, ...], bookkeeping: dict[str, int]) -> int:
    """Bytes :func:`cleanup` would free: files only the removed versions read (their bookkeeping tags gone)."""
    keep = {int(v["version"]) for v in ds.versions()} - set(remove)
    keep |= {int(i["version"]) for t, i in read_retrying(ds.tags.list).items() if t not in bookkeeping}
    sizes = {r["path"]: int(r["size_bytes"]) for r in ds.all_files().read_all().to_pylist()}
    used: dict[str, set[int]] = {}
    for r in ds.tracked_files().read_all().to_pylist():
        used.setdefault(r["path"], set()).add(int(r["version"]))
    return sum(sizes.get(p, 0) for p, vs in used.items() if vs and not vs & keep)


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
