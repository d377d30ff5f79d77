"""SatelliteBench: real Sentinel-2 TIFFs, real weekly dengue cases, both layouts."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from embedstore.datasets import satellite
from embedstore.images import load_image, read_bands

# Study window 201545 < epiweek < 201901, as the last days (Saturdays) of its weeks.
WINDOW_DAYS = ("2015-11-21", "2018-12-29")


def _real(shared_data: Path) -> Path:
    return shared_data / "satellite-metadengue"


def _weekly_cases(root: Path) -> tuple[list[str], dict[int, list[float]]]:
    with open(root / satellite.CASES_CSV, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    codes = [int(c[len("cases_"):]) for c in rows[0] if c.startswith("cases_")]
    return [r["date"] for r in rows], {c: [float(r[f"cases_{c}"]) for r in rows] for c in codes}


def expected_label(root: Path, code: int, date: str) -> str:
    """Label computed without the adapter: week-ending Saturday, median over the window's weeks."""
    days, cases = _weekly_cases(root)
    window = sorted(v for d, v in zip(days, cases[code]) if WINDOW_DAYS[0] <= d <= WINDOW_DAYS[1])
    assert len(window) == 163
    n = len(window)
    median = window[n // 2] if n % 2 else (window[n // 2 - 1] + window[n // 2]) / 2
    day = dt.date.fromisoformat(date)
    saturday = (day + dt.timedelta(days=(5 - day.weekday()) % 7)).isoformat()
    week_cases = cases[code][days.index(saturday)]
    return "1" if week_cases > median else "0"


def test_real_tiffs_are_12_band_and_convert_to_224_rgb(shared_data):
    tiffs = sorted(_real(shared_data).glob("images/*/*.tiff"))
    assert len(tiffs) == 5
    for tiff in tiffs:
        raw = read_bands(tiff)
        assert raw.ndim == 3 and raw.shape[-1] == 12 and raw.dtype == np.uint8
        h, w = raw.shape[:2]
        rgb = np.asarray(load_image(f"{tiff}#{satellite.RGB['true']}"))
        assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
        top, left = (h - 224) // 2, (w - 224) // 2
        assert np.array_equal(rgb, raw[top:top + 224, left:left + 224][:, :, [3, 2, 1]])  # B4,B3,B2
        paper = np.asarray(load_image(f"{tiff}#{satellite.RGB['paper']}"))
        mid = h // 2 - 112  # the paper crops around the row midpoint on both axes
        assert np.array_equal(paper, raw[mid:mid + 224, mid:mid + 224][:, :, [1, 2, 3]])  # B2,B3,B4


def test_metadengue_layout_labels_match_an_independent_median(shared_data):
    root = _real(shared_data)
    built = satellite.rows(root, prompt="paper", progress=False)
    rows = built.table.to_pylist()
    assert len(rows) == 5
    for r in rows:
        assert r["label"] == expected_label(root, r["municipality_code"], r["date"])
        assert r["image_ref"].endswith(f"image_{r['date']}.tiff#bands=3,2,1&crop=224")
        assert r["group_id"] == str(r["municipality_code"])
    cali = next(r for r in rows if r["sample_id"] == "76001_2016-01-03")
    assert cali["text"] == ("An image from city Cali taken in date 2016-01-03 with, 5.37% of the population is "
                            "aged 0-4, 12.38% aged 5-14, 14.44% are Afro-Colombian, and 0.52% are of Indian descent.")
    assert cali["epiweek"] == 201601 and cali["cases"] == 408.0
    # annotations whose TIFF is absent are reported, not dropped silently
    assert len(built.skipped) == 12
    assert all("not found" in s.reason and s.path.endswith(".tiff") for s in built.skipped)
    default = satellite.rows(root, progress=False).table["text"].to_pylist()
    assert all("2016" not in t and "city of" in t for t in default)


def make_physionet(shared_data: Path, root: Path) -> dict[int, list[str]]:
    """PhysioNet layout: metadata.csv (statics + 676 'YYYY/wNN' columns) and images/<code>/ links."""
    from epiweeks import Week

    real = _real(shared_data)
    with open(real / satellite.SOCIO_CSV, newline="", encoding="utf-8") as fh:
        socio = list(csv.DictReader(fh))
    days, cases = _weekly_cases(real)
    weeks = [Week.fromdate(dt.date.fromisoformat(d)) for d in days]
    header = [c for c in socio[0] if c] + [f"{w.year}/w{w.week:02d}" for w in weeks]
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for s in socio:
            code = int(s["Municipality code"])
            writer.writerow([s[c] for c in socio[0] if c] + [f"{v:g}" for v in cases[code]])
    dates: dict[int, list[str]] = {}
    for tiff in sorted(real.glob("images/*/*.tiff")):
        code = int(tiff.parent.name)
        folder = root / "images" / str(code)
        folder.mkdir(parents=True, exist_ok=True)
        extra = [(dt.date(2016, 3, 6) + dt.timedelta(weeks=9 * k + len(dates.get(code, [])))).isoformat()
                 for k in range(3)]
        for date in [tiff.stem[len("image_"):]] + extra:
            if not (folder / f"image_{date}.tiff").exists():
                (folder / f"image_{date}.tiff").symlink_to(tiff)
                dates.setdefault(code, []).append(date)
    (root / "images" / "76001" / "image_2014-06-01.tiff").symlink_to(next(real.glob("images/76001/*.tiff")))
    return dates


def test_physionet_layout_fixture(shared_data, tmp_path):
    dates = make_physionet(shared_data, tmp_path)
    built = satellite.rows(tmp_path, prompt="paper", progress=False)
    rows = built.table.to_pylist()
    assert len(rows) == sum(len(v) for v in dates.values())
    assert {r["layout"] for r in rows} == {"physionet"}
    for r in rows:
        assert r["label"] == expected_label(_real(shared_data), r["municipality_code"], r["date"]), r["sample_id"]
    assert [s.sample_id for s in built.skipped] == ["76001_2014-06-01"]
    assert "outside the study window" in built.skipped[0].reason
    by_id = {r["sample_id"]: r for r in rows}
    assert by_id["76001_2016-01-03"]["text"].startswith("An image from city Cali taken in date 2016-01-03 with, 5.37%")
    where: dict[str, set[str]] = {}
    for r in rows:
        where.setdefault(r["group_id"], set()).add(r["split_grouped"])
    assert all(len(s) == 1 for s in where.values()), "a municipality crosses splits"
    assert set(Counter(r["split_paper"] for r in rows)) == {"train", "val", "test"}
    assert Counter(r["label"] for r in rows).keys() == {"0", "1"}

    paper_rgb = satellite.rows(tmp_path, rgb="paper", median_over="samples", progress=False).table.to_pylist()
    first = {r["sample_id"]: r for r in paper_rgb}["76001_2016-01-03"]
    assert first["image_ref"].endswith("#bands=1,2,3&crop=224&anchor=row")
    assert first["image_sha256"] != by_id["76001_2016-01-03"]["image_sha256"]
    for code in dates:
        mine = [r["cases"] for r in paper_rgb if r["municipality_code"] == code]
        assert {r["cases_median"] for r in paper_rgb if r["municipality_code"] == code} == {float(np.median(mine))}


def test_missing_layout_is_a_clear_error(tmp_path):
    from embedstore.errors import InputError

    with pytest.raises(InputError, match="neither metadata.csv"):
        satellite.rows(tmp_path, progress=False)
