"""Where the demo's data comes from: a HAM10000 folder, a manifest folder, or generated synthetic data.

Split out of :mod:`embedstore.trainers.demo` (which re-exports :func:`detect_kind` and
:func:`dataset_name`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from embedstore.errors import InputError

#: Synthetic samples of a full / ``quick`` demo.
SYNTHETIC_N, QUICK_N = 400, 160


def detect_kind(root: str | Path) -> str:
    """The dataset kind of a demo ``--root``: ``ham10000`` or ``manifest``.

    Examples
    --------
    >>> import tempfile
    >>> detect_kind(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: demo root=...: no HAM10000_metadata.csv and no manifest (CSV/Parquet) in it; ...
    """
    root = Path(root)
    if (root / "HAM10000_metadata.csv").is_file():
        return "ham10000"
    if root.is_file() or (root.is_dir() and any(p.suffix.lower() in (".csv", ".parquet") for p in root.iterdir())):
        return "manifest"
    raise InputError(f"demo root={root}: no HAM10000_metadata.csv and no manifest (CSV/Parquet) in it; pass a "
                     "HAM10000 folder (HAM10000_metadata.csv + images) or a manifest folder")


def dataset_name(root: str | Path, kind: str) -> str:
    """Store name of a demo dataset read from ``root``.

    Examples
    --------
    >>> dataset_name("../shared/data/ham10000-dev270", "ham10000")
    'ham10000-dev270'
    >>> dataset_name("/data/My Download", "ham10000")
    'ham10000-my-download'
    """
    base = re.sub(r"[^a-z0-9_.-]+", "-", Path(root).resolve().name.lower()).strip("-.")[:40] or "data"
    if kind == "ham10000" and "ham" not in base:
        base = f"ham10000-{base}"
    return base.replace("..", ".")


def plan(root, out: Path, quick: bool, samples: int | None) -> tuple[str, Path, str, dict[str, Any], bool]:
    """``(kind, data root, dataset, ingest options, synthetic)`` of a demo, without writing anything."""
    if root is not None:
        kind = detect_kind(root)
        options = _manifest_options(Path(root)) if kind == "manifest" else {}
        return kind, Path(root), dataset_name(root, kind), options, False
    n = samples or (QUICK_N if quick else SYNTHETIC_N)
    if n < 24:
        raise InputError(f"samples={n}: the honest train/val/test split needs at least 24 synthetic samples")
    dataset = "synthetic-demo" if n == SYNTHETIC_N else f"synthetic-demo-{n}"
    return "manifest", out / dataset, dataset, {"group_column": "group", "text_column": "text"}, True


def _data(root, out: Path, quick: bool, samples: int | None, say) -> tuple[str, Path, str, dict[str, Any], bool]:
    kind, data_root, dataset, options, synthetic = plan(root, out, quick, samples)
    if synthetic:
        from embedstore.synthetic import make_synthetic

        n = samples or (QUICK_N if quick else SYNTHETIC_N)
        say(f"[data] generating {n} SYNTHETIC samples (shapes + made-up metadata text) under {data_root}")
        make_synthetic(data_root, n=n)
    return kind, data_root, dataset, options, synthetic


def _manifest_options(root: Path) -> dict[str, Any]:
    """Column options for a manifest root: ``group`` when present (the synthetic layout; the manifest
    adapter finds a ``sample_id`` id column itself)."""
    from embedstore.datasets.manifest import find_manifest, read_manifest

    cols = read_manifest(find_manifest(root, None)).columns
    opts: dict[str, Any] = {}
    if "group" in cols:
        opts["group_column"] = "group"
    return opts


def _real_banner(kind: str, root: Path) -> str:
    what = "HAM10000 dermatoscopic images (CC BY-NC 4.0, Tschandl et al. 2018)" if kind == "ham10000" else "a manifest"
    return (f"Real data: {what} read from {root}. Honest protocol: grouped split, epoch and λ chosen on "
            "validation, test touched once per seed.")
