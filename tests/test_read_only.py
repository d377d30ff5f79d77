"""A lab member who may only read the store: every read and analysis command works, nothing is written.

The store is made by this (root) process and left as a lab server leaves it:
owned by root, folders 0755, files 0644. The commands then run as the
unprivileged user ``nobody`` (``setpriv``, keeping only the capability to
*read* any file so that the interpreter under /root stays reachable): that
user really cannot write the store. Without root, the test makes the store
read-only for itself instead.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from embedstore import Store
from embedstore.pairs import toy_pairs

ROOT = Path(__file__).resolve().parents[1]


def _unprivileged() -> list[str] | None:
    """The command prefix that runs a command as ``nobody`` (None when this process is not root)."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and no unprivileged user 'nobody' exists to run the read-only member")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without 'setpriv' to drop to the user 'nobody'")
    return [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def _tree(path: Path) -> dict[str, str]:
    """Every file of the store (leases aside) with the sha256 of its bytes."""
    out = {}
    for dirpath, _, files in os.walk(path):
        if "_leases" in Path(dirpath).parts:
            continue
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def read_only(tmp_path_factory):
    from embedstore.trainers.train import train

    base = Path(tempfile.mkdtemp(prefix="embedstore-read-only-"))  # /tmp, reachable by every user
    os.chmod(base, 0o755)
    store = Store(base / "store")
    img, txt = toy_pairs(store, "toy", n=40, image_dim=8, text_dim=5)
    run = train(store, "toy", image_model=img, text_model=txt, epochs=2, seeds=1, split_by="paper").runs[0]
    prefix = _unprivileged()
    for dirpath, dirs, files in os.walk(base / "store"):
        if Path(dirpath).name == "_leases":
            continue  # the lease folder stays writable by all (1777): members hold leases too
        os.chmod(dirpath, 0o755 if prefix else 0o555)
        for f in files:
            os.chmod(Path(dirpath) / f, 0o644 if prefix else 0o444)
    home = base / "home"
    home.mkdir()
    if prefix:
        os.chown(home, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    yield base / "store", home, prefix, img, txt, run.run_id
    for dirpath, _, _ in os.walk(base):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(base, ignore_errors=True)


#: Runs CLI commands in one interpreter (as the member), each as ``embedstore ARGS`` would: exit code and output.
_RUNNER = """
import json, sys, warnings
from click.testing import CliRunner
from embedstore.cli.main import cli
out = {}
for name, args in json.loads(sys.argv[1]).items():
    warnings.resetwarnings()
    import embedstore.leases as leases
    leases._WARNED.clear()
    res = CliRunner().invoke(cli, args, obj={})
    out[name] = [res.exit_code, res.stdout, res.stderr, repr(res.exception) if res.exit_code not in (0, 1) else ""]
print("RESULTS" + json.dumps(out))
"""


def _member(store: Path, home: Path, prefix, commands: dict[str, list[str]]) -> dict[str, list]:
    """``{name: [exit code, stdout, stderr, exception]}`` of each CLI command, run as the member."""
    import json

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(ROOT),
           "XDG_CACHE_HOME": str(home / ".cache"), "EMBEDSTORE_URI": str(store), "LANCEDB_LOG": "error",
           "HF_HUB_OFFLINE": "1", "MPLCONFIGDIR": str(home / ".mpl")}
    cmd = [*(prefix or []), sys.executable, "-c", _RUNNER, json.dumps(commands)]
    res = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0 and "RESULTS" in res.stdout, res.stderr[-3000:]
    return json.loads(res.stdout.split("RESULTS", 1)[1])


@pytest.mark.slow
def test_a_member_who_cannot_write_the_store_runs_every_read_and_analysis_command(read_only):
    store, home, prefix, img, txt, run_id = read_only
    before = _tree(store)
    models = ["--image-model", img, "--text-model", txt]
    commands = {
        "tag (a write)": ["tag", "samples__toy", "mine"],
        "info": ["info"],
        "neighbors": ["neighbors", "toy", "--model", img, "--modality", "image", "--sample", "toy-0001", "-k", "3"],
        "export": ["export", "toy", "--model", txt, "--modality", "text", "--out", str(home / "t.parquet")],
        "train --no-record": ["train", "toy", *models, "--no-record", "--epochs", "2", "--split", "paper",
                              "--no-progress"],
        "gap": ["gap", "toy", *models, "--lam", "0.5", "--max-queries", "10"],
        "sweep --no-record": ["sweep", "toy", *models, "--lambdas", "0,1", "--no-record", "--epochs", "2",
                              "--split", "paper", "--out", str(home / "sweep.png"), "--no-progress"],
        "report": ["report", "toy", "--out", str(home / "report.html"), "--max-queries", "10"],
        "predict --out": ["predict", "toy", "--run", run_id, "--out", str(home / "p.csv")],
    }
    results = _member(store, home, prefix, commands)
    code, _, err, _ = results.pop("tag (a write)")
    assert code == 1 and "read-only" in err, err  # the member really cannot write
    for name, (code, out, err, exc) in results.items():
        assert code == 0, f"{name}: {exc} {err[-2000:]} {out[-1000:]}"
        assert "without a lease" not in err, f"{name}: {err[-2000:]}"  # _leases is 1777: they hold one
    assert _tree(store) == before  # not one byte of the store changed
    for out in ("t.parquet", "sweep.png", "report.html", "p.csv"):
        assert (home / out).stat().st_size > 0
    cache = home / ".cache" / "embedstore" / "alignments"
    cached = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(p.suffix == ".json" for p in cached), "the member's alignments live in their own cache"
    # the same alignment asked again is read from that cache (nothing refitted or rewritten); then a lease
    # folder they cannot write (an owner who tightened it): the command still runs, and says so once
    leases = store / "_leases"
    os.chmod(leases, 0o755 if prefix else 0o555)
    try:
        again = _member(store, home, prefix, {
            "gap again": ["gap", "toy", *models, "--lam", "0.5", "--max-queries", "10"],
            "export without a lease": ["export", "toy", "--model", img, "--modality", "image", "--out",
                                       str(home / "i.parquet")]})
    finally:
        os.chmod(leases, 0o1777)
    assert [r[0] for r in again.values()] == [0, 0], again
    assert {p: p.stat().st_mtime_ns for p in cached} == cached
    assert {p for p in cache.rglob("*") if p.is_file()} == set(cached)
    notes = "".join(r[2] for r in again.values())
    assert notes.count("reading without a lease") == 1 and "chmod 1777" in notes
    assert _tree(store) == before
