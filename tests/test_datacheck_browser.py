"""``embedstore explore`` in a real browser: the server starts on 127.0.0.1 and headless Chromium shows the points.

60 dev1000 photos are ingested, embedded (``builtin:efficientnet-lite0``) and checked; ``embedstore explore``
runs as a user would start it (a subprocess, ``--layout pca`` for speed), and Chromium, driven over the DevTools
protocol (:mod:`tests.cdp`), waits until embedding-atlas reports every point loaded, lists the samples with their
thumbnails and the check's flag columns.

embedding-atlas draws its map with WebGPU and requires the ``shader-f16`` feature; the only WebGPU adapter of a
machine without a GPU is Chromium's SwiftShader, which lacks it, so there the map panel says "WebGPU is
unavailable" and the test checks the points in the app's table, counts and histograms. Where an adapter with
``shader-f16`` exists the map must draw: the test then also requires pixels in the map panel.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import pytest

from tests.test_report_browser import chromium  # noqa: F401 (the fixture: Debian's chromium, installed if missing)

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]
N = 60


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    src = SHARED_DATA / "ham10000-dev1000"
    if not src.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent; set EMBEDSTORE_SHARED_DATA to run this test")
    pytest.importorskip("embedding_atlas", reason="the explore extra: pip install 'embedstore[explore]'")
    import embedstore
    from embedstore import Store
    from embedstore.trainers.checks import check
    from tests.planted import read_rows, write_copy

    tmp = tmp_path_factory.mktemp("explore")
    folder = write_copy(read_rows(src, N, seed=2), src, tmp / "copy")
    store = Store(tmp / "store")
    embedstore.ingest(store, "ham10000", folder, name="small", progress=False)
    embedstore.extract(store, "small", "builtin:efficientnet-lite0", modality="image", progress=False)
    rep = check(store, "small", k=3)
    return store, rep


def _start(store_uri: str, port: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "embedstore.cli.main", "--store", store_uri, "explore", "small",
                             "--layout", "pca", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if found:
                return proc, found.group(0)
        if proc.poll() is not None:
            raise AssertionError(f"explore exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
    proc.kill()
    raise AssertionError("explore did not announce its URL within 5 minutes")


def test_explore_serves_the_points_to_chromium(chromium, checked, tmp_path):  # noqa: F811
    from PIL import Image

    from tests.cdp import Browser, free_port

    store, rep = checked
    proc, url = _start(str(store.uri), free_port())
    try:
        assert url.startswith("http://127.0.0.1:")
        with Browser(chromium, tmp_path / "profile") as page:
            page.open(url)
            shown = page.wait_for(f"document.body && /{N}\\s*\\/\\s*{N} points/.test(document.body.innerText) "
                                  "&& document.body.innerText", timeout=180)
            # the data table lists the samples, with their thumbnails decoded
            page.wait_for("Array.from(document.images).filter(i => i.src.startsWith('data:image/jpeg') "
                          "&& i.complete && i.naturalWidth > 0).length > 0", timeout=60)
            shown = page.evaluate("document.body.innerText")
            webgpu = "WebGPU is unavailable" not in shown
            time.sleep(3)
            shot = page.screenshot(tmp_path / "explore.png")
        assert "label" in shown and "split_grouped" in shown and "flags" in shown
        assert re.search(r"ISIC_\d{7}", shown), "no sample id in the table"
        with Image.open(shot) as im:
            rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50, "the page did not render"
        if webgpu:  # an adapter with shader-f16: the map panel (top left) must hold drawn points
            panel = rgb.crop((60, 80, 900, 420))
            assert len(panel.getcolors(maxcolors=1 << 20) or []) > 20, "the map panel is empty"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
