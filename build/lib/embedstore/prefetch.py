"""Run an iterator in a background thread, a bounded number of items ahead.

Used wherever I/O or decoding should overlap compute: image decoding ahead of
the extractor's forward pass, store reads ahead of a training step, raw image
batches ahead of a backbone. Errors raised by the producer surface in the
consumer; a consumer that stops early (break, exception, Ctrl-C) stops the
producer too.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int = 2, name: str = "embedstore-prefetch") -> Iterator[T]:
    """Yield ``items``, producing up to ``depth`` of them ahead in a background thread.

    Parameters
    ----------
    items : iterable
        Evaluated lazily, in the background thread (pass a generator).
    depth : int
        Largest number of produced items waiting for the consumer.
    name : str
        Name of the producer thread (shows in profilers and tracebacks).

    Examples
    --------
    >>> list(prefetch(x * x for x in range(4)))
    [0, 1, 4, 9]
    >>> def bad():
    ...     yield 1
    ...     raise ValueError("boom")
    >>> list(prefetch(bad()))
    Traceback (most recent call last):
    ...
    ValueError: boom
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # surfaced in the consumer
            put(exc)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
