"""The benchmark scripts run end to end in quick mode (smoke tests: no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA


def _run(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_efficiency_quick_writes_its_tables(tmp_path):
    # real HAM10000 images when ../shared/data is present, the labelled synthetic demo images otherwise
    data = SHARED_DATA / "ham10000-dev270"
    out = _run("efficiency.py", "--quick", "--out", str(tmp_path), "--data", str(data if data.is_dir() else tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "efficiency.md").read_text()
    assert ("real HAM10000 images" if data.is_dir() else "SYNTHETIC demo images") in text
    assert "| dataset | method | fusion | train s/epoch |" in text
    for name in ("BRSET", "HAM10000", "SatelliteBench", "DINOv2+LLaMA", "CLIP", "raw frozen", "raw finetune"):
        assert f"| {name} |" in text
    assert "747.94 [747.94]" in text and "2.38 [2.38]" in text  # model MiB beside the paper's
    assert (tmp_path / "efficiency.png").stat().st_size > 10_000


def test_store_benchmark_quick_writes_its_table(tmp_path):
    out = _run("store.py", "--quick", "--out", str(tmp_path / "store.md"))
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "store.md").read_text()
    assert "exact, numpy engine (cached matrix)" in text and "ivf_flat" in text and "np.load" in text


def test_extract_backends_section_from_the_rows_of_a_run_cut_short(tmp_path):
    import json

    cands = [{"backend": b, "dtype": "fp32", "quiet": q, "loaded": ld, "quiet_x": q / 10.0, "loaded_x": ld / 5.0,
              "rounds": {"quiet": [q / 10.0] * 3, "loaded": [ld / 5.0] * 3}, "min_round_x": min(q / 10.0, ld / 5.0),
              "min_cos": 1.0, "probe_cos": 1.0} for b, q, ld in (("torch", 10.0, 5.0), ("onnxruntime", 30.0, 20.0))]
    row = {"label": "builtin:minilm-l6 (real weights)", "catalog_id": "builtin:minilm-l6", "modality": "text",
           "rows": 64, "batch": 32, "cands": cands, "load": [1.0, 2.0]}
    partial = tmp_path / "rows.json"
    partial.write_text(json.dumps({"info": {"logical_cpus": "2", "load_avg_1m": "1.00", "load_avg_1m_end": "2.00"},
                                   "repeats": 3, "rows": [row]}))
    out = tmp_path / "extract.md"
    out.write_text("# Extraction benchmark\n\n<!-- backends: begin -->\nold\n<!-- backends: end -->\n")
    res = _run("extract.py", "--from-partial", str(partial), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    text = out.read_text()
    assert "old" not in text and text.count("<!-- backends: begin -->") == 1
    assert "| onnxruntime fp32 | 30.00 | **3.00x** | 20.00 | **4.00x** | 3.00x |" in text
    assert "cut short: builtin:minilm-l6 (real weights) (of 5)" in text and "load_avg_1m_end 2.00" in text


@pytest.mark.slow
def test_aligned_reads_quick_times_stored_and_computed_rows():
    out = _run("aligned_reads.py", "--quick")
    assert out.returncode == 0, out.stderr[-3000:]
    for method in ("gapshift", "center", "procrustes"):
        assert f"| {method} | memory |" in out.stdout and f"| {method} | stream |" in out.stdout
    assert "computed / stored" in out.stdout


@pytest.mark.slow
def test_demo_benchmark_measures_first_and_second_runs_quiet_and_loaded(tmp_path):
    out = _run("demo.py", "--only", "quick", "--samples", "24", "--out", str(tmp_path / "demo.md"), timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "demo.md").read_text()
    assert "| `embedstore demo --quick` (160 samples) | quiet |" in text and "| loaded |" in text
    assert text.count("| yes |") == 2  # both second runs reused everything
    assert "flags: avx2" in text and "synthetic samples: 24" in text
