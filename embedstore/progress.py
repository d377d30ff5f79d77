"""Progress that fits the output: a live bar on a terminal, sparse plain lines in a log.

On a terminal, :func:`progress` is a ``tqdm`` bar. When the stream is a pipe
or a file (``embedstore train ... 2>log``), a bar would write hundreds of
``\\r`` frames per epoch into the log; instead at most one plain line is
written every ``EMBEDSTORE_PROGRESS_INTERVAL`` seconds (default 5), plus a
final line, each with the count done, the rate and the ETA::

    extract image: 640/10015 rows (6%), 21.3 rows/s, ETA 7m20s

:class:`TokenProgress` adds tokens/s and the tokens saved by shared prompt
prefixes for extractors that batch by tokens (llama.cpp).

>>> import io
>>> log = io.StringIO()
>>> with progress(total=3, desc="demo", unit="rows", file=log) as bar:
...     for _ in range(3):
...         bar.update(1)
>>> print(log.getvalue().strip().split(", ")[0])
demo: 3/3 rows (100%)
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, Iterable, Iterator

#: Environment variable: seconds between two plain progress lines (pipes, files).
INTERVAL_ENV = "EMBEDSTORE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 5.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class LineProgress:
    """A progress reporter for non-terminal output: one line every ``interval`` seconds.

    Implements the part of ``tqdm``'s interface embedstore uses: ``update``,
    ``set_postfix``, ``close``, ``n``, iteration and the context manager.
    """

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", file: IO[str] | None = None, interval: float | None = None,
                 disable: bool = False) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.file = file if file is not None else sys.stderr
        self.interval = _interval() if interval is None else interval
        self.disable = disable
        self.n = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last = self._start
        self._written_at = -1
        self._closed = False

    def line(self) -> str:
        """The current progress line (count, percent, rate, ETA, postfix)."""
        elapsed = time.monotonic() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{self.desc}: {done} {self.unit}" + (f" ({100 * self.n / self.total:.0f}%)" if self.total else "")]
        parts.append(f"{rate:.1f} {self.unit}/s" if rate >= 0.1 else f"{_clock(elapsed)} elapsed")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"ETA {_clock((self.total - self.n) / rate)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _emit(self) -> None:
        if self.disable or self._written_at == self.n:
            return
        print(self.line(), file=self.file, flush=True)
        self._written_at = self.n

    def update(self, n: int = 1) -> None:
        """Add ``n`` done; write a line if ``interval`` seconds passed since the last."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit()

    def set_postfix(self, values: dict[str, Any] | None = None, **kw: Any) -> None:
        """Append ``key=value`` fields (e.g. the current loss) to the next line."""
        items = {**(values or {}), **kw}
        self.postfix = " ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        """Write the final line (once)."""
        if not self._closed:
            self._closed = True
            if self.n:
                self._emit()

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TokenProgress:
    """Rows and tokens on one progress reporter: the ``progress_hook`` of an extractor that batches by tokens.

    ``meter(rows, prompt_tokens, evaluated_tokens)`` (after each model call)
    advances ``bar`` by ``rows`` (so it shows rows/s and the ETA) and sets its
    postfix to the evaluated tokens/s and the share of the prompts' tokens
    that shared prefixes saved::

        extract text: 640/10015 rows (6%), 2.1 rows/s, ETA 1h14m, tokens/s=31.0 saved=41%

    >>> import io
    >>> log = io.StringIO()
    >>> with progress(total=4, desc="extract text", unit="rows", file=log) as bar:
    ...     meter = TokenProgress(bar)
    ...     meter(2, 60, 40)
    ...     meter(2, 60, 20)
    >>> log.getvalue().split(", ")[0], log.getvalue().strip().endswith("saved=50%")
    ('extract text: 4/4 rows (100%)', True)
    """

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.prompt = self.evaluated = self.rows = 0
        self._start = time.monotonic()

    def __call__(self, rows: int, prompt_tokens: int, evaluated_tokens: int) -> None:
        self.rows += rows
        self.prompt += prompt_tokens
        self.evaluated += evaluated_tokens
        elapsed = max(time.monotonic() - self._start, 1e-9)
        saved = 1 - self.evaluated / self.prompt if self.prompt else 0.0
        self.bar.set_postfix({"tokens/s": f"{self.evaluated / elapsed:.1f}", "saved": f"{saved:.0%}"})
        self.bar.update(rows)


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             disable: bool = False, leave: bool = False, file: IO[str] | None = None) -> Any:
    """A progress reporter fit to ``file`` (default ``sys.stderr``).

    Parameters
    ----------
    iterable, total, desc, unit
        As for ``tqdm``: wrap an iterable, or call ``update(n)`` yourself.
    disable
        Report nothing.
    leave
        On a terminal, keep the finished bar on screen.
    file
        The stream; a terminal gets a live ``tqdm`` bar, anything else
        (a pipe, a file) a :class:`LineProgress`.

    Returns
    -------
    tqdm or LineProgress
        Either way: ``update``, ``set_postfix``, ``close``, iteration, ``with``.
    """
    stream = file if file is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if not disable and callable(isatty) and isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, file=stream, disable=disable)
