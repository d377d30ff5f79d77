"""A store written exactly as embedstore 0.1 wrote it (before keys were declared), for upgrade tests.

:class:`ReleaseStore` replaces only the commit step of
:meth:`embedstore.store.Store.upsert` with 0.1's (``git show
6de74f8:embedstore/store.py``, ``Store._commit``): tables created from the
given schema as is (nullable key, no primary-key metadata) and a plain
``merge_insert``. Everything above it (ingest, toy pairs, training, runs,
tags) is the current code, so the tables, versions, tags and run records are
what a lab's existing store holds.
"""

from __future__ import annotations

from embedstore import Store
from embedstore.writes import drop_identical


class ReleaseStore(Store):
    """Writes tables without declared keys, as embedstore 0.1 did."""

    def _write_once(self, name, data, key, schema, skip_unchanged, prune, state):
        state["attempts"] += 1
        if not self.has_table(name):
            tbl = self.db.create_table(name, data, schema=schema, exist_ok=False)
            return int(tbl.version), data.num_rows, 0
        if skip_unchanged and data.num_rows:
            fresh = drop_identical(self.read(name), data, key)
            state["unchanged"] = data.num_rows - fresh.num_rows
            data = fresh
        if data.num_rows == 0:
            return self.version(name), 0, 0
        res = (self.db.open_table(name).merge_insert(key).when_matched_update_all()
               .when_not_matched_insert_all().execute(data))
        return int(res.version), int(res.num_inserted_rows), int(res.num_updated_rows)
