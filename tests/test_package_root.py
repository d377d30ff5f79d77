"""The package root: every export resolves lazily, the pipelines included, and import embedstore stays light."""

from __future__ import annotations

import subprocess
import sys

import embedstore


def test_every_export_resolves():
    for name in embedstore.__all__:
        assert getattr(embedstore, name) is not None, name
    from embedstore.alignment import GapShift, align
    from embedstore.dataset import Dataset
    from embedstore.extract import extract
    from embedstore.ingest import ingest
    from embedstore.store import open_store

    assert (embedstore.ingest, embedstore.extract, embedstore.align) == (ingest, extract, align)
    assert embedstore.GapShift is GapShift and embedstore.Dataset is Dataset
    assert embedstore.connect is open_store and embedstore.open_store is open_store


def test_pipelines_stay_functions_after_their_submodules_are_imported():
    import embedstore.extract  # noqa: F401  (binds the submodule on the package)
    import embedstore.ingest  # noqa: F401

    assert callable(embedstore.extract) and embedstore.extract.__name__ == "extract"
    assert callable(embedstore.ingest) and embedstore.ingest.__name__ == "ingest"
    from embedstore.extract import ExtractReport  # the submodule is still importable

    assert ExtractReport.__module__ == "embedstore.extract"


def test_import_embedstore_loads_no_heavy_stack():
    code = ("import sys, embedstore; heavy = [m for m in ('lancedb', 'pyarrow', 'numpy', 'torch', 'polars') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
