"""The demo's HTML report in a real browser: headless Chromium from Debian's packages.

The set-up installs Chromium (``apt-get install chromium``) when it is
missing; the test is skipped, with the reason, only when that is impossible
(not root, no apt-get, or the install fails). The report is the demo's own
analysis (:func:`embedstore.trainers.demo.analyse`: baselines, gap, λ sweep, report) of a
small constructed store, so it holds every kind of figure the demo writes.

What a reader relies on: the page renders; every image loads; with every
folded part opened no element is wider than its box and the page needs no
horizontal scrolling; every figure labels its axes and keeps its text
inside (each PNG describes itself: :func:`embedstore.figures.figure_info`);
every interval of a metric lies in [0, 1]; and the "no alignment" row the
gap shift is compared with in the results table is the sweep's own reference.
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


# Opens every <details>, then lists each element whose content is wider than its box, and the page's widths.
OVERFLOW_PROBE = """<script>
window.addEventListener("load", function () {
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  var doc = document.documentElement, bad = [];
  Array.prototype.forEach.call(document.body.querySelectorAll("*"), function (el) {
    var r = el.getBoundingClientRect();
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== "inline") {
      bad.push({tag: el.tagName, text: (el.textContent || "").slice(0, 80), scroll: el.scrollWidth, client: el.clientWidth});
    }
    if (r.right > doc.clientWidth + 1) {
      bad.push({tag: el.tagName, text: (el.textContent || "").slice(0, 80), right: r.right, page: doc.clientWidth});
    }
  });
  var pre = document.createElement("pre");
  pre.id = "overflow-probe";
  pre.textContent = JSON.stringify({bad: bad, scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
                                    details: document.querySelectorAll("details").length});
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
    store = Store(tmp / "store")  # the tests find the store beside the report
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
    assert expected >= 7  # confusion, before/after, two 3-D views, paired cosine, the methods, the λ sweep
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


def _probe(chromium, report: Path, tmp_path: Path, script: str, element: str, width: int = 1200):
    page = report.read_text(encoding="utf-8")
    probe = tmp_path / f"{element}.html"
    probe.write_text(page.replace("</body>", script + "</body>"), encoding="utf-8")
    dom = _browse(chromium, tmp_path, f"--window-size={width},1600", "--virtual-time-budget=15000", "--dump-dom",
                  probe.as_uri()).stdout
    found = re.search(rf'<pre id="{element}">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run: no #{element} in the dumped DOM"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.parametrize("width", [1200, 900])
def test_no_element_overflows_its_box_with_every_fold_open(chromium, report, tmp_path, width):
    found = _probe(chromium, report, tmp_path, OVERFLOW_PROBE, "overflow-probe", width)
    assert found["details"] >= 3  # per-class scores, gap details, the sweep, every run: folded
    assert found["bad"] == [], f"elements wider than their box at {width} px: {found['bad'][:5]}"
    assert found["scrollWidth"] <= found["clientWidth"], found


def _tables(page: str) -> list[list[dict[str, str]]]:
    """Every <table> of the page as rows of {header: cell text}."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell, self.row = [], None, None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.row = []
                self.tables[-1].append(self.row)
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("td", "th") and self.cell is not None:
                self.row.append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(page)
    return [[dict(zip(t[0], r)) for r in t[1:]] for t in parser.tables if t]


@pytest.mark.slow
def test_figures_labelled_unclipped_and_intervals_in_range(report):
    import base64

    from embedstore.figures import figure_info

    page = report.read_text(encoding="utf-8")
    figures = 0
    for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page):
        info = figure_info(base64.b64decode(data))
        if alt == "sample":  # a held-back sample's thumbnail, not a figure
            continue
        figures += 1
        assert info, f"figure {alt!r} carries no description"
        for ax in info["axes"]:
            labels = [ax["xlabel"], ax["ylabel"]] + ([ax["zlabel"]] if ax["kind"] == "3d" else [])
            assert any(labels) if ax["kind"] == "colorbar" else all(labels), f"figure {alt!r}: unlabelled {ax}"
        assert info["clipped_text"] == [], f"figure {alt!r}: text outside the image {info['clipped_text']}"
        if "intervals" in info:
            assert 0.0 <= info["intervals"][0] <= info["intervals"][1] <= 1.0, (alt, info["intervals"])
    assert figures >= 6  # confusion, 2-D before/after, two 3-D views, paired cosine, methods, sweep
    assert len(set(re.findall(r'src="data:image/png;base64,([^"]+)"', page))) == page.count("data:image/png")
    metric = re.compile(r"(\d\.\d+) \((\d\.\d+)–(\d\.\d+)\)")
    cells = 0
    for table in _tables(page):
        for row in table:
            for header, cell in row.items():
                if "95% CI" in header and "difference" not in header and "Δ" not in header:
                    for m in metric.finditer(cell):
                        cells += 1
                        mean, low, high = map(float, m.groups())
                        assert 0.0 <= low <= mean <= high <= 1.0, (header, cell)
    assert cells >= 5


@pytest.mark.slow
def test_no_alignment_row_is_the_sweeps_reference(report):
    from embedstore import Store
    from embedstore.sweep_records import list_sweeps, sweep_reference

    store = Store(report.parent / "store")
    (info,) = list_sweeps(store, "toy")
    ref = sweep_reference(store, "toy", info["sweep_id"])
    page = report.read_text(encoding="utf-8")
    results = next(t for t in _tables(page) if t and "compared with" in t[0])
    (shift,) = [r for r in results if "gap shift" in r["setting"]]
    none_row = next(r for r in results if r["setting"] == shift["compared with"])
    assert none_row["test macro-F1 (95% CI)"].startswith(f"{ref.test_f1:.3f} (")
    assert "early fusion" in none_row["setting"] and "gap shift" not in none_row["setting"]
    # the method figure's dashed reference is the same runs: the sweep's no-alignment group
    assert f"{ref.test_f1:.3f}" in none_row["test macro-F1 (95% CI)"]
