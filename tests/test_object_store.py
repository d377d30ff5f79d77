"""A store on object storage: s3:// against a real local S3-compatible server (moto).

Everything goes over HTTP to the server in :mod:`s3_server`; nothing is
mocked inside embedstore or LanceDB.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from embedstore import InputError, Store
from tests.helpers import sample_rows, toy_model
from tests.s3_server import moto_endpoint, s3  # noqa: F401  (fixtures)

IDENT = toy_model(4)


def _samples(n: int = 6, prefix: str = "s") -> pa.Table:
    return sample_rows([f"{prefix}{i}" for i in range(n)], splits=["train"] * (n - 2) + ["test"] * 2,
                       image_hashes=[f"ih{i}" for i in range(n)])


def _vectors(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)


def test_store_round_trip_on_s3(s3, tmp_path):
    store = Store(s3.uri("lab"), storage_options=s3.options)
    assert store.list_tables() == []
    assert not store.is_local

    first = store.write_samples("toy", _samples(), tag="ingest-1")
    assert (first.inserted, first.tag) == (6, "ingest-1")
    assert store.write_samples("toy", _samples()).changed is False  # identical re-ingest: no new version

    vecs = _vectors(4)
    ids = ["s0", "s1", "s2", "s3"]
    res = store.write_embeddings("toy", IDENT, "image", ids, vecs, [f"ih{i}" for i in range(4)], tag="extract-1")
    assert res.inserted == 4

    # Reads, versions and tags come back from the bucket.
    got_ids, got = store.embeddings("toy", IDENT.key, "image", as_="numpy")
    np.testing.assert_allclose(got[np.argsort(got_ids)], vecs, atol=0)
    table = store.embedding_tables()[0]
    assert store.tags(table) == {"extract-1": res.version}
    assert [v.tags for v in store.versions(table)][-1] == ("extract-1",)
    assert store.tags("samples__toy") == {"ingest-1": 2}  # version 1: the empty table (see Store._create_keyed)
    assert store.samples("toy", split="test")["sample_id"].to_pylist() == ["s4", "s5"]

    # The compute-once cache: only the two samples without vectors are missing.
    assert sorted(store.missing("toy", IDENT, "image")["sample_id"].to_pylist()) == ["s4", "s5"]
    near = store.neighbors("toy", IDENT.key, "image", sample_id="s0", k=2)
    assert near.num_rows == 2 and "s0" not in near["sample_id"].to_pylist()

    # The data really lives in the bucket under the store's prefix; writes take no lock at all.
    keys = s3.keys("lab/")
    assert any(k.startswith(f"lab/{table}.lance/data/") for k in keys)
    assert any(k.startswith("lab/samples__toy.lance/_refs/tags/") for k in keys)
    assert store.lock_dir == tmp_path / "locks" and not (tmp_path / "locks").exists()


def test_second_machine_reuses_vectors(s3):
    """A second client (another machine) sees the first one's vectors and computes nothing again."""
    a = Store(s3.uri("shared"), storage_options=s3.options)
    a.write_samples("toy", _samples(4))
    a.write_embeddings("toy", IDENT, "image", ["s0", "s1", "s2", "s3"], _vectors(4), ["ih0", "ih1", "ih2", "ih3"])

    b = Store(s3.uri("shared"), storage_options=s3.options)
    assert b.missing("toy", IDENT, "image").num_rows == 0
    # Same content under another dataset: reused by hash, no forward pass needed.
    b.write_samples("copy", _samples(4, prefix="o"))
    assert b.missing("copy", IDENT, "image").num_rows == 0
    reused = b.reuse_by_hash("copy", IDENT, "image")
    assert reused.inserted == 4
    copy_ids, copied = b.embeddings("copy", IDENT.key, "image", as_="numpy")
    src_ids, src = a.embeddings("toy", IDENT.key, "image", as_="numpy")
    by_id = dict(zip(src_ids, src))
    np.testing.assert_array_equal(copied, np.stack([by_id["s" + i[1:]] for i in copy_ids]))


def test_cli_against_s3(s3, tmp_path, monkeypatch):
    from embedstore.cli.main import cli

    store = Store(s3.uri("lab"), storage_options=s3.options)
    store.write_samples("toy", _samples())
    store.write_embeddings("toy", IDENT, "image", [f"s{i}" for i in range(6)], _vectors(6),
                           [f"ih{i}" for i in range(6)])
    runner = CliRunner()

    # Group-level --store / --storage-option.
    out = runner.invoke(cli, ["--store", s3.uri("lab"), *s3.cli_options(), "info", "--json"], obj={})
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert info["uri"] == s3.uri("lab") and info["datasets"] == ["toy"]
    assert {t["table"]: t["rows"] for t in info["tables"]}["samples__toy"] == 6

    # Per-command options.
    out = runner.invoke(cli, ["neighbors", "toy", "--model", IDENT.key, "--modality", "image",
                              "--sample", "s1", "-k", "3", "--json", "--store", s3.uri("lab"),
                              *s3.cli_options()], obj={})
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)) == 3

    # Options from EMBEDSTORE_STORAGE_<KEY> environment variables.
    for key, value in s3.options.items():
        monkeypatch.setenv(f"EMBEDSTORE_STORAGE_{key.upper()}", value)
    target = tmp_path / "toy.parquet"
    out = runner.invoke(cli, ["--store", s3.uri("lab"), "export", "toy", "--model", IDENT.key,
                              "--modality", "image", "--out", str(target)], obj={})
    assert out.exit_code == 0, out.output
    assert "wrote 6 rows" in out.output and target.exists()
    out = runner.invoke(cli, ["--store", s3.uri("lab"), "versions", "samples__toy", "--json"], obj={})
    assert out.exit_code == 0 and json.loads(out.output)[0]["version"] == 1


@pytest.mark.parametrize("break_it, expect", [
    (lambda s3, o: (f"s3://no-such-bucket-{s3.bucket}/x", o), "bucket does not exist"),
    (lambda s3, o: (s3.uri(), {k: v for k, v in o.items() if k != "allow_http"}), "allow_http=true"),
])
def test_bad_object_store_settings_fail_in_one_line(s3, break_it, expect):
    uri, opts = break_it(s3, dict(s3.options))
    with pytest.raises(InputError) as err:
        Store(uri, storage_options=opts).list_tables()
    msg = str(err.value)
    assert expect in msg and uri in msg and "\n" not in msg


def test_cli_reports_bad_bucket_without_traceback(s3):
    from embedstore.cli.main import cli

    uri = f"s3://missing-{s3.bucket}/lab"
    out = CliRunner().invoke(cli, ["--store", uri, *s3.cli_options(), "info"], obj={})
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [f"Error: cannot open store {uri}: the bucket does not exist: "
                                               f"create it first (e.g. 'aws s3 mb s3://missing-{s3.bucket}')"]


@pytest.mark.parametrize("opts", [
    {"aws_endpoint": "{ep}", "aws_region": "us-east-1", "aws_allow_http": "true"},
])
def test_aws_prefixed_option_names_work_too(s3, opts):
    """LanceDB accepts both ``endpoint`` and ``aws_endpoint`` spellings; both reach the server."""
    full = {**{k: v.format(ep=s3.endpoint) for k, v in opts.items()},
            "aws_access_key_id": s3.options["aws_access_key_id"],
            "aws_secret_access_key": s3.options["aws_secret_access_key"]}
    store = Store(s3.uri("alias"), storage_options=full)
    store.upsert("t", pa.table({"k": ["a"], "x": [1]}), key="k")
    assert Store(s3.uri("alias"), storage_options=s3.options).read("t").num_rows == 1


def test_the_api_reads_storage_options_from_the_environment_like_the_cli(s3, monkeypatch):
    """``Store("s3://...")`` with no storage_options uses EMBEDSTORE_STORAGE_*; an explicit option wins."""
    for key, value in s3.options.items():
        monkeypatch.setenv(f"EMBEDSTORE_STORAGE_{key.upper()}", value)
    store = Store(s3.uri("env"))
    store.write_samples("toy", _samples(2))
    assert store.list_tables() == ["samples__toy"] and store.storage_options == s3.options
    other = Store(s3.uri("env"), storage_options={"endpoint": "http://127.0.0.1:9"})
    assert other.storage_options == s3.options | {"endpoint": "http://127.0.0.1:9"}
    with pytest.raises(InputError, match="connection refused"):
        other.list_tables()
