"""Shared fixtures: a fresh on-disk store per test, offline hubs, the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Model hubs are unreachable: fail fast instead of hanging on retries.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("LANCEDB_LOG", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def store(tmp_path):
    """A new, empty store in a temporary directory (real LanceDB on disk)."""
    from embedstore import Store

    return Store(tmp_path / "store")


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data``; the test is skipped with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (only present in the lab checkout); "
                    "set EMBEDSTORE_SHARED_DATA to run this test")
    return SHARED_DATA


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A small manifest dataset and a tiny local model for multi-process tests (see tests/lab.py)."""
    from tests.lab import make_lab

    return make_lab(tmp_path_factory.mktemp("lab"))


@pytest.fixture(autouse=True)
def _no_user_store(monkeypatch, tmp_path):
    """Never touch the user's default store from a test."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # --backend auto reads only the table shipped with the catalog, never this machine's measurements
    monkeypatch.setenv("EMBEDSTORE_BACKEND_TABLE", str(tmp_path / "no-user-backend-table.json"))
    monkeypatch.delenv("EMBEDSTORE_URI", raising=False)


# Tiny models built from configs and saved through the real loading path (tests/tiny_models.py), once per module.
@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    from tests.tiny_models import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    from tests.tiny_models import make_tiny_vit

    return make_tiny_vit(tmp_path_factory.mktemp("vit") / "vit")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from tests.tiny_models import make_tiny_open_clip

    return make_tiny_open_clip(tmp_path_factory.mktemp("oc") / "oc")

