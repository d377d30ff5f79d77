"""Capture the software and hardware environment of a run (stored in its record).

Examples
--------
>>> env = capture()
>>> {"cpu_model", "torch_threads", "versions"} <= set(env)
True
>>> env["versions"]["torch"] != ""
True
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from importlib import metadata
from typing import Any

_PACKAGES = ("embedstore", "torch", "numpy", "lancedb", "pylance", "pyarrow", "polars", "scikit-learn")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def capture() -> dict[str, Any]:
    """Versions, torch threads, CPU model and count, OS and Python of this process."""
    import torch

    return {
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in _PACKAGES}},
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
