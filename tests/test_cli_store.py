"""Store CLI commands through click's CliRunner, with --json parsed."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore import ModelIdentity, Store
from tests.helpers import sample_rows, toy_model


@pytest.fixture
def filled(tmp_path):
    uri = str(tmp_path / "store")
    store = Store(uri)
    model = toy_model(dim=3)
    rows = sample_rows(["a", "b", "c"], labels=["x", "y", "x"])
    store.write_samples("ds", rows)
    store.write_embeddings("ds", model, "image", ["a", "b", "c"],
                           np.array([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0]], np.float32),
                           rows["image_sha256"].to_pylist())
    return uri, model


def run(*args: str) -> dict | list:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_info_lists_tables_models_and_versions(filled):
    uri, model = filled
    data = run("--store", uri, "info", "--json")
    assert data["datasets"] == ["ds"]
    tables = {t["table"]: t for t in data["tables"]}
    assert tables["samples__ds"]["rows"] == 3 and tables["samples__ds"]["version"] == 1
    assert [m["model_key"] for m in data["models"]] == [model.key]
    text = CliRunner().invoke(cli, ["info", "--store", uri]).output
    assert "samples__ds" in text and model.key in text


def test_versions_and_tag(filled):
    uri, _ = filled
    assert run("--store", uri, "tag", "samples__ds", "v-one", "--json") == {
        "table": "samples__ds", "tag": "v-one", "version": 1}
    rows = run("--store", uri, "versions", "samples__ds", "--json")
    assert rows[0]["version"] == 1 and rows[0]["tags"] == "v-one"


def test_neighbors_by_sample_and_by_vector_file(filled, tmp_path):
    uri, model = filled
    rows = run("--store", uri, "neighbors", "ds", "--model", model.key, "--modality", "image",
               "--sample", "a", "-k", "2", "--json")
    assert [r["sample_id"] for r in rows] == ["c", "b"]
    vec = tmp_path / "q.npy"
    np.save(vec, np.array([0, 1, 0], np.float32))
    rows = run("--store", uri, "neighbors", "ds", "--model", "hf:toy", "--modality", "image",
               "--vector-file", str(vec), "-k", "1", "--metric", "l2", "--json")
    assert rows == [{"sample_id": "b", "distance": 0.0}]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_writes_labels_and_vectors(filled, tmp_path, suffix):
    uri, model = filled
    out = tmp_path / f"out{suffix}"
    assert run("--store", uri, "export", "ds", "--model", model.key, "--modality", "image",
               "--out", str(out), "--json") == {"rows": 3, "out": str(out)}
    frame = pl.read_parquet(out) if suffix == ".parquet" else pl.read_csv(out)
    assert frame.height == 3 and "label" in frame.columns
    if suffix == ".csv":
        assert {"image_0", "image_1", "image_2"} <= set(frame.columns)


def test_errors_are_one_line_with_nonzero_exit(filled, tmp_path):
    uri, _ = filled
    result = CliRunner().invoke(cli, ["--store", uri, "versions", "nope"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "table 'nope' does not exist" in result.output
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "no" / "where"), "info"])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_an_id_naming_two_identities_is_a_one_line_error_listing_them(filled, tmp_path):
    uri, cls_model = filled
    store = Store(uri)
    mean_model = ModelIdentity(cls_model.model_id, cls_model.weights, ("image",), {"image": 3}, pooling="mean")
    rows = store.samples("ds")
    store.write_embeddings("ds", mean_model, "image", ["a", "b", "c"], np.eye(3), rows["image_sha256"].to_pylist())
    out = tmp_path / "x.parquet"
    result = CliRunner().invoke(cli, ["--store", uri, "export", "ds", "--model", "hf:toy", "--modality", "image",
                                      "--out", str(out)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: model 'hf:toy' names 2")
    for ident in (cls_model, mean_model):
        assert f"{ident.key} (pooling {ident.pooling}, dtype fp32, weights weights-sha)" in lines[0]
    assert "hf:toy@" in lines[0] and not out.exists()
    assert run("--store", uri, "export", "ds", "--model", f"hf:toy@{mean_model.key[:8]}", "--modality", "image",
               "--out", str(out), "--json")["rows"] == 3
    assert pl.read_parquet(out)["vector"].to_list()[0] == [1.0, 0.0, 0.0]
