"""Filters: one quoting helper, and user filters that can only narrow the scope the API sets."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import InputError
from tests.helpers import sample_rows, toy_model

INJECTIONS = ["1=1) OR (1=1", "sample_id = 'a0') OR (dataset = 'b'", "true) OR (true"]


@pytest.fixture
def two_datasets(store):
    """Datasets ``a`` and ``b`` sharing one embeddings table, ``b`` closer to the query."""
    model = toy_model(dim=3)
    rng = np.random.default_rng(0)
    for name, centre in (("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0])):
        ids = [f"{name}{i}" for i in range(6)]
        vecs = (np.array(centre, np.float32) + 0.01 * rng.standard_normal((6, 3))).astype(np.float32)
        store.write_embeddings(name, model, "image", ids, vecs, [f"h-{s}" for s in ids])
    return store, model


@pytest.mark.parametrize("engine", ["numpy", "lance"])
@pytest.mark.parametrize("where", INJECTIONS)
def test_where_injection_returns_no_foreign_ids(two_datasets, engine, where):
    store, model = two_datasets
    res = store.neighbors("a", model, "image", vector=[0.0, 1.0, 0.0], k=12, where=where, engine=engine)
    ids = res["sample_id"].to_pylist()
    assert ids and all(s.startswith("a") for s in ids), ids


@pytest.mark.parametrize("engine", ["numpy", "lance"])
def test_where_still_narrows_and_both_engines_agree(two_datasets, engine):
    store, model = two_datasets
    res = store.neighbors("a", model, "image", sample_id="a0", k=10,
                          where="sample_id NOT IN ('a1', 'b2')", engine=engine)
    assert sorted(res["sample_id"].to_pylist()) == ["a2", "a3", "a4", "a5"]


@pytest.mark.parametrize("engine", ["numpy", "lance"])
def test_bad_where_is_one_line_naming_the_filter(two_datasets, engine):
    store, model = two_datasets
    with pytest.raises(InputError) as err:
        store.neighbors("a", model, "image", vector=[1, 0, 0], where="no_such_column = 1", engine=engine)
    msg = str(err.value)
    assert "\n" not in msg and "no_such_column = 1" in msg and "sample_id" in msg


def test_samples_split_with_a_quote(store):
    store.write_samples("q", sample_rows(["x", "y", "z"], splits=["it's", "train", "it's"]))
    assert sorted(store.samples("q", split="it's")["sample_id"].to_pylist()) == ["x", "z"]
    assert store.samples("q", split=["train", "it's"]).num_rows == 3


def test_runs_and_models_lookups_survive_quotes(store):
    from embedstore.runs import list_runs

    assert list_runs(store, dataset="it's") == []
    model = toy_model(name="hf:it's")
    store.register_model(model)
    assert store.model(model.key, "image").model_id == "hf:it's"


def test_literal_doubles_quotes():
    from embedstore.sql import literal

    assert literal("a'; DROP") == "'a''; DROP'"
