"""The registries as managers on the store: store.models, store.alignments (old methods delegate)."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import NotFoundError
from embedstore.model_registry import AlignmentRecord
from tests.helpers import toy_model


def test_models_manager_register_get_list(store):
    a, b = toy_model(name="hf:a"), toy_model(dim=8, name="hf:b")
    assert store.models.list() == [] and store.models() == []
    assert store.models.register(a) == a.key and store.register_model(b) == b.key
    assert store.models.register(a) == a.key  # the same identity twice: a no-op
    assert sorted(m.model_id for m in store.models.list()) == ["hf:a", "hf:b"]
    assert store.models.list() == store.models()
    assert store.models.get("hf:b", "image") == b == store.model(b.key)
    assert store.models.identity(a) is a and store.models.identity("hf:a") == a
    with pytest.raises(NotFoundError):
        store.models.get("hf:a", "text")
    assert {m["model_key"] for m in store.info()["models"]} == {a.key, b.key}


def test_alignments_manager(store):
    assert store.alignments.list() == [] and store.alignments() == []
    key = store.alignments.register("al-1", "gapshift", {"lam": 1.0}, np.ones(3))
    assert key == "al-1" and store.register_alignment("al-1", "gapshift", {"lam": 2.0}, np.zeros(3)) == "al-1"
    rec = store.alignments.get("al-1")
    assert isinstance(rec, AlignmentRecord) and rec.settings == {"lam": 1.0}
    assert store.alignment("al-1").to_dict() == rec.to_dict()
    assert rec.to_dict() == {"alignment_key": "al-1", "method": "gapshift", "settings": {"lam": 1.0},
                             "gap": [1.0, 1.0, 1.0]}
    with pytest.raises(NotFoundError):
        store.alignments.get("nope")
