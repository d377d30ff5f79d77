"""Table versions and tags: :func:`table_versions` and the manager :class:`Tags` (``store.tags(table)``).

Every committed write makes a new version of its table; a tag names a
version so that it can be read back (``store.read(table, version=tag)``) and
survives ``cleanup``. Runs tag the versions they write and record the
versions they read.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .formats import ToDict
from .keys import check_name

T = TypeVar("T")

#: Errors of a read that met a tag file another process was writing at that moment.
_TORN_READ = ("eof while parsing", "expected value at line")


def read_retrying(fn: Callable[[], T], attempts: int = 6) -> T:
    """``fn()``, retried when it read a tag that another writer was writing at that moment.

    Tags are small JSON objects; on some object stores a reader can see one
    before it is complete (``EOF while parsing an object``) or listed before
    it is readable. Such reads are retried with a short backoff; any other
    error is raised at once.

    Examples
    --------
    >>> read_retrying(lambda: 42)
    42
    """
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:  # lance raises RuntimeError/OSError/ValueError here
            if attempt == attempts - 1 or not any(m in str(exc).lower() for m in _TORN_READ):
                raise
            time.sleep(0.02 * 2 ** attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class VersionInfo(ToDict):
    """One table version and the tags pointing at it."""

    version: int
    timestamp: str
    tags: tuple[str, ...]
    rows: int | None


def table_versions(store, name: str) -> list[VersionInfo]:
    """All versions of table ``name`` with their tags, oldest first (``store.versions(name)``)."""
    tbl = store.open_table(name)
    by_version: dict[int, list[str]] = {}
    for tag, info in read_retrying(tbl.tags.list).items():
        by_version.setdefault(int(info["version"]), []).append(tag)
    out = []
    for v in tbl.list_versions():
        rows = v.get("metadata", {}).get("total_rows")
        out.append(VersionInfo(int(v["version"]), str(v["timestamp"]),
                               tuple(sorted(by_version.get(int(v["version"]), []))),
                               int(rows) if rows is not None else None))
    return out


class Tags(dict):
    """The tags of one table, ``store.tags(table)``: a ``{tag: version}`` dict and its manager.

    As lancedb's ``tbl.tags``: :meth:`list`, :meth:`create`, :meth:`delete`,
    :meth:`get_version`. The mapping itself holds the tags as read when the
    manager was made, kept in step with its own changes.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from embedstore import Store
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> _ = s.upsert("t", pa.table({"k": ["a"]}), key="k")
    >>> tags = s.tags("t")
    >>> tags.create("v1")
    1
    >>> tags, s.tags("t").list()
    ({'v1': 1}, {'v1': 1})
    >>> tags.delete("v1"); s.tags("t")
    {}
    """

    def __init__(self, store, table: str, *, read: bool = True) -> None:
        self._store, self.table = store, table
        super().__init__(self.list() if read else {})  # read=False: only to write, without listing (store.tag)

    def list(self) -> dict[str, int]:
        """The table's tags now, as ``{tag: version}``."""
        tags = self._store.open_table(self.table).tags
        return {t: int(i["version"]) for t, i in read_retrying(tags.list).items()}

    def get_version(self, tag: str) -> int:
        """The version ``tag`` points at."""
        return int(read_retrying(lambda: self._store.open_table(self.table).tags.get_version(tag)))

    def create(self, tag: str, version: int | None = None) -> int:
        """Create (or move) ``tag`` on ``version`` (default latest); returns the version."""
        check_name(tag, "tag name")
        self._store._check_writable()
        if version is not None:
            from .numbers import check_number

            check_number("version", version, low=1, integer=True, fix=f"see 'embedstore versions {self.table}'")
        version = self._store.version(self.table) if version is None else int(version)
        self[tag] = set_tag(self._store.db.open_table(self.table).tags, tag, version)
        return version

    def delete(self, tag: str) -> None:
        """Delete ``tag`` (its version becomes collectable by ``cleanup``)."""
        self._store._check_writable()
        self._store.open_table(self.table).tags.delete(tag)
        self.pop(tag, None)


def set_tag(tags, tag: str, version: int) -> int:
    """Create ``tag`` on ``version`` in lancedb's ``tbl.tags``, or move it there, without a lock or a listing."""
    try:
        tags.create(tag, version)
    except Exception as exc:  # lance: "Ref conflict error: tag x already exists"
        if "already exists" not in str(exc):
            raise
        if int(read_retrying(lambda: tags.get_version(tag))) != version:
            tags.update(tag, version)
    return version


def new_run_tag(kind: str) -> str:
    """A unique tag name for one ingest/extract/align run.

    Examples
    --------
    >>> new_run_tag("extract").startswith("extract-")
    True
    """
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{random.randrange(16**4):04x}"
