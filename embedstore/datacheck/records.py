"""The ``checks`` table: findings of ``check`` and ``drift``, keyed like runs, and the runs they touch.

A record holds what one call found (``result``), the **exact table
versions** it read and its settings; its key, ``check_id``, is a hash of
the kind, the dataset(s), those versions and the settings
(:func:`check_key`). A second call with nothing changed finds its record
and computes nothing. ``flagged`` lists the samples the record flags (a
leak, an exact or near duplicate across splits, a label issue) with a
fingerprint of each sample row as it was checked (content hashes, label,
splits), so :func:`flagged_runs` can tell which recorded runs read those
very rows: a run read a flagged row when its own pinned version of the
samples table holds that row with the same fingerprint.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> key = check_key("check", "toy", {"samples__toy": 1}, {"k": 5})
>>> rec = CheckRecord(key, "check", "toy", {"samples__toy": 1}, {"k": 5}, {"counts": {"leaks": 0}})
>>> _ = save_record(s, rec)
>>> find_record(s, key).result["counts"], [r.check_id for r in list_checks(s, "toy")] == [key]
({'leaks': 0}, True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from ..formats import ToDict
from ..keys import stable_hash
from ..sql import eq

#: Name and key column of the findings table.
CHECKS = "checks"
CHECK_KEY = "check_id"

CHECKS_SCHEMA = pa.schema([
    pa.field(CHECK_KEY, pa.string(), nullable=False),
    pa.field("kind", pa.string()),
    pa.field("dataset", pa.string()),
    pa.field("created_at", pa.string()),
    pa.field("table_versions", pa.string()),
    pa.field("settings", pa.string()),
    pa.field("result", pa.string()),
    pa.field("flagged", pa.string()),
    pa.field("embedstore_version", pa.string()),
])
_JSON = ("table_versions", "settings", "result", "flagged")


def check_key(kind: str, dataset: str, versions: dict[str, int], settings: dict[str, Any]) -> str:
    """The key of a check: kind, dataset(s), table versions read and settings.

    Examples
    --------
    >>> check_key("check", "d", {"t": 1}, {}) == check_key("check", "d", {"t": 1}, {})
    True
    >>> check_key("check", "d", {"t": 1}, {}) == check_key("check", "d", {"t": 2}, {})
    False
    """
    return "chk-" + stable_hash({"kind": kind, "dataset": dataset, "versions": versions, "settings": settings})


@dataclass
class CheckRecord(ToDict):
    """One stored check or drift result.

    Attributes
    ----------
    check_id, kind, dataset : str
        ``kind`` is ``check`` or ``drift``; a drift's ``dataset`` is ``A|B``.
    table_versions, settings, result : dict
    flagged : dict
        ``{sample_id: {"reasons": [...], "fingerprint": str}}`` of the
        dataset's flagged samples (empty for drift).
    created_at, embedstore_version : str
    """

    check_id: str
    kind: str
    dataset: str
    table_versions: dict[str, int]
    settings: dict[str, Any]
    result: dict[str, Any]
    flagged: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    embedstore_version: str = ""

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in CHECKS_SCHEMA.names}
        for name in _JSON:
            row[name] = json.dumps(row[name], sort_keys=True, default=_plain)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "CheckRecord":
        kw = dict(row)
        for name in _JSON:
            kw[name] = json.loads(kw[name]) if kw.get(name) else {}
        return cls(**kw)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


def save_record(store, record: CheckRecord):
    """Write ``record`` to the ``checks`` table (keyed by ``check_id``); returns the WriteResult."""
    from .. import __version__

    record.created_at = record.created_at or datetime.now().isoformat(timespec="seconds")
    record.embedstore_version = record.embedstore_version or __version__
    data = pa.Table.from_pylist([record.to_row()], schema=CHECKS_SCHEMA)
    return store.upsert(CHECKS, data, key=CHECK_KEY, schema=CHECKS_SCHEMA)


def find_record(store, check_id: str) -> CheckRecord | None:
    """The stored record ``check_id``, or ``None``."""
    if not store.has_table(CHECKS):
        return None
    rows = store.read(CHECKS, where=eq(CHECK_KEY, check_id)).to_pylist()
    return CheckRecord.from_row(rows[0]) if rows else None


def list_checks(store, dataset: str | None = None, kind: str | None = None) -> list[CheckRecord]:
    """Stored records, oldest first, optionally of one dataset and kind."""
    if not store.has_table(CHECKS):
        return []
    clauses = [eq(col, v) for col, v in (("dataset", dataset), ("kind", kind)) if v is not None]
    rows = store.read(CHECKS, where=" AND ".join(clauses) or None).to_pylist()
    return [CheckRecord.from_row(r) for r in sorted(rows, key=lambda r: (r["created_at"], r[CHECK_KEY]))]


def latest_check(store, dataset: str) -> CheckRecord | None:
    """The most recent ``check`` record of ``dataset``, or ``None``."""
    found = list_checks(store, dataset, "check")
    return found[-1] if found else None


def row_fingerprint(row: dict[str, Any]) -> str:
    """What a flagged sample row was when checked: its content hashes, label and splits.

    Examples
    --------
    >>> a = row_fingerprint({"image_sha256": "x", "label": "1", "split_paper": "train", "age": 3})
    >>> a == row_fingerprint({"image_sha256": "x", "label": "1", "split_paper": "train", "age": 4})
    True
    """
    keep = {k: row.get(k) for k in sorted(row) if k in ("image_sha256", "text_sha256", "label")
            or k.startswith(("split_", "label_"))}
    return stable_hash(keep)


def flagged_runs(store, dataset: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """``{run_id: [{"check_id", "created_at", "reasons": {reason: n}}]}``: runs that read rows a check flagged.

    A run is listed under a check of its dataset when the samples table at
    the run's pinned version holds flagged rows with the fingerprint they
    had when checked and the flag concerns the run (:func:`applies`), or, for a shortcut column in the prompt (the result's
    ``prompt_shortcuts``: ``{column: [templates using it]}``), when the run
    used text vectors and its version of the samples holds such a template.
    """
    from ..runs import list_runs
    from ..schema import samples_table
    from ..sql import isin

    out: dict[str, list[dict[str, Any]]] = {}
    checks = [c for c in list_checks(store, dataset, "check") if c.flagged or c.result.get("prompt_shortcuts")]
    if not checks:
        return out
    cache: dict[tuple[str, int], dict[str, str]] = {}
    for run in list_runs(store, dataset):
        table = samples_table(run.dataset)
        version = run.table_versions.get(table)
        if version is None:
            continue
        for chk in (c for c in checks if c.dataset == run.dataset):
            reasons: dict[str, int] = {}
            if chk.flagged:
                key = (chk.check_id, int(version))
                if key not in cache:
                    ids = sorted(chk.flagged)
                    try:
                        rows = store.read(table, version=int(version), where=isin("sample_id", ids)).to_pylist()
                    except Exception:  # the run's version was cleaned up: nothing to compare
                        rows = []
                    cache[key] = {r["sample_id"]: row_fingerprint(r) for r in rows}
                now = cache[key]
                for sid, info in chk.flagged.items():
                    if now.get(sid) == info["fingerprint"]:
                        for reason in info["reasons"]:
                            if applies(reason, run):
                                name = reason.split(":", 1)[0]
                                reasons[name] = reasons.get(name, 0) + 1
            shortcuts = chk.result.get("prompt_shortcuts") or {}
            if shortcuts and "text" in run.model_keys:
                if (table, int(version)) not in cache:
                    found = store.read(table, version=int(version), columns=["prompt_template"])["prompt_template"]
                    cache[(table, int(version))] = {t: "" for t in set(found.to_pylist()) if t}
                used = cache[(table, int(version))]
                hits = [col for col, templates in shortcuts.items() if set(templates) & set(used)]
                if hits:
                    reasons["shortcut in prompt"] = len(hits)
            if reasons:
                out.setdefault(run.run_id, []).append({"check_id": chk.check_id, "created_at": chk.created_at,
                                                       "reasons": dict(sorted(reasons.items()))})
    return out


def applies(reason: str, run) -> bool:
    """Whether a flag ``reason`` of a row concerns ``run``.

    A leak across the splits of column ``c`` (``"near-duplicate leak:c"``)
    concerns runs on split column ``c``; a duplicate within one split
    (``"near-duplicate"``, ``"exact duplicate"``) concerns only
    cross-validated runs, whose folds mix every split; a label issue
    concerns every run.

    Examples
    --------
    >>> from embedstore.runs import RunRecord
    >>> run = RunRecord("r", "d", "early", "honest", 0, split="split_grouped")
    >>> applies("group leak:split_paper", run), applies("group leak:split_grouped", run), applies("label issue", run)
    (False, True, True)
    """
    cv = bool((run.config or {}).get("cv"))
    name, _, column = reason.partition(":")
    if column:
        return cv or run.split == column
    if name in ("near-duplicate", "exact duplicate"):
        return cv
    return True


def flag_summary(entries: list[dict[str, Any]]) -> str:
    """One short text of a run's flags, e.g. ``"label issue 12, near-duplicate leak 3"``.

    Examples
    --------
    >>> flag_summary([{"check_id": "c", "reasons": {"label issue": 2, "group leak": 1}}])
    'group leak 1, label issue 2'
    """
    total: dict[str, int] = {}
    for e in entries:
        for reason, n in e["reasons"].items():
            total[reason] = max(total.get(reason, 0), n)
    return ", ".join(f"{k} {v}" for k, v in sorted(total.items()))
