"""Per-table writer locks.

LanceDB's concurrent ``merge_insert`` on overlapping keys duplicates rows
(measured: 5 of 5 trials), so all writes to one table are serialised by an
exclusive ``flock`` on ``<lock dir>/<table>.lock``.

* The kernel releases an ``flock`` when its holder dies, so a lock left by a
  ``kill -9`` never blocks anyone: the next writer simply acquires it.
* The holder writes ``pid@host since <time>`` into the lock file, and a writer
  that times out names that holder and the file in its error.
* The table name is validated (:func:`embedstore.schema.check_table_name`)
  and the lock path asserted to lie inside the lock dir before anything is
  created, so a name such as ``../../x`` touches no file.
* For local stores the lock dir is ``<store>/_locks``; for object-store URIs
  it is ``$EMBEDSTORE_LOCK_DIR`` (point every machine of a lab at one shared
  directory) or, failing that, a per-machine directory under the user cache.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from .errors import InputError, StoreLockedError
from .schema import check_table_name

DEFAULT_TIMEOUT_S = float(os.environ.get("EMBEDSTORE_LOCK_TIMEOUT", "300"))


@contextlib.contextmanager
def table_lock(lock_dir: Path, table: str, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[float]:
    """Hold the exclusive writer lock of ``table``; yields the seconds waited.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with table_lock(Path(tempfile.mkdtemp()), "t") as waited:
    ...     waited < 1.0
    True
    """
    path = lock_dir / f"{check_table_name(table)}.lock"
    if path.resolve().parent != lock_dir.resolve():  # never a file outside the lock dir
        raise InputError(f"writer lock {path} would lie outside the lock directory {lock_dir}: "
                         "use a table listed by 'embedstore info'")
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise InputError(f"cannot open the writer lock {path} ({exc.strerror}): every writer needs write access "
                         "to the lock directory; fix its permissions, or for an object store point "
                         "EMBEDSTORE_LOCK_DIR at a shared writable directory") from None
    start = time.monotonic()
    try:
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - start > timeout:
                    holder = _read_holder(path)
                    raise StoreLockedError(
                        f"table '{table}' is locked by {holder or 'another writer'} "
                        f"({path}); waited {timeout:.0f}s. If that process is gone the "
                        "lock frees itself; otherwise wait or raise EMBEDSTORE_LOCK_TIMEOUT"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        waited = time.monotonic() - start
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}@{socket.gethostname()} since {time.ctime()}".encode(), 0)
        yield waited
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""
