"""Helpers shared by the benchmark scripts: machine description, timing, markdown."""

from __future__ import annotations

import os
import platform
import time
from typing import Callable, Sequence

import numpy as np

# Benchmarks run offline and quiet: set before any model library is imported (scripts import benchlib first).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LANCEDB_LOG", "error")


def machine() -> dict[str, str]:
    """CPU model, logical CPUs, torch threads, load and library versions of this run."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": model, "logical_cpus": str(os.cpu_count()), "python": platform.python_version()}
    try:
        import torch

        info["torch_threads"] = str(torch.get_num_threads())
        info["torch"] = torch.__version__
    except ImportError:
        pass
    try:
        info["load_avg_1m"] = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        pass
    try:
        import lancedb
        import lance

        info["lancedb"] = lancedb.__version__
        info["pylance"] = lance.__version__
    except ImportError:
        pass
    info["numpy"] = np.__version__
    return info


def time_calls(fn: Callable[[], object], n: int, warmup: int = 1) -> np.ndarray:
    """Wall-clock seconds of ``n`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def time_calls_cpu(fn: Callable[[], object], n: int, warmup: int = 1) -> tuple[np.ndarray, float]:
    """Like :func:`time_calls`, plus the mean process CPU seconds per call (all threads).

    CPU time is much less sensitive than wall time to other jobs on a shared machine.
    """
    for _ in range(warmup):
        fn()
    c0 = time.process_time()
    wall = time_calls(fn, n, warmup=0)
    return wall, (time.process_time() - c0) / n


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def machine_md(info: dict[str, str]) -> str:
    """One markdown line describing the machine."""
    return "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items())
