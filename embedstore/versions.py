"""Table versions and tags (mixed into :class:`embedstore.store.Store`).

Every committed write makes a new version of its table; a tag names a
version so that it can be read back (``store.read(table, version=tag)``) and
survives ``cleanup``. Runs tag the versions they write and record the
versions they read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .keys import check_name
from .locks import table_lock


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
        for tag, info in tbl.tags.list().items():
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
        return {t: int(i["version"]) for t, i in self.open_table(name).tags.list().items()}

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
        with table_lock(self.lock_dir, name):
            return self._tag_locked(name, tag, self.version(name) if version is None else int(version))

    def _tag_locked(self, name: str, tag: str, version: int) -> int:
        tbl = self.db.open_table(name)
        existing = tbl.tags.list()
        if tag in existing:
            if int(existing[tag]["version"]) != version:
                tbl.tags.update(tag, version)
        else:
            tbl.tags.create(tag, version)
        return version
