"""The dataset handle, store.dataset(name): the store's reads for one dataset, as Rows."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from embedstore import Dataset, Rows
from tests.helpers import sample_rows, toy_model


def _toy(store):
    model = toy_model(dim=3)
    rows = sample_rows(["a", "b", "c"], splits=["train", "test", "train"], labels=["0", "1", "0"])
    store.write_samples("ds", rows)
    vecs = np.arange(9, dtype=np.float32).reshape(3, 3) + 1
    store.write_embeddings("ds", model, "image", ["a", "b"], vecs[:2], rows["image_sha256"].to_pylist()[:2])
    return model, vecs


def test_handle_reads_equal_the_store_methods(store):
    model, vecs = _toy(store)
    ds = store.dataset("ds")
    assert isinstance(ds, Dataset) and ds.exists and not store.dataset("nope").exists
    samples = ds.samples(split="train")
    assert isinstance(samples, Rows) and samples.to_arrow().equals(store.samples("ds", split="train"))
    assert samples.to_numpy()["sample_id"].tolist() == ["a", "c"]
    emb = ds.embeddings(model.key, "image")
    ids, mat = store.embeddings("ds", model.key, "image", as_="numpy")  # the old tuple stays
    assert emb.to_numpy()["sample_id"].tolist() == ids == ["a", "b"]
    assert np.array_equal(emb.to_numpy()["vector"], mat) and np.array_equal(emb.matrix(), vecs[:2])
    assert isinstance(emb.to_polars(), pl.DataFrame) and emb.to_polars().height == 2
    assert ds.missing(model, "image").to_pylist()[0]["sample_id"] == "c"
    near = ds.neighbors(model.key, "image", sample_id="a", k=1).to_arrow()
    assert near.equals(store.neighbors("ds", model.key, "image", sample_id="a", k=1))
    assert ds.split_column() == "split_paper"


def test_handle_export_and_write(store, tmp_path):
    model, _ = _toy(store)
    ds = store.dataset("ds")
    n = ds.export(model.key, "image", str(tmp_path / "out.parquet"))
    assert n == 2 and pl.read_parquet(tmp_path / "out.parquet")["sample_id"].to_list() == ["a", "b"]
    res = ds.write_samples(sample_rows(["a", "b", "c"], splits=["train", "test", "train"], labels=["0", "1", "0"]))
    assert not res.changed  # identical rows: no new version


def test_rows_formats():
    rows = Rows(pa.table({"sample_id": ["a"], "vector": pa.array([[1.0, 2.0]], pa.list_(pa.float32(), 2))}))
    assert rows.to("arrow") is rows.to_arrow() and rows.to("numpy")["sample_id"].tolist() == ["a"]
    assert rows.to_numpy()["vector"].shape == (1, 2) and len(rows) == 1 and rows.columns == ["sample_id", "vector"]
