"""The CPU this process runs on: its cores, its flags, how busy it is, and torch's thread pool for a block.

One home for these, used by extraction (all cores by default), the Ray
engine (how many CPUs to give a local Ray), llama.cpp (its thread count),
the trainers (heads train on one thread unless told otherwise), the backend
measurements (which CPU a figure came from: :func:`describe`) and the
commands that explain a slow run (:func:`busy_note`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

#: ``/proc/cpuinfo`` flags of native bfloat16 arithmetic (AVX512-BF16, AMX-BF16). Without one
#: of them torch's bf16 kernels are emulated in fp32 arithmetic plus conversions (slower than fp32).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count).

    Examples
    --------
    >>> cores() >= 1
    True
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` fields (empty where there is no such file)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as ``/proc/cpuinfo`` lists them (empty where it cannot be read).

    Examples
    --------
    >>> isinstance(cpu_flags(), frozenset)
    True
    """
    return frozenset(_cpuinfo().get("flags", "").split())


def native_bf16() -> bool:
    """Whether the CPU computes in bfloat16 natively (one of :data:`BF16_FLAGS`).

    Examples
    --------
    >>> native_bf16() in (True, False)
    True
    """
    return any(f in cpu_flags() for f in BF16_FLAGS)


def describe() -> str:
    """One line naming the CPU and the flags that decide bf16/int8 speed, for benchmark and measure output.

    Examples
    --------
    >>> "logical CPUs" in describe()
    True
    """
    info = _cpuinfo()
    name = info.get("model name") or "unknown CPU"
    if info.get("cpu family"):
        name += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    flags = cpu_flags()
    shown = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    marks = ", ".join(f if f in flags else f"no {f}" for f in shown)
    return f"{name}, {os.cpu_count()} logical CPUs; {marks}; native bf16: {'yes' if native_bf16() else 'no'}"


def load_average() -> float | None:
    """The machine's 1-minute load average (``None`` where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def busy_note() -> str | None:
    """One line saying the machine is busy (1-minute load average above its logical CPU count), else ``None``.

    The load average counts runnable processes on the whole machine, so it is
    compared with the machine's logical CPUs (``os.cpu_count()``). Printed by
    ``embedstore extract`` and the demo so that a slow run is explained.

    Examples
    --------
    >>> note = busy_note()
    >>> note is None or note.startswith("machine busy")
    True
    """
    load, n = load_average(), os.cpu_count() or 1
    if load is None or load <= n:
        return None
    return (f"machine busy: 1-minute load average {load:.1f} on {n} logical CPUs, so other jobs share the cores "
            "and times here are slower than on a quiet machine")


@contextlib.contextmanager
def competitors(n: int = 2) -> Iterator[None]:
    """Run the block with ``n`` CPU-bound busy-loop processes competing for the cores (the "loaded" condition).

    How ``embedstore backends --measure`` and the benchmarks measure a
    backend as it runs while other jobs share the machine. The processes are
    this function's own children, stopped (by pid) when the block ends.

    Examples
    --------
    >>> with competitors(0):
    ...     pass
    """
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(max(0, n))]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@contextlib.contextmanager
def torch_threads(n: int | None, *, default: int | None = None) -> Iterator[None]:
    """Run the block with ``n`` (else ``default``) torch intra-op threads, then restore the pool.

    With neither given, the pool is left as it is.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    import torch

    before = torch.get_num_threads()
    want = n if n is not None else default
    if want is not None:
        torch.set_num_threads(max(1, int(want)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def busy_note() -> str | None:
    """One line saying the machine is busy (1-minute load average above its logical CPU count), else ``None``.

    The load average counts runnable processes on the whole machine, so it is
    compared with the machine's logical CPUs (``os.cpu_count()``). Printed by
    the demo so that a slow run is explained.

    Examples
    --------
    >>> note = busy_note()
    >>> note is None or note.startswith("machine busy")
    True
    """
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return None
    n = os.cpu_count() or 1
    if load <= n:
        return None
    return (f"machine busy: 1-minute load average {load:.1f} on {n} logical CPUs, so other jobs share the cores "
            "and times here are slower than on a quiet machine")
