"""``embedstore index`` (and its neighbours' use of it) through click's CliRunner on a real store."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from embedstore import Store
from embedstore.cli.main import cli
from tests.helpers import sample_rows, toy_model


def _store(tmp_path, n: int = 64):
    store = Store(str(tmp_path / "store"))
    model = toy_model(dim=8)
    ids = [f"s{i:03d}" for i in range(n)]
    rows = sample_rows(ids, labels=["x", "y"] * (n // 2))
    store.write_samples("ds", rows)
    vecs = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    store.write_embeddings("ds", model, "image", ids, vecs, rows["image_sha256"].to_pylist())
    return store, model, vecs


def test_index_builds_a_vector_index_that_neighbors_use(tmp_path):
    store, model, vecs = _store(tmp_path)
    res = CliRunner().invoke(cli, ["--store", store.uri, "index", "--model", model.key, "--modality", "image",
                                   "--partitions", "2", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["rows"] == 64 and out["kind"] == "ivf_flat" and out["indices"]
    assert store.open_table(out["table"]).list_indices()  # the index is on the store's table
    near = store.neighbors("ds", model, "image", vector=vecs[0], k=3, use_index=True, nprobes=2)
    assert near["sample_id"].to_pylist()[0] == "s000"
    text = CliRunner().invoke(cli, ["--store", store.uri, "index", "--model", model.key, "--modality", "image",
                                    "--partitions", "2"])
    assert text.exit_code == 0 and f"index built on {out['table']}" in text.output


def test_index_of_an_unknown_model_is_one_line(tmp_path):
    store, _, _ = _store(tmp_path, n=8)
    res = CliRunner().invoke(cli, ["--store", store.uri, "index", "--model", "hf:none", "--modality", "image"])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1 and "hf:none" in res.output
