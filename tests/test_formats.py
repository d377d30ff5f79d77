"""One serialisation protocol: every public result object has to_dict() (plain JSON-able values)."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pyarrow as pa
import pytest

from embedstore.formats import ToDict, convert, plain

#: module -> public result classes (reports, records, write results)
RESULTS = {
    "embedstore.writes": ["WriteResult"],
    "embedstore.versions": ["VersionInfo"],
    "embedstore.model_registry": ["AlignmentRecord"],
    "embedstore.identity": ["ModelIdentity"],
    "embedstore.runs": ["RunRecord"],
    "embedstore.heads": ["HeadArtifact"],
    "embedstore.snapshot": ["Selection"],
    "embedstore.maintenance": ["CompactResult", "CleanupResult"],
    "embedstore.doctor": ["Problem", "DoctorReport"],
    "embedstore.upgrade": ["UpgradeResult", "RepairResult"],
    "embedstore.reingest": ["SampleDiff"],
    "embedstore.report": ["ReportResult"],
    "embedstore.ingest": ["IngestReport"],
    "embedstore.extract": ["ExtractReport", "ModalityResult"],
    "embedstore.extract_inputs": ["SkippedSample"],
    "embedstore.alignment": ["AlignmentResult"],
    "embedstore.diagnostics": ["GapReport", "StageDiagnostics"],
    "embedstore.compare": ["Comparison"],
    "embedstore.sweep_records": ["SweepPoint"],
    "embedstore.sweep_intervals": ["PairedInterval"],
}


@pytest.mark.parametrize("module", sorted(RESULTS))
def test_every_public_result_has_to_dict(module):
    mod = importlib.import_module(module)
    for name in RESULTS[module]:
        assert callable(getattr(getattr(mod, name), "to_dict", None)), f"{module}.{name} lacks to_dict()"


def test_to_dict_values_are_json_able(store):
    from embedstore.maintenance import CleanupResult
    from embedstore.doctor import DoctorReport

    res = store.upsert("t", pa.table({"k": ["a"], "x": [1]}), key="k", tag="v1")
    assert json.loads(json.dumps(res.to_dict())) == res.to_dict()
    assert res.to_dict()["inserted"] == 1 and res.to_dict()["tag"] == "v1"
    assert CleanupResult("t", (1, 2), (), ()).to_dict()["removed"] == [1, 2]
    assert DoctorReport().to_dict() == {"tables": 0, "rows": 0, "problems": [], "ok": True}
    assert isinstance(res, ToDict)


def test_plain_and_convert():
    assert plain({"a": np.float32(1.5), "b": {2, 1}}) == {"a": 1.5, "b": [1, 2]}
    table = pa.table({"x": [1, 2]})
    assert convert(table, "arrow") is table and convert(table, "numpy")["x"].tolist() == [1, 2]
    from embedstore import InputError

    with pytest.raises(InputError, match="use arrow, polars or numpy"):
        convert(table, "pandas")
