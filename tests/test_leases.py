"""Leases: a long reader keeps the versions it reads through another member's ``cleanup --older-than 0``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore.leases import hold, leased_versions, leases
from embedstore.maintenance import cleanup
from embedstore.schema import embeddings_table
from tests.helpers import sample_rows, toy_model

ROOT = Path(__file__).resolve().parents[1]
IMAGE, TEXT = toy_model(32, "image", "hf:img"), toy_model(32, "text", "hf:txt")
N = 240


def _vectors(store, seed: int):
    ids = [f"s{i:03d}" for i in range(N)]
    rows = sample_rows(ids, labels=[str(i % 3) for i in range(N)],
                       splits=(["train"] * 6 + ["val"] * 2 + ["test"] * 2) * (N // 10))
    if seed == 0:
        store.write_samples("toy", rows)
    rng = np.random.default_rng(seed)
    for model, col in ((IMAGE, "image_sha256"), (TEXT, "text_sha256")):
        store.write_embeddings("toy", model, model.modalities[0], ids, rng.normal(size=(N, 32)), rows[col].to_pylist())


def test_a_lease_is_renewed_while_held_and_expires_when_its_holder_is_gone(store, monkeypatch):
    _vectors(store, 0)
    monkeypatch.setenv("EMBEDSTORE_LEASE_TTL", "1")
    lease = hold(store, {"samples__toy": 1})
    first = leases(store)[0]["expires"]
    time.sleep(1.6)  # past the first expiry: the renewer thread has moved it on
    assert leases(store) and leases(store)[0]["expires"] > first
    held = leased_versions(store)
    assert list(held) == ["samples__toy"] and held["samples__toy"][1][0].startswith(f"pid {os.getpid()}@")
    lease.release()
    assert leases(store) == []
    # a holder killed without releasing: its lease file stays, and counts only until it expires
    path = Path(store.uri) / "_leases" / "dead-1-x.json"
    path.write_text('{"holder": "pid 1@gone", "user": "x", "command": "train", "expires": %f, '
                    '"versions": {"samples__toy": [1]}}' % (time.time() + 0.5))
    assert leased_versions(store)["samples__toy"][1][0].startswith("pid 1@gone")
    time.sleep(0.7)
    assert leased_versions(store) == {}


@pytest.mark.slow
def test_cleanup_older_than_0_during_a_long_streaming_train_keeps_its_versions_and_the_train_completes(store):
    _vectors(store, 0)
    tables = [embeddings_table(IMAGE.key, "image", 32), embeddings_table(TEXT.key, "text", 32)]
    read = {t: store.version(t) for t in tables}
    env = os.environ | {"PYTHONPATH": str(ROOT), "EMBEDSTORE_LEASE_TTL": "3", "LANCEDB_LOG": "error"}
    train = subprocess.Popen(
        [sys.executable, "-m", "embedstore.cli.main", "--store", store.uri, "train", "toy",
         "--image-model", IMAGE.key, "--text-model", TEXT.key, "--split", "paper", "--loader", "stream",
         "--epochs", "400", "--patience", "400", "--batch-size", "16", "--no-record", "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not any(set(tables) <= set(lease["versions"]) for lease in leases(store)):
            assert train.poll() is None, train.communicate()
            assert time.time() < deadline, "the train never took its lease"
            time.sleep(0.2)
        _vectors(store, 1)  # another member re-extracts: the versions the train reads become old
        time.sleep(4)  # longer than the lease's time-to-live: only renewal keeps it
        assert train.poll() is None, "the train ended before cleanup ran: make it longer"
        out = CliRunner().invoke(cli, ["--store", store.uri, "cleanup", "--older-than", "0"], obj={})
        assert out.exit_code == 0, out.output
        assert "kept (and why)" in out.output and "lease pid" in out.output
        for t in tables:
            assert read[t] in [v.version for v in store.versions(t)], t
        stdout, stderr = train.communicate(timeout=600)
    finally:
        if train.poll() is None:
            train.kill()
    assert train.returncode == 0, stderr[-3000:]
    assert "macro_f1" in stdout
    # the lease went with the train: now nothing keeps those versions
    assert leases(store) == []
    removed = {r.table: r.removed for r in cleanup(store, 0)}
    for t in tables:
        assert read[t] in removed[t]


def _child_reads(uri: str) -> None:
    from embedstore import Store

    store = Store(uri)
    held = hold(store, {"samples__toy": 1})
    assert held.held and len(leases(store)) == 2  # its own lease file beside its parent's


def test_a_forked_child_holds_its_own_lease_and_leaves_its_parents_alone(store):
    import multiprocessing

    _vectors(store, 0)
    lease = hold(store, {"samples__toy": 1})
    proc = multiprocessing.get_context("fork").Process(target=_child_reads, args=(store.uri,))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    mine = [x for x in leases(store) if x["holder"].startswith(f"pid {os.getpid()}@")]
    assert len(mine) == 1 and mine[0]["versions"] == {"samples__toy": [1]}
    lease.release()
