"""The wheel claims only the ``embedstore`` import name and carries everything the package reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import embedstore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the tracked tree (setuptools writes build/ beside its sources)."""
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout: the wheel test builds from the tracked files")
    files = listing.stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("embedstore-*.whl")
    (out / "build.log").write_text(proc.stdout + proc.stderr)  # the build backend's own messages (-v)
    return whl


@pytest.mark.slow
def test_build_emits_no_deprecation_warning_and_metadata_is_complete(wheel):
    """``pip wheel`` (build isolation: the newest setuptools the project allows) warns about nothing in the
    project's metadata (a ``project.license`` table stops building after 2027-02-18), and the wheel says
    who made it, under which licence, and where to read more."""
    log = (wheel.parent / "build.log").read_text()
    warned = [ln.strip() for ln in log.splitlines() if "deprecat" in ln.lower() or "!!" in ln]
    assert not warned, warned[:5]
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT\n" in meta and "Author: embedstore developers\n" in meta
    assert "Project-URL: Homepage, https://" in meta and "Project-URL: Paper, https://arxiv.org/abs/2406.02601" in meta


@pytest.mark.slow
def test_wheel_has_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert z.read(info).decode().split() == ["embedstore"]
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"embedstore"}
    assert {"embedstore/cli/main.py", "embedstore/trainers/train.py", "embedstore/py.typed",
            "embedstore/extractors/backend_table.json"} <= set(names)
    assert "embedstore = embedstore.cli.main:main" in entry
    assert f"Version: {embedstore.__version__}\n" in meta
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert not any("==" in r and "extra ==" not in r for r in requires), "core dependencies are ranges"


@pytest.mark.slow
def test_installed_wheel_imports_without_the_source_tree(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import embedstore.cli.main, embedstore.trainers.train; "
            "import embedstore; print(embedstore.__file__); print(embedstore.trainers.train.__file__)")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(line.startswith(str(target)) for line in proc.stdout.split())
    assert not (target / "trainers").exists() and not (target / "cli").exists()
