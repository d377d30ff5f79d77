"""Table versions and tags (mixed into :class:`embedstore.store.Store`).

Every committed write makes a new version of its table; a tag names a
version so that it can be read back (``store.read(table, version=tag)``) and
survives ``cleanup``. Runs tag the versions they write and record the
versions they read.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

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
class VersionInfo:
    """One table version and the tags pointing at it."""

    version: int
    timestamp: str
    tags: tuple[str, ...]
    rows: int | None


class VersionsMixin:
    """Version and tag methods of :class:`~embedstore.store.Store`."""

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of table ``name`` with their tags, oldest first."""
        tbl = self.open_table(name)
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

    def tags(self, name: str) -> dict[str, int]:
        """Tags of table ``name`` as ``{tag: version}``."""
        tags = self.open_table(name).tags
        return {t: int(i["version"]) for t, i in read_retrying(tags.list).items()}

    def tag(self, name: str, tag: str, version: int | None = None) -> int:
        """Create (or move) ``tag`` on ``version`` (default latest); returns it.

        Examples
        --------
        >>> import tempfile, pyarrow as pa
        >>> from embedstore import Store
        >>> s = Store(tempfile.mkdtemp() + "/s")
        >>> _ = s.upsert("t", pa.table({"k": ["a"]}), key="k")
        >>> s.tag("t", "v1")
        1
        >>> s.tags("t")
        {'v1': 1}
        """
        check_name(tag, "tag name")
        self._check_writable()
        return self._set_tag(name, tag, self.version(name) if version is None else int(version))

    def _set_tag(self, name: str, tag: str, version: int) -> int:
        """Create ``tag`` on ``version``, or move it there, without a lock and without listing other tags."""
        tags = self.db.open_table(name).tags
        try:
            tags.create(tag, version)
        except Exception as exc:  # lance: "Ref conflict error: tag x already exists"
            if "already exists" not in str(exc):
                raise
            if int(read_retrying(lambda: tags.get_version(tag))) != version:
                tags.update(tag, version)
        return version
