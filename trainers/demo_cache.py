"""The demo's second run: when nothing changed, reuse every result and the written report.

A demo run is decided by its inputs: the store's committed versions, the
data files, embedstore's code, the packages and settings that pick the
encoders' backends, and the demo's options. :func:`inputs_stamp` digests
them cheaply (:mod:`embedstore.fingerprint`; no LanceDB, no torch).
After a run, :func:`remember` keeps its result under that stamp in
``<out>/demo-cache.json``, with the SHA-256 of the report it wrote.
:func:`recall` gives that result back when the stamp and the report file
are still the same: ingest checks, extraction, training, gap diagnostics,
sweeps, predictions and the report are then all reused, none recomputed.

A partial change (a new run recorded in the store, say) reruns the
pipeline, whose steps each reuse what they can; :func:`ingest_unchanged`
lets it skip the ingest checks when the data files and the samples table
are as the last run left them.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

CACHE = "demo-cache.json"


def inputs_stamp(store, data_root: Path, options: dict[str, Any]) -> dict[str, str]:
    """Digests of everything a demo run's results depend on (see the module docstring)."""
    from embedstore.fingerprint import code_stamp, digest, environment_stamp, files_stamp, store_stamp

    return {"store": store_stamp(store), "data": files_stamp(data_root) if data_root.exists() else "",
            "code": code_stamp(), "environment": environment_stamp(), "options": digest(options)}


def _key(store, dataset: str, options: dict[str, Any]) -> str:
    from embedstore.fingerprint import digest

    return digest({"store": str(store.uri), "dataset": dataset, "options": options})


def _read(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / CACHE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recall(out: Path, store, dataset: str, data_root: Path, options: dict[str, Any]) -> dict[str, Any] | None:
    """The last run's entry (``result``, ``finished_at``) when nothing it depended on changed, else ``None``."""
    entry = _read(out).get(_key(store, dataset, options))
    if not entry or entry.get("stamp") != inputs_stamp(store, data_root, options):
        return None
    report = Path(entry["result"]["report"])
    if not report.is_file() or _sha256(report) != entry.get("report_sha256"):
        return None
    return entry


def remember(out: Path, store, dataset: str, data_root: Path, options: dict[str, Any], result: dict[str, Any],
             ingest: dict[str, Any]) -> None:
    """Keep ``result`` under the stamp of the store, files and code as this run leaves them."""
    cache = _read(out)
    cache[_key(store, dataset, options)] = {
        "stamp": inputs_stamp(store, data_root, options), "result": result, "ingest": ingest,
        "report_sha256": _sha256(Path(result["report"])), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp = out / (CACHE + ".tmp")
    tmp.write_text(json.dumps(cache, indent=1, default=str))
    tmp.replace(out / CACHE)


def ingest_unchanged(out: Path, store, dataset: str, data_root: Path, options: dict[str, Any]) -> bool:
    """True when the data files and the dataset's samples table are as the last run left them."""
    from embedstore.errors import NotFoundError
    from embedstore.fingerprint import files_stamp
    from embedstore.schema import samples_table

    last = (_read(out).get(_key(store, dataset, options)) or {}).get("ingest") or {}
    if not last or not data_root.exists() or last.get("data") != files_stamp(data_root):
        return False
    try:
        return store.version(samples_table(dataset)) == last.get("samples_version")
    except NotFoundError:
        return False


def ingest_state(store, dataset: str, data_root: Path) -> dict[str, Any]:
    """What :func:`ingest_unchanged` compares next time: the files' stamp and the samples table's version."""
    from embedstore.fingerprint import files_stamp
    from embedstore.schema import samples_table

    return {"data": files_stamp(data_root), "samples_version": store.version(samples_table(dataset))}
