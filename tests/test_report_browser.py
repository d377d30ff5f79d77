"""The demo's HTML report in a real browser: headless Chromium from Debian's packages.

The set-up installs Chromium (``apt-get install chromium``) when it is
missing; the test is skipped, with the reason, only when that is impossible
(not root, no apt-get, or the install fails). The report is the demo's own
analysis (:func:`embedstore.trainers.demo.analyse`: baselines, gap, λ sweep, report) of a
small constructed store, so it holds every kind of figure the demo writes.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]

# Written into a copy of the report (the report itself has no script). The window's load event
# fires once every image has loaded or failed; the handler lists each image's natural size in a
# <pre id="img-probe"> synchronously, so the DOM that --dump-dom prints already holds it.
PROBE = """<script>
window.addEventListener("load", function () {
  var pre = document.createElement("pre");
  pre.id = "img-probe";
  pre.textContent = JSON.stringify(Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight};
  }));
  document.body.appendChild(pre);
});
</script>"""


def _find() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of a Chromium binary, installed from Debian's packages when missing."""
    found = _find()
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and there is no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get install chromium)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                pytest.skip(f"could not install chromium: {' '.join(cmd)} failed: {tail[0]}")
    except subprocess.TimeoutExpired:
        pytest.skip("could not install chromium: apt-get took longer than 15 minutes")
    found = _find()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def _browse(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A demo report of a small constructed store (baselines, gap, one λ sweep)."""
    from embedstore import Store
    from embedstore.pairs import toy_pairs
    from embedstore.trainers.demo import SYNTHETIC_BANNER, analyse

    tmp = tmp_path_factory.mktemp("report")
    store = Store(tmp / "store")
    img, txt = toy_pairs(store, "toy", n=40)
    res = analyse(store, "toy", image_model=img, text_model=txt, out=tmp, quick=True, banner=SYNTHETIC_BANNER,
                  progress=False)
    return Path(res["report"])


@pytest.mark.slow
def test_report_screenshot_is_not_blank(chromium, report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    _browse(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
    assert rgb.size == (1200, 1600)
    colours = rgb.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50, f"screenshot has only {len(colours)} colours: the page did not render"
    non_white = sum(n for n, c in colours if sum(c) < 720)
    assert non_white > 0.02 * 1200 * 1600, f"screenshot is almost blank ({non_white} non-white pixels)"
    banner = sum(n for n, c in colours if abs(c[0] - 0xff) < 6 and abs(c[1] - 0xf4) < 6 and abs(c[2] - 0xc2) < 6)
    assert banner > 1000, "the SYNTHETIC banner's background is not on screen: styles did not apply"


@pytest.mark.slow
def test_every_report_image_loads(chromium, report, tmp_path):
    page = report.read_text(encoding="utf-8")
    expected = len(re.findall(r"<img\b", page))
    assert expected >= 7  # four PCA views, before/after, paired cosine, the λ sweep
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _browse(chromium, tmp_path, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="img-probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: no #img-probe in the dumped DOM"
    images = json.loads(html.unescape(found.group(1)))
    assert len(images) == expected
    bad = [i for i in images if not (i["complete"] and i["naturalWidth"] > 0)]
    assert not bad, f"images that did not load: {bad}"
    assert all(i["naturalHeight"] > 0 for i in images)
