"""Maintenance locks: one owner at a time for ``compact``, ``cleanup`` and index builds.

Writes need no lock (see :mod:`embedstore.store`: declared primary keys and
Lance's conflict detection keep one row per key on every backend). What a
lock still buys is that two maintenance runs on one table do not redo each
other's work: concurrent compactions rewrite the same fragments and all but
one commit is retried or wasted; a ``cleanup`` racing a compaction may find
the files it planned to delete already gone. Either way no data is lost, so
the lock is an efficiency measure, not a safety one.

* It is an exclusive ``flock`` on ``<lock dir>/<table>.lock``. The kernel
  releases it when its holder dies, so a ``kill -9`` never blocks anyone.
* The holder writes ``pid@host since <time>`` into the file, and a run that
  times out names that holder and the file in its error.
* Lock directory (:func:`maintenance_lock_dir`): ``<store>/_locks`` for a
  local store (serialises every process of the machine, and every machine of
  an NFS mount with working ``flock``); for object-store URIs
  ``$EMBEDSTORE_LOCK_DIR`` when set (a directory every machine shares), else a
  per-machine directory under the user cache, which serialises maintenance on
  that machine only. Run ``compact``/``cleanup`` of an object store from one
  machine (e.g. one nightly job); it is still correct, only wasteful, if two
  machines run it at once.
* The table name is validated (:func:`embedstore.schema.check_table_name`)
  and the lock path asserted to lie inside the lock dir before anything is
  created, so a name such as ``../../x`` touches no file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import hashlib
import socket
import time
from pathlib import Path
from typing import Iterator

from .errors import InputError, StoreLockedError
from .schema import check_table_name

DEFAULT_TIMEOUT_S = float(os.environ.get("EMBEDSTORE_LOCK_TIMEOUT", "300"))


def maintenance_lock_dir(uri: str, is_local: bool) -> Path:
    """Where the maintenance locks of the store at ``uri`` live (see the module docstring).

    Examples
    --------
    >>> maintenance_lock_dir("/data/store", True)
    PosixPath('/data/store/_locks')
    """
    if is_local:
        return Path(uri) / "_locks"
    shared = os.environ.get("EMBEDSTORE_LOCK_DIR")
    if shared:
        return Path(shared)
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    return Path(os.path.expanduser("~")) / ".cache" / "embedstore" / "locks" / digest


@contextlib.contextmanager
def table_lock(lock_dir: Path, table: str, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[float]:
    """Hold the exclusive maintenance lock of ``table``; yields the seconds waited.

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
        raise InputError(f"cannot open the maintenance lock {path} ({exc.strerror}): compact/cleanup need write "
                         "access to the lock directory; fix its permissions, or for an object store point "
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
