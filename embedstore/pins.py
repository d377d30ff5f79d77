"""What pins a table version, and what each table costs on disk.

A version of a table is kept by ``cleanup`` when something still needs it:

* it is the table's **latest** version;
* a **user tag** names it (``embedstore tag``, ``store.tags(t).create``);
* a **recorded run** read it (:func:`embedstore.runs.referenced_versions`),
  so the run re-executes exactly;
* a **lease** holds it: a reader is using it right now
  (:mod:`embedstore.leases`).

``ingest``, ``extract`` and ``align`` also tag each version they write
(``extract-20250101T120000-4242-ab12``...), so that a run's own writes can
be read back by name while they are recent. Those **bookkeeping tags do not
pin**: ``cleanup`` treats their versions like untagged ones and deletes the
tag with its version (:func:`is_bookkeeping_tag`). Earlier versions kept them
forever, which kept every old version's files next to a compacted copy.

:func:`version_pins` says, per table and version, what pins it;
:func:`table_space` adds the bytes on disk, the fragments of the latest
version and the bytes only old versions hold (what ``cleanup`` could free).
``embedstore info`` prints both.

Examples
--------
>>> is_bookkeeping_tag("extract-20250101T120000-4242-ab12"), is_bookkeeping_tag("paper-v1")
(True, False)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .formats import ToDict
from .versions import read_retrying

_BOOKKEEPING = re.compile(r"^(ingest|extract|align)-\d{8}T\d{6}-\d+-[0-9a-f]{4}$")


def is_bookkeeping_tag(name: str) -> bool:
    """Whether ``name`` is a tag embedstore placed itself (:func:`embedstore.versions.new_run_tag`)."""
    return bool(_BOOKKEEPING.match(name))


def run_references(store) -> dict[str, dict[int, list[str]]]:
    """``{table: {version: [run ids]}}`` of the recorded runs."""
    from .schema import RUNS

    out: dict[str, dict[int, list[str]]] = {}
    if not store.has_table(RUNS):
        return out
    rows = store.read(RUNS, columns=["run_id", "table_versions"])
    for run_id, text in zip(rows["run_id"].to_pylist(), rows["table_versions"].to_pylist()):
        for table, version in (json.loads(text) if text else {}).items():
            out.setdefault(table, {}).setdefault(int(version), []).append(str(run_id))
    return out


def version_pins(store, *, tables: list[str] | None = None) -> dict[str, dict[int, list[str]]]:
    """``{table: {version: [reasons]}}``: user tags, recorded runs and leases (the latest version not included).

    Reasons read ``tag paper-v1``, ``3 runs (run-...)`` and
    ``lease pid 42@host (user: command)``.
    """
    from .leases import leased_versions

    names = tables if tables is not None else store.list_tables()
    runs = run_references(store)
    leased = leased_versions(store)
    out: dict[str, dict[int, list[str]]] = {}
    for name in names:
        pins: dict[int, list[str]] = {}
        for tag, info in read_retrying(store.open_table(name).tags.list).items():
            if not is_bookkeeping_tag(tag):
                pins.setdefault(int(info["version"]), []).append(f"tag {tag}")
        for version, ids in runs.get(name, {}).items():
            pins.setdefault(version, []).append(f"{len(ids)} run{'s' * (len(ids) > 1)} ({ids[0]}"
                                                f"{', ...' if len(ids) > 1 else ''})")
        for version, holders in leased.get(name, {}).items():
            pins.setdefault(version, []).extend(f"lease {h}" for h in holders)
        out[name] = pins
    return out


@dataclass(frozen=True)
class TableSpace(ToDict):
    """Disk use of one table.

    Attributes
    ----------
    table : str
    bytes : int
        Every file of the table on disk (all versions).
    latest_bytes : int
        Files the latest version reads.
    old_only_bytes : int
        Files only older versions read (what cleanup can free when nothing pins them).
    rows, fragments, versions, latest : int
    pins : dict
        ``{version: [reasons]}`` of the old versions something pins.
    """

    table: str
    bytes: int
    latest_bytes: int
    old_only_bytes: int
    rows: int
    fragments: int
    versions: int
    latest: int
    pins: dict[int, list[str]] = field(default_factory=dict)


def table_space(store, name: str, pins: dict[int, list[str]] | None = None) -> TableSpace:
    """:class:`TableSpace` of table ``name`` (file sizes from Lance's own listing, so object stores work too)."""
    ds = store.open_table(name).to_lance()
    latest = int(ds.version)
    sizes = {r["path"]: int(r["size_bytes"]) for r in ds.all_files().read_all().to_pylist()}
    tracked = ds.tracked_files().read_all().to_pylist()
    by_version: dict[str, set[int]] = {}
    for r in tracked:
        by_version.setdefault(r["path"], set()).add(int(r["version"]))
    old_only = sum(sizes.get(p, 0) for p, vs in by_version.items() if latest not in vs)
    latest_bytes = sum(sizes.get(p, 0) for p, vs in by_version.items() if latest in vs)
    pins = {} if pins is None else pins
    return TableSpace(name, sum(sizes.values()), latest_bytes, old_only, int(ds.count_rows()),
                      len(ds.get_fragments()), len(ds.versions()), latest,
                      {v: r for v, r in sorted(pins.items()) if v != latest})


def store_space(store) -> list[TableSpace]:
    """:class:`TableSpace` of every table, with what pins its old versions."""
    pins = version_pins(store)
    return [table_space(store, name, pins.get(name, {})) for name in store.list_tables()]


def describe_pins(pins: dict[int, list[str]]) -> str:
    """One short cell: ``v3: tag paper-v1; v7: 2 runs (run-...)``."""
    return "; ".join(f"v{v}: {', '.join(r)}" for v, r in sorted(pins.items())) or "-"


def as_row(space: TableSpace) -> dict[str, Any]:
    """A :class:`TableSpace` as a printable row (MiB, pins in one cell)."""
    return {"table": space.table, "rows": space.rows, "version": space.latest, "versions": space.versions,
            "fragments": space.fragments, "MiB": f"{space.bytes / 2**20:.2f}",
            "old_MiB": f"{space.old_only_bytes / 2**20:.2f}", "pinned_by": describe_pins(space.pins)}
