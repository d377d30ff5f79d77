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
