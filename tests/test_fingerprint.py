"""The fingerprints that decide "nothing changed" (a second demo or report reuses everything) are never fooled."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from embedstore.fingerprint import backend_table_path, code_stamp, environment_stamp, files_stamp, store_stamp
from embedstore.pairs import toy_pairs


def test_store_stamp_moves_with_every_commit_and_tag_and_only_then(store):
    toy_pairs(store, "toy", n=12)
    first = store_stamp(store)
    assert store_stamp(store) == first  # reading changes nothing
    store.samples("toy")
    store.neighbors("toy", "hf:toy-image", "image", sample_id="toy-0001", k=3)
    assert store_stamp(store) == first
    store.tags("samples__toy").create("looked-at")  # a tag is not a new version, but it is a change
    tagged = store_stamp(store)
    assert tagged != first
    store.upsert("notes", pa.table({"id": ["a"], "v": [1]}), key="id")  # a new table
    created = store_stamp(store)
    assert created not in (first, tagged)
    store.upsert("notes", pa.table({"id": ["a"], "v": [2]}), key="id")  # a new version of it
    assert store_stamp(store) != created


def test_files_stamp_sees_content_size_time_and_new_files(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    first = files_stamp(tmp_path)
    assert files_stamp(tmp_path) == first
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.pyc").write_bytes(b"compiled")  # caches are not inputs
    assert files_stamp(tmp_path) == first
    (tmp_path / "a.txt").write_text("y")  # same size, new modification time
    import os

    os.utime(tmp_path / "a.txt", ns=(1, 1))
    assert files_stamp(tmp_path) != first
    again = files_stamp(tmp_path)
    (tmp_path / "b.txt").write_text("")
    assert files_stamp(tmp_path) != again


def test_code_and_environment_stamps_are_stable_and_the_backend_table_path_is_the_extractors(monkeypatch, tmp_path):
    from embedstore.extractors.backends import user_table_file

    assert code_stamp() == code_stamp() and environment_stamp() == environment_stamp()
    assert backend_table_path() == user_table_file()
    before = environment_stamp()
    table = tmp_path / "table.json"
    table.write_text("{}")
    monkeypatch.setenv("EMBEDSTORE_BACKEND_TABLE", str(table))  # another backend table may pick other backends
    assert backend_table_path() == user_table_file() == table
    assert environment_stamp() != before
    assert np.all(np.asarray([len(code_stamp()), len(environment_stamp())]) == 16)
