"""Retrying Lance's retryable commit conflicts: the one place the store's writers back off."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

T = TypeVar("T")

#: Bounded backoff of :func:`with_retries`: attempts after the first, first and largest sleep (s).
RETRY_ATTEMPTS, RETRY_BASE_S, RETRY_MAX_S = 8, 0.05, 2.0


def with_retries(fn: Callable[[], T], attempts: int = RETRY_ATTEMPTS) -> tuple[T, int]:
    """``(fn(), retries)``, retrying Lance's retryable commit conflicts with bounded exponential backoff.

    Examples
    --------
    >>> calls = []
    >>> def commit():
    ...     calls.append(1)
    ...     if len(calls) < 2:
    ...         raise OSError("Retryable commit conflict for version 3")
    ...     return "ok"
    >>> with_retries(commit)
    ('ok', 1)
    """
    retries = 0
    while True:
        try:
            return fn(), retries
        except Exception as exc:  # lance surfaces conflicts as OSError/RuntimeError
            msg = str(exc).lower()
            if retries >= attempts or ("conflict" not in msg and "retry" not in msg):
                raise
            retries += 1
            time.sleep(min(RETRY_MAX_S, RETRY_BASE_S * 2 ** retries) * (0.5 + random.random()))
