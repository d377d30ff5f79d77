"""Tags as a manager, store.tags(table), as lancedb's tbl.tags; store.versions and store.tag delegate."""

from __future__ import annotations

import pyarrow as pa
import pytest

from embedstore import NotFoundError
from embedstore.versions import Tags


def test_tags_manager_create_list_delete(store):
    store.upsert("t", pa.table({"k": ["a"], "x": [1]}), key="k")
    store.upsert("t", pa.table({"k": ["a"], "x": [2]}), key="k")
    tags = store.tags("t")
    assert isinstance(tags, Tags) and tags == {} and tags.list() == {}
    assert tags.create("first", 1) == 1 and tags.create("latest") == 2
    assert tags == {"first": 1, "latest": 2} == store.tags("t").list() == store.tags("t")
    assert tags.get_version("first") == 1 and store.read("t", version="first")["x"].to_pylist() == [1]
    assert tags.create("first", 2) == 2 and store.tags("t")["first"] == 2  # create moves an existing tag
    tags.delete("first")
    assert tags == {"latest": 2} == store.tags("t")
    assert store.tag("t", "old", 1) == 1 and store.tags("t")["old"] == 1  # the old spelling
    assert [(v.version, v.tags) for v in store.versions("t")] == [(1, ("old",)), (2, ("latest",))]
    assert store.versions("t")[0].to_dict()["tags"] == ["old"]


def test_tags_of_a_missing_table(store):
    with pytest.raises(NotFoundError):
        store.tags("nope")
