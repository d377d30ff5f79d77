"""Model references at the edge: user spellings resolve through refs.lookup_model; the registry matches canonical ids."""

from __future__ import annotations

import json
import os

import pytest

from embedstore import AmbiguousModelError, ModelIdentity, NotFoundError
from embedstore.refs import canonical_ref, lookup_model
from tests.helpers import toy_model


def test_bare_hub_id_resolves_at_the_edge_not_in_the_registry(store):
    ident = toy_model(name="hf:org/name")
    store.models.register(ident)
    assert lookup_model(store, "org/name", "image") == ident == lookup_model(store, "hf:org/name")
    assert lookup_model(store, ident.key) == ident and lookup_model(store, ident) is ident
    with pytest.raises(NotFoundError):  # the registry itself parses no model ids...
        store.models.get("org/name", canonical=lambda r: r)
    # ...but refs installed its spelling map, so the old Store.model (and Snapshot) still take bare ids
    assert store.model("org/name", "image") == ident == store.models.get("hf:org/name")


def test_local_path_and_key_prefix(store, tmp_path):
    model_dir = tmp_path / "bert"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cls = ModelIdentity(f"hf:{model_dir}", "w", ("text",), {"text": 4}, pooling="cls")
    mean = ModelIdentity(f"hf:{model_dir}", "w", ("text",), {"text": 4}, pooling="mean")
    store.models.register(cls)
    rel = os.path.relpath(model_dir)
    assert canonical_ref(rel) == f"hf:{model_dir}" and lookup_model(store, rel, "text") == cls
    store.models.register(mean)
    with pytest.raises(AmbiguousModelError) as err:
        lookup_model(store, str(model_dir), "text")
    assert "@KEYPREFIX" in str(err.value) and "\n" not in str(err.value)
    assert lookup_model(store, f"{rel}@{mean.key[:6]}", "text") == mean


def test_not_a_model_id_passes_through(store):
    assert canonical_ref("not a model id") == "not a model id"
    with pytest.raises(NotFoundError) as err:
        lookup_model(store, "not a model id")
    assert "Run 'embedstore extract'" in str(err.value)
