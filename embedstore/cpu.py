"""The CPU this process runs on: how many cores it may use, and torch's thread pool for a block.

One home for both, used by extraction (all cores by default), the Ray
engine (how many CPUs to give a local Ray), llama.cpp (its thread count) and
the trainers (heads train on one thread unless told otherwise).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator


def cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count).

    Examples
    --------
    >>> cores() >= 1
    True
    """
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
