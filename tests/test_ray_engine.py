"""``extract --engine ray``: same vectors as the local engine, compute-once, kill-safe, clean shutdown.

Every Ray run is a CLI subprocess in its own session with ``HOME`` and
``RAY_TMPDIR`` pointing into a temporary folder, so Ray's auth token and
session files land there; the fixture kills whatever is left of that session
and deletes the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from embedstore import Store
from embedstore.extract import extract
from embedstore.schema import EMB_KEY
from tests.helpers import sample_rows
from tests.s3_server import moto_endpoint, s3  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from embedstore.cli.main import main; main()"]


class RaySandbox:
    """Runs CLI subprocesses whose Ray files stay in one temporary folder."""

    def __init__(self) -> None:
        # Short path: Ray's unix sockets live under RAY_TMPDIR (limit ~107 characters).
        self.root = Path(tempfile.mkdtemp(prefix="esray-"))
        self.env = dict(os.environ, HOME=str(self.root / "home"), RAY_TMPDIR=str(self.root / "tmp"),
                        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
        (self.root / "home").mkdir()
        self.sessions: list[int] = []

    def start(self, args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(CLI + args, cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.sessions.append(proc.pid)
        return proc

    def run(self, args: list[str], timeout: float = 240) -> dict:
        proc = self.start(args)
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-3000:]
        return json.loads(out)

    def leftovers(self, session: int) -> list[int]:
        import psutil

        out = []
        for p in psutil.process_iter():
            try:
                if p.pid != session and os.getsid(p.pid) == session and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p.pid)
            except (ProcessLookupError, psutil.Error, OSError):
                continue
        return out

    def wait_gone(self, session: int, timeout: float = 30) -> list[int]:
        """The session's processes still alive after ``timeout`` s (Ray's workers exit a moment after shutdown)."""
        deadline = time.monotonic() + timeout
        while (left := self.leftovers(session)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left

    def kill_session(self, session: int) -> None:
        for pid in self.leftovers(session) + [session]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def close(self) -> None:
        for session in self.sessions:
            self.kill_session(session)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def sandbox():
    pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    box = RaySandbox()
    try:
        yield box
    finally:
        box.close()
    assert not box.root.exists()


def _images(folder: Path, n: int) -> list[str]:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(1)
    refs = []
    for i in range(n):
        p = folder / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(20 + i, 30, 3), dtype=np.uint8)).save(p)
        refs.append(str(p))
    (folder / "broken.png").write_bytes(b"")  # skipped and reported by both engines
    refs[3] = str(folder / "broken.png")
    return refs


def _rows(n: int, refs: list[str] | None = None):
    ids = [f"s{i:03d}" for i in range(n)]
    texts = [f"patient {i} lesion melanoma aged {20 + i} years" + " the" * (i % 5) for i in range(n)]
    rows = sample_rows(ids, texts=texts)
    if refs is not None:
        from embedstore.keys import sha256_file

        rows = rows.set_column(rows.schema.get_field_index("image_ref"), "image_ref", [refs])
        rows = rows.set_column(rows.schema.get_field_index("image_sha256"), "image_sha256",
                               [[sha256_file(r) for r in refs]])  # the files' bytes: extract checks them
    return rows


def _by_id(store: Store, model_key: str, modality: str) -> dict[str, np.ndarray]:
    ids, vecs = store.embeddings("toy", model_key, modality, as_="numpy")
    return dict(zip(ids, vecs))


def _rows_and_keys(store: Store, table: str) -> tuple[int, int]:
    keys = store.read(table, columns=[EMB_KEY])[EMB_KEY].to_pylist()
    return len(keys), len(set(keys))


#: A driver whose Ray worker dies mid-task: Ray then prints "(raylet) A worker died ..." on the driver.
#: It waits (up to 60 s) until that message was printed, then prints its one JSON line as --json does.
DYING_WORKER = """
import io, json, os, sys, time
import ray
from embedstore.engines.ray_engine import RayEngine

class Tee(io.TextIOBase):
    def __init__(self, *streams): self.streams = streams
    def write(self, s):
        for st in self.streams: st.write(s)
        return len(s)
    def flush(self):
        for st in self.streams: st.flush()

seen = io.StringIO()
sys.stderr = Tee(sys.__stderr__, seen)
engine = RayEngine({}, workers=1)
engine._ensure_ray()

@ray.remote(max_retries=0)
def die():
    os._exit(1)

try:
    ray.get(die.remote())
    crashed = False
except Exception:
    crashed = True
deadline = time.monotonic() + 60
while "died" not in seen.getvalue() and time.monotonic() < deadline:
    time.sleep(0.2)
engine.close()
print(json.dumps({"crashed": crashed, "message_seen": "died" in seen.getvalue()}))
"""


@pytest.mark.ray
@pytest.mark.slow
def test_ray_never_prints_on_stdout_even_when_a_worker_dies(sandbox):
    """'(raylet) A worker died ...' goes to stderr, so ``--json`` output on stdout stays one parseable document."""
    proc = subprocess.Popen([sys.executable, "-c", DYING_WORKER], cwd=REPO, env=sandbox.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    sandbox.sessions.append(proc.pid)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert json.loads(out) == {"crashed": True, "message_seen": True}, (out, err[-3000:])  # stdout: the JSON only
    assert "(raylet)" in err and "died" in err  # Ray's message was printed, on stderr
    assert sandbox.wait_gone(proc.pid) == []


@pytest.mark.ray
@pytest.mark.slow
def test_ray_engine_matches_local_then_computes_nothing(sandbox, tmp_path, s3):
    """The scale-out set-up in miniature: Ray actors embed, the driver writes to an s3:// store."""
    from tests.tiny_models import make_tiny_clip_hf

    model = make_tiny_clip_hf(tmp_path / "clip", projection_dim=16)
    rows = _rows(14, _images(tmp_path / "img", 14))
    local, remote = Store(tmp_path / "local"), Store(s3.uri("ray"), storage_options=s3.options)
    sandbox.env["EMBEDSTORE_LOCK_DIR"] = os.environ["EMBEDSTORE_LOCK_DIR"]
    local.write_samples("toy", rows)
    remote.write_samples("toy", rows)
    ref = extract(local, "toy", model, batch_size=4, progress=False)

    args = ["extract", "toy", "--model", model, "--batch-size", "4", "--chunk-rows", "5", "--engine", "ray",
            "--workers", "2", "--store", s3.uri("ray"), *s3.cli_options(), "--json"]
    first = sandbox.run(args)
    assert first["model_key"] == ref.model_key and first["computed"] == ref.computed == 2 * 14 - 1
    assert [s["sample_id"] for r in first["results"] for s in r["skipped"]] == ["s003"]
    assert [s.sample_id for s in ref.skipped] == ["s003"]
    assert sandbox.wait_gone(sandbox.sessions[-1]) == []  # the local Ray instance shut down

    for modality in ("image", "text"):
        want, got = _by_id(local, ref.model_key, modality), _by_id(remote, ref.model_key, modality)
        assert sorted(got) == sorted(want)
        np.testing.assert_allclose(np.stack([got[k] for k in sorted(want)]),
                                   np.stack([want[k] for k in sorted(want)]), atol=1e-6, rtol=0)
        table = ref.result(modality).table
        n, unique = _rows_and_keys(remote, table)
        assert n == unique == len(want)
        assert first["tag"] in remote.tags(table)

    # Second run: nothing is missing, so no model load, no version, and not even a Ray start. (Image
    # s003 stays missing, as with the local engine, and would be retried and skipped again each run.)
    table = ref.result("text").table
    version, sessions = remote.version(table), sorted((sandbox.root / "tmp" / "ray").glob("session_2*"))
    second = sandbox.run(args[:-1] + ["--modality", "text", "--json"])
    assert (second["computed"], second["reused"], second["forward_calls"]) == (0, 0, 0)
    assert remote.version(table) == version
    assert sorted((sandbox.root / "tmp" / "ray").glob("session_2*")) == sessions


@pytest.mark.ray
@pytest.mark.slow
def test_killed_ray_run_resumes_with_one_row_per_key(sandbox, tmp_path):
    from tests.tiny_models import make_tiny_bert

    model = make_tiny_bert(tmp_path / "bert")
    n = 240
    store = Store(tmp_path / "store")
    store.write_samples("toy", _rows(n))
    args = ["extract", "toy", "--model", model, "--modality", "text", "--batch-size", "2", "--chunk-rows", "2",
            "--engine", "ray", "--workers", "2", "--store", str(tmp_path / "store"), "--json", "--no-progress"]

    proc = sandbox.start(args)
    deadline = time.monotonic() + 240
    table = None
    while time.monotonic() < deadline and proc.poll() is None:
        tables = store.embedding_tables(modality="text")
        if tables and store.open_table(tables[0]).count_rows() >= 4:
            table = tables[0]
            break
        time.sleep(0.05)
    assert table is not None, proc.communicate()[1][-3000:] if proc.poll() is not None else "no rows in 240 s"
    os.kill(proc.pid, signal.SIGKILL)  # kill the driver only; its Ray daemons are orphaned
    proc.wait()
    sandbox.kill_session(proc.pid)
    done, unique = _rows_and_keys(store, table)
    assert 4 <= done < n and done == unique  # midway, and committed chunks are whole

    resumed = sandbox.run(args)
    assert resumed["computed"] == n - done
    rows, unique = _rows_and_keys(store, table)
    assert rows == unique == n

    # And the vectors are what the local engine computes.
    local = Store(tmp_path / "local")
    local.write_samples("toy", _rows(n))
    ref = extract(local, "toy", model, modality="text", batch_size=2, progress=False)
    want, got = _by_id(local, ref.model_key, "text"), _by_id(store, ref.model_key, "text")
    np.testing.assert_allclose(np.stack([got[k] for k in sorted(want)]),
                               np.stack([want[k] for k in sorted(want)]), atol=1e-6, rtol=0)


def test_ray_engine_without_ray_says_install_the_extra(store, tmp_path):
    """With Ray not importable, ``--engine ray`` fails in one line naming the extra."""
    store.write_samples("toy", _rows(3))
    code = ("import sys; sys.modules['ray'] = None\n"  # makes 'import ray' raise ImportError
            "from embedstore.cli.main import main; main()")
    out = subprocess.run([sys.executable, "-c", code, "extract", "toy", "--model", "builtin:minilm-l6",
                          "--engine", "ray", "--store", store.uri], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("Error: ray is not installed: pip install 'embedstore[ray]'")


def test_worker_errors_become_one_line_embedstore_errors():
    """An actor that fails to start reaches the driver only as text; its embedstore error is rebuilt."""
    from embedstore.engines.ray_engine import RayEngineError, _worker_error
    from embedstore.errors import InputError

    text = ("The actor died because of an error raised in its creation task\nTraceback (most recent call last):\n"
            '  File "ray_engine.py", line 230, in __init__\nembedstore.errors.InputError: worker model hf:x has '
            "model_key a, the driver expected b: install identical weights and library settings on every node")
    err = _worker_error(RuntimeError(text))
    assert type(err) is InputError and str(err).startswith("worker model hf:x has model_key a")
    other = _worker_error(RuntimeError("Traceback ...\nMemoryError: out of memory"))
    assert isinstance(other, RayEngineError) and "\n" not in str(other) and "MemoryError" in str(other)


_PRIVACY_PROBE = """
import json, os, time, psutil
from embedstore.engines.ray_engine import RayEngine

eng = RayEngine({"model_id": "builtin:minilm-l6"})
ray = eng._ensure_ray()
ray.get(ray.remote(lambda: 1).remote())  # a worker process is up too
session = os.getsid(0)
mine = {p.pid for p in psutil.process_iter() if os.getsid(p.pid) == session}
listening = sorted({c.laddr.ip for c in psutil.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN and c.pid in mine})
folder = eng._session_dir
st = os.stat(folder)
inside = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
eng.close()
print(json.dumps({"listening": listening, "folder": folder, "mode": st.st_mode & 0o777, "uid": st.st_uid,
                  "files": len(inside), "exists_after": os.path.exists(folder),
                  "env_after": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}))
"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_local_ray_instance_listens_on_loopback_only_with_private_session_files(sandbox):
    """Without --ray-address, every process of the instance listens on 127.0.0.1 and its files are this user's."""
    proc = subprocess.Popen([sys.executable, "-c", _PRIVACY_PROBE], cwd=REPO, env=sandbox.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    sandbox.sessions.append(proc.pid)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    got = json.loads(out.strip().splitlines()[-1])
    assert got["listening"] and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in got["listening"]), got
    assert got["folder"].startswith(sandbox.env["RAY_TMPDIR"]) and got["mode"] == 0o700 and got["uid"] == os.getuid()
    assert got["files"] > 0 and not got["exists_after"]  # Ray's logs and sockets were in it; removed at shutdown
    assert got["env_after"] is None  # the process can still join remote clusters afterwards
