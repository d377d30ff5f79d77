"""Leases: a reader tells ``cleanup`` which table versions it is still reading.

Lance's ``cleanup_old_versions`` deletes the files of old versions even
while another process scans them (lance issue 6607), so a ``train`` or
``predict`` of an hour could lose its files to another member's
``cleanup``. Every read through :class:`~embedstore.snapshot.Snapshot`
(training, ``rerun``, ``predict``, ``export``, ``report``, ``gap``...)
therefore holds a **lease** on the versions it pinned:

* one small JSON file per process and store in the lease directory
  (:func:`lease_dir`), naming the holder (``pid@host``, user, command), its
  ``{table: [versions]}`` and an expiry ``ttl`` seconds ahead
  (``$EMBEDSTORE_LEASE_TTL``, default 600);
* a daemon thread renews the process's leases every ``ttl / 3`` seconds
  while it runs; the file is removed when the process exits, and a
  killed holder's lease simply expires;
* :func:`embedstore.maintenance.cleanup` keeps every version named by an
  unexpired lease and says which holder kept it. A lease is written under a
  shared ``flock`` of ``<lease dir>/.lock`` and cleanup decides and deletes
  a table's versions under the exclusive one, so a lease is either seen by
  a cleanup or written after that cleanup finished deleting.

Where leases live: ``<store>/_leases`` for a local store, created with mode
``1777`` (like ``/tmp``) so that members who may only read the store can
hold leases too; for object stores ``$EMBEDSTORE_LEASE_DIR`` (a folder every
machine that reads or cleans the store shares), else a folder of this
machine's cache, which protects only against cleanups run on the same
machine. A reader that cannot write the lease directory reads without a
lease and says so once (:data:`NO_LEASE_NOTE`).

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> lease = hold(s, {"samples__toy": 3})
>>> leased_versions(s)["samples__toy"][3][0].startswith("pid ")
True
>>> lease.release(); leased_versions(s)
{}
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

#: Seconds a lease lives unless renewed (``$EMBEDSTORE_LEASE_TTL``).
DEFAULT_TTL_S = 600.0
#: Longest a lease may claim, whatever its file says (a lease is advisory, not a lock on the store).
MAX_TTL_S = 24 * 3600.0
NO_LEASE_NOTE = ("embedstore: reading without a lease ({why}): a 'cleanup' by another member may delete the "
                 "versions this command reads while it runs; ask the store's owner to make {dir} writable "
                 "for you (chmod 1777), or set EMBEDSTORE_LEASE_DIR to a folder shared with whoever runs cleanup")


def ttl_s() -> float:
    """The lease time-to-live in seconds (``$EMBEDSTORE_LEASE_TTL``, default 600)."""
    try:
        return min(MAX_TTL_S, max(1.0, float(os.environ.get("EMBEDSTORE_LEASE_TTL", DEFAULT_TTL_S))))
    except ValueError:
        return DEFAULT_TTL_S


def lease_dir(store) -> Path:
    """The folder holding the leases of ``store`` (see the module docstring)."""
    if store.is_local:
        return Path(store.uri) / "_leases"
    if os.environ.get("EMBEDSTORE_LEASE_DIR"):
        return Path(os.environ["EMBEDSTORE_LEASE_DIR"])
    digest = hashlib.sha256(store.uri.encode()).hexdigest()[:12]
    return Path(os.path.expanduser("~")) / ".cache" / "embedstore" / "leases" / digest


@contextlib.contextmanager
def lease_lock(store, exclusive: bool):
    """A shared (lease writers) or exclusive (cleanup) ``flock`` of ``<lease dir>/.lock``; best effort.

    A member who cannot create the lock file takes a shared lock on an
    existing one opened read-only, or goes on without it.
    """
    path = lease_dir(store) / ".lock"
    fd = None
    if exclusive:
        with contextlib.suppress(OSError):
            _make_lease_dir(store, path.parent)
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(path, flags, 0o666)
            break
        except OSError:
            continue
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ProcessLease:
    """This process's lease on one store: the versions its live readers hold, renewed until released."""

    def __init__(self, store, directory: Path) -> None:
        self.store, self.dir = store, directory
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        self.written = 0.0

    def _payload(self) -> dict[str, Any]:
        versions: dict[str, list[int]] = {}
        for (table, version), n in self.counts.items():
            if n > 0:
                versions.setdefault(table, []).append(int(version))
        now = time.time()
        return {"holder": f"pid {os.getpid()}@{socket.gethostname()}", "user": _user(),
                "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
                "renewed": now, "expires": now + ttl_s(), "versions": {t: sorted(v) for t, v in versions.items()}}

    def write(self) -> None:
        """Write (or renew) the lease file; remove it when nothing is held."""
        with self.lock:
            payload = self._payload()
            self.written = payload["renewed"]
            if not payload["versions"]:
                with contextlib.suppress(OSError):
                    self.path.unlink()
                return
            tmp = self.path.with_name("." + self.path.name + ".tmp")
            tmp.write_text(json.dumps(payload, sort_keys=True))
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)

    def add(self, versions: dict[str, int]) -> None:
        with self.lock:
            self.counts.update((t, int(v)) for t, v in versions.items())
        with lease_lock(self.store, exclusive=False):
            self.write()

    def remove(self, versions: dict[str, int]) -> None:
        with self.lock:
            self.counts.subtract((t, int(v)) for t, v in versions.items())
            self.counts = Counter({k: n for k, n in self.counts.items() if n > 0})
        with contextlib.suppress(OSError):
            self.write()


class Lease:
    """A reader's hold on ``versions`` (``release()`` it, or let it go with the reader or the process)."""

    def __init__(self, owner: ProcessLease | None, versions: dict[str, int]) -> None:
        self.owner, self.versions, self.released = owner, dict(versions), False

    @property
    def held(self) -> bool:
        """True when a lease file protects these versions."""
        return self.owner is not None and not self.released

    def release(self) -> None:
        """Stop holding the versions (idempotent)."""
        if self.held:
            self.owner.remove(self.versions)
        self.released = True

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


#: ``{(pid, lease dir): ProcessLease}``: a forked child (multiprocessing) gets its own lease file and renewer.
_OWNERS: dict[tuple[int, str], ProcessLease | None] = {}
_GUARD = threading.Lock()
_RENEWER_PID: int | None = None
_WARNED: set[str] = set()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (a container's uid)
        return str(os.getuid())


def _owner(store) -> ProcessLease | None:
    """This process's :class:`ProcessLease` of ``store``, or ``None`` when its lease folder is not writable."""
    directory = lease_dir(store)
    key = (os.getpid(), str(directory))
    with _GUARD:
        if key in _OWNERS:
            return _OWNERS[key]
        owner = None
        why = None
        try:
            _make_lease_dir(store, directory)
            if os.access(directory, os.W_OK | os.X_OK):
                owner = ProcessLease(store, directory)
            else:
                why = f"cannot write {directory}"
        except OSError as exc:
            why = f"cannot create {directory}: {exc.strerror}"
        _OWNERS[key] = owner
        if owner is None and str(directory) not in _WARNED:
            _WARNED.add(str(directory))
            warnings.warn(NO_LEASE_NOTE.format(why=why, dir=directory), UserWarning, stacklevel=3)
        _start_renewer()
        return owner


def _make_lease_dir(store, directory: Path) -> None:
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        if store.is_local:
            os.chmod(directory, 0o1777)  # members who may only read hold leases too (like /tmp)


def _mine() -> list[ProcessLease]:
    pid = os.getpid()
    return [o for (p, _), o in list(_OWNERS.items()) if p == pid and o is not None]


def _renew_all() -> None:
    while True:
        time.sleep(0.25)
        for owner in _mine():
            if time.time() - owner.written >= ttl_s() / 3:
                with contextlib.suppress(OSError):
                    owner.write()


def _start_renewer() -> None:
    global _RENEWER_PID
    if _RENEWER_PID != os.getpid():
        _RENEWER_PID = os.getpid()
        threading.Thread(target=_renew_all, name="embedstore-lease-renewer", daemon=True).start()


@atexit.register
def _release_all() -> None:
    for owner in _mine():
        with contextlib.suppress(OSError):
            owner.path.unlink()


def hold(store, versions: dict[str, int]) -> Lease:
    """Lease ``{table: version}`` of ``store`` for this process (until released, or the process ends).

    Never fails a read: without a writable lease folder the returned lease
    is not :attr:`~Lease.held` and a note says so once per store.
    """
    owner = _owner(store)
    if owner is not None:
        try:
            owner.add(versions)
        except OSError as exc:
            warnings.warn(NO_LEASE_NOTE.format(why=f"cannot write {owner.path}: {exc.strerror}", dir=owner.dir),
                          UserWarning, stacklevel=2)
            owner = None
    return Lease(owner, versions)


def leases(store) -> list[dict[str, Any]]:
    """Every unexpired lease of ``store``: ``{"holder", "user", "command", "expires", "versions", "path"}``."""
    directory = lease_dir(store)
    out = []
    now = time.time()
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            info = json.loads(path.read_text())
            expires = min(float(info["expires"]), path.stat().st_mtime + MAX_TTL_S)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if expires > now:
            out.append({**info, "expires": expires, "path": str(path)})
    return out


def leased_versions(store) -> dict[str, dict[int, list[str]]]:
    """``{table: {version: [holder descriptions]}}`` of the unexpired leases of ``store``."""
    out: dict[str, dict[int, list[str]]] = {}
    for info in leases(store):
        who = f"{info.get('holder')} ({info.get('user')}: {info.get('command') or '?'})"
        for table, versions in (info.get("versions") or {}).items():
            for v in versions:
                out.setdefault(table, {}).setdefault(int(v), []).append(who)
    return out
