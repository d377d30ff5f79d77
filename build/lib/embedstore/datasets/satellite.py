"""SatelliteBench (binary dengue), from Sentinel-2 GeoTIFFs and weekly cases.

Two layouts are read (``layout="auto"`` picks by the files present):

``physionet`` — PhysioNet ``multimodal-satellite-data`` (protocol §1.3)::

    <root>/metadata.csv     Municipality code, Municipality, Population2007..., Age0-4(%), ...,
                            then weekly case columns 'YYYY/wNN'
    <root>/images/<code>/image_YYYY-MM-DD.tiff      (or <root>/10_municipalities/images/...)

``metadengue`` — the authors' per-image annotation release::

    <root>/annotations/<code>/image_YYYY-MM-DD.json     per-image JSON (socio-economic fields)
    <root>/images/<code>/image_YYYY-MM-DD.tiff
    <root>/Climatic_and_cases_data_Top10.csv            date (week's last day), cases_<code>, ...
    <root>/sociodemographic_elevation_Top10.csv         optional: names and Age0-4(%), ...

A sample is one image (an annotation whose image is absent is reported as
skipped). Its date maps to a CDC epiweek (``epiweeks``) and joins the
municipality's weekly cases. **Label** = 1 when that week's cases exceed the
municipality's own median, else 0 (ties -> 0). The median is taken over the
study window ``201545 < epiweek < 201901`` of the weekly series
(``median_over="window"``), or, as the paper's code did, over the joined
samples (``median_over="samples"``). Images outside the window, or with no
case count for their week, are skipped and reported.

**Image**: ``image_ref`` is the TIFF plus a fragment that
:func:`embedstore.images.load_image` understands. ``rgb="true"`` (default)
takes Sentinel-2 B4,B3,B2 (0-based bands 3,2,1) as R,G,B with a 224 centre
crop; ``rgb="paper"`` reproduces the paper's bands 1,2,3 (B,G,R order) and its
crop around the row midpoint on both axes.

**Prompt** fields: ``city``, ``date`` (YYYY-MM-DD), ``age0_4``, ``age5_14``,
``afrocolombian``, ``indian`` (printed as pandas prints them). ``paper`` is
the fixed prompt of protocol §1.3 (never the one embedding the label);
``default`` drops the date, which with per-city median labels leaks the
epidemic season (protocol §7.2).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from ..errors import InputError, require
from .base import DatasetRows, Sample, Skipped, abspath, as_float, check_unique, finish, read_csv
from .prompts import resolve_prompt
from .splits import grouped_split, paper_split

#: The paper's ten municipalities, in the order its code concatenates them.
CITIES = {76001: "Cali", 5001: "Medellín", 50001: "Villavicencio", 54001: "Cúcuta", 73001: "Ibagué",
          68001: "Bucaramanga", 5360: "Itagüí", 8001: "Barranquilla", 41001: "Neiva", 23001: "Montería"}
WINDOW = (201545, 201901)
RGB = {"true": "bands=3,2,1&crop=224", "paper": "bands=1,2,3&crop=224&anchor=row",
       # inferred: get_datasets.ipynb divides the tiff by 255 before imsave; the conversion code is missing
       "paper255": "bands=1,2,3&crop=224&anchor=row&div=255"}
STATIC = {"age0_4": "Age0-4(%)", "age5_14": "Age5-14(%)", "afrocolombian": "AfrocolombianPopulation(%)",
          "indian": "IndianPopulation(%)"}
FIELDS = ("city", "date") + tuple(STATIC)
CASES_CSV = "Climatic_and_cases_data_Top10.csv"
SOCIO_CSV = "sociodemographic_elevation_Top10.csv"
_WEEK_COL = re.compile(r"^(\d{4})/w(\d{1,2})$")
_IMAGE = re.compile(r"^image_(\d{4}-\d{2}-\d{2})\.tiff?$", re.IGNORECASE)
_ANNOTATION = re.compile(r"^image_(\d{4}-\d{2}-\d{2})\.json$")
META_TYPES: dict[str, pa.DataType] = {
    "municipality_code": pa.int64(), "municipality": pa.string(), "date": pa.string(),
    "epiweek": pa.int64(), "cases": pa.float64(), "cases_median": pa.float64(),
    "age0_4_pct": pa.float64(), "age5_14_pct": pa.float64(), "afrocolombian_pct": pa.float64(),
    "indian_pct": pa.float64(), "layout": pa.string(), "rgb": pa.string(),
}


@dataclass
class Municipality:
    """A municipality's name, prompt statics and weekly cases ``{epiweek: cases}``."""

    code: int
    name: str
    static: dict[str, str] = field(default_factory=dict)
    cases: dict[int, float] = field(default_factory=dict)


def epiweek(date: dt.date | str) -> int:
    """The CDC epiweek ``YYYYWW`` of a date.

    Examples
    --------
    >>> epiweek("2016-01-03"), epiweek("2016-01-09"), epiweek("2007-01-06")
    (201601, 201601, 200701)
    """
    require("epiweeks", "embedstore[satellite]")
    from epiweeks import Week

    if isinstance(date, str):
        date = dt.date.fromisoformat(date)
    return int(Week.fromdate(date).cdcformat())


def week_column(name: str) -> int | None:
    """``'2016/w01'`` -> ``201601``; ``None`` for other column names.

    Examples
    --------
    >>> week_column("2014/w53"), week_column("Municipality")
    (201453, None)
    """
    m = _WEEK_COL.match(name.strip())
    if not m:
        return None
    require("epiweeks", "embedstore[satellite]")
    from epiweeks import Week

    try:
        return int(Week(int(m.group(1)), int(m.group(2))).cdcformat())
    except ValueError:
        raise InputError(f"weekly case column '{name}' is not a valid epiweek; "
                         "expected 'YYYY/wNN' with an existing week") from None


def pandas_strings(values: list[Any]) -> list[str]:
    """Numbers printed as pandas prints a CSV column: ints when all cells are, else floats.

    Missing cells read "No data reported".

    Examples
    --------
    >>> pandas_strings(["7.33", "5"]), pandas_strings(["7", "5"]), pandas_strings([None, "2"])
    (['7.33', '5.0'], ['7', '5'], ['No data reported', '2.0'])
    """
    texts = [None if v is None else str(v).strip() for v in values]
    if texts and all(t is not None and re.fullmatch(r"[+-]?\d+", t) for t in texts):
        return [str(int(t)) for t in texts]  # type: ignore[arg-type]
    out = []
    for t in texts:
        f = as_float(t)
        out.append("No data reported" if f is None else str(f))
    return out


def _code(value: Any, where: str) -> int:
    f = as_float(value)
    if f is None or not f.is_integer():
        raise InputError(f"{where}: municipality code {value!r} is not an integer code such as 76001")
    return int(f)


def _static_from_frame(frame, names: list[str]) -> list[dict[str, str]]:
    cols = {k: pandas_strings(frame[v].to_list()) for k, v in STATIC.items()}
    return [{k: cols[k][i] for k in STATIC} for i in range(len(names))]


# -- the two layouts --------------------------------------------------------
def read_physionet(root: Path) -> dict[int, Municipality]:
    """Municipalities of a PhysioNet ``metadata.csv`` (statics and weekly cases)."""
    path = root / "metadata.csv"
    frame = read_csv(path, required=("Municipality code", "Municipality") + tuple(STATIC.values()),
                     fix="expected the PhysioNet multimodal-satellite-data metadata.csv")
    weeks = {c: week_column(c) for c in frame.columns}
    weeks = {c: w for c, w in weeks.items() if w is not None}
    if not weeks:
        raise InputError(f"{path}: no weekly case columns named 'YYYY/wNN' (e.g. '2016/w01'); "
                         "the labels come from them")
    codes = [_code(v, str(path)) for v in frame["Municipality code"].to_list()]
    check_unique(codes, "Municipality code", path)
    statics = _static_from_frame(frame, codes)
    out = {}
    for i, (code, name) in enumerate(zip(codes, frame["Municipality"].to_list())):
        cases = {w: as_float(frame[c][i]) for c, w in weeks.items()}
        out[code] = Municipality(code, name or CITIES.get(code, str(code)), statics[i],
                                 {w: v for w, v in cases.items() if v is not None})
    return out


def read_metadengue(root: Path) -> dict[int, Municipality]:
    """Municipalities from ``Climatic_and_cases_data_Top10.csv`` (+ socio-demographics/annotations)."""
    path = root / CASES_CSV
    frame = read_csv(path, required=("date",), fix=f"expected the MetaDengue {CASES_CSV}")
    case_cols = {c: _code(c[len("cases_"):], f"{path} column {c}") for c in frame.columns if c.startswith("cases_")}
    if not case_cols:
        raise InputError(f"{path}: no 'cases_<code>' columns; found {frame.columns[:8]}...")
    try:
        weeks = [epiweek(d) for d in frame["date"].to_list()]
    except (TypeError, ValueError):
        raise InputError(f"{path}: column 'date' must hold YYYY-MM-DD dates (each week's last day)") from None
    out = {code: Municipality(code, CITIES.get(code, str(code)),
                              cases={w: v for w, v in zip(weeks, map(as_float, frame[c].to_list()))
                                     if v is not None})
           for c, code in case_cols.items()}
    socio = root / SOCIO_CSV
    if socio.is_file():
        sf = read_csv(socio, required=("Municipality code", "Municipality") + tuple(STATIC.values()))
        codes = [_code(v, str(socio)) for v in sf["Municipality code"].to_list()]
        for code, name, static in zip(codes, sf["Municipality"].to_list(), _static_from_frame(sf, codes)):
            if code in out:
                out[code].name, out[code].static = name or out[code].name, static
    return out


def _annotation_static(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        socio = data["metadata"]["socioeconomic_data"]
        return {k: "No data reported" if socio.get(v) is None else str(socio[v]) for k, v in STATIC.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _image_dir(root: Path, layout: str) -> Path:
    for cand in (root / "images", root / "10_municipalities" / "images"):
        if cand.is_dir():
            return cand
    if layout == "metadengue":
        return root / "images"
    raise InputError(f"SatelliteBench root {root}: no images/ or 10_municipalities/images/ folder")


def detect_layout(root: Path) -> str:
    """``physionet`` when ``metadata.csv`` exists, ``metadengue`` when the cases CSV does."""
    if (root / "metadata.csv").is_file():
        return "physionet"
    if (root / CASES_CSV).is_file():
        return "metadengue"
    raise InputError(f"SatelliteBench root {root}: found neither metadata.csv (PhysioNet layout) nor "
                     f"{CASES_CSV} (MetaDengue layout); pass the folder that holds one")


def _candidates(root: Path, layout: str, towns: dict[int, Municipality], skipped: list[Skipped]):
    """``{(code, date): [tiff path, annotation path or None]}`` of images and annotations."""
    found: dict[tuple[int, str], list[Path | None]] = {}
    names = {m.name: c for c, m in towns.items()}
    image_dir = _image_dir(root, layout)
    sources = [(image_dir, _IMAGE, 0)]
    if layout == "metadengue" and (root / "annotations").is_dir():
        sources.append((root / "annotations", _ANNOTATION, 1))
    for base, pattern, slot in sources:
        if not base.is_dir():
            continue
        for sub in sorted(p for p in base.iterdir() if p.is_dir()):
            code = int(sub.name) if sub.name.isdigit() else names.get(sub.name)
            for f in sorted(sub.iterdir()):
                m = pattern.match(f.name)
                if m is None:
                    if slot == 0 and f.suffix.lower() in (".tif", ".tiff"):
                        skipped.append(Skipped(f.name, abspath(f), "file name is not image_YYYY-MM-DD.tiff"))
                    continue
                if code is None:
                    skipped.append(Skipped(f.name, abspath(f), f"folder '{sub.name}' is not a known municipality"))
                    continue
                entry = found.setdefault((code, m.group(1)), [None, None])
                if entry[slot] is not None:
                    skipped.append(Skipped(f"{code}_{m.group(1)}", abspath(f), f"duplicate of {entry[slot].name}"))
                    continue
                entry[slot] = f
    for (code, date), entry in found.items():
        if entry[0] is None:
            entry[0] = image_dir / str(code) / f"image_{date}.tiff"
    return found


def rows(root: str | Path, *, prompt: str = "default", seed: int = 42, progress: bool = True,
         layout: Literal["auto", "physionet", "metadengue"] = "auto",
         rgb: Literal["true", "paper"] = "true", window: tuple[int, int] = WINDOW,
         median_over: Literal["window", "samples"] = "window") -> DatasetRows:
    """Build SatelliteBench sample rows from ``root`` (no store involved).

    Parameters
    ----------
    root : path
    prompt : str
        ``paper``, ``default`` or a template file.
    seed : int
        Seed of both splits. ``paper`` is 60/20/20 (the paper's 936/312/312 on
        1,560 samples); ``grouped`` keeps each municipality in one split.
    layout : {"auto", "physionet", "metadengue"}
    rgb : {"true", "paper", "paper255"}
        True-colour B4,B3,B2 or the paper's B2,B3,B4 (B,G,R order).
        ``paper255`` also scales as the paper's notebook did, ``/255``
        then saved as an 8-bit image (values above 255 saturate) — marked
        *inferred*: the tiff-to-jpg step is not in the authors' repository.
        ``paper`` rescales a non-8-bit image by its own maximum.
    window : (int, int)
        Exclusive epiweek bounds of the study window.
    median_over : {"window", "samples"}

    Examples
    --------
    >>> r = rows("../shared/data/satellite-metadengue", progress=False)  # doctest: +SKIP
    >>> r.table.num_rows, len(r.skipped)                                 # doctest: +SKIP
    (5, 13)
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"SatelliteBench root {root} is not a directory")
    if rgb not in RGB:
        raise InputError(f"rgb={rgb!r}: use 'true' (B4,B3,B2), 'paper' (the paper's B,G,R order) or "
                         "'paper255' (B,G,R and the notebook's /255, inferred)")
    if median_over not in ("window", "samples"):
        raise InputError(f"median_over={median_over!r}: use 'window' or 'samples'")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in ("physionet", "metadengue"):
        raise InputError(f"layout={layout!r}: use auto, physionet or metadengue")
    towns = read_physionet(root) if layout == "physionet" else read_metadengue(root)
    template = resolve_prompt("satellitebench", prompt, FIELDS)
    lo, hi = window
    skipped: list[Skipped] = []
    joined = []
    for (code, date), (tiff, note) in _candidates(root, layout, towns, skipped).items():
        sid, town = f"{code}_{date}", towns.get(code)
        week = epiweek(date)
        if town is None:
            skipped.append(Skipped(sid, abspath(tiff), f"municipality {code} has no weekly cases"))
        elif not lo < week < hi:
            skipped.append(Skipped(sid, abspath(tiff), f"epiweek {week} outside the study window {lo} < w < {hi}"))
        elif week not in town.cases:
            skipped.append(Skipped(sid, abspath(tiff), f"no case count for municipality {code} epiweek {week}"))
        else:
            static = town.static or (_annotation_static(note) if note else {})
            joined.append((code, date, week, tiff, town, static))
    order = {c: i for i, c in enumerate(CITIES)}
    joined.sort(key=lambda j: (order.get(j[0], len(order)), j[0], j[1]))
    medians: dict[int, float] = {}
    for code in {j[0] for j in joined}:
        if median_over == "window":
            values = [v for w, v in towns[code].cases.items() if lo < w < hi]
        else:
            values = [towns[code].cases[j[2]] for j in joined if j[0] == code]
        medians[code] = float(statistics.median(values))
    labels = [str(int(town.cases[week] > medians[code])) for code, _, week, _, town, _ in joined]
    notes: list[str] = []
    split_p = paper_split(labels, seed=seed, val_size=0.25, notes=notes)
    split_g = grouped_split(labels, [j[0] for j in joined], seed=seed)
    samples = []
    for (code, date, week, tiff, town, static), label, sp, sg in zip(joined, labels, split_p, split_g):
        fields = {"city": town.name, "date": date, **{k: static.get(k, "No data reported") for k in STATIC}}
        meta = {"municipality_code": code, "municipality": town.name, "date": date, "epiweek": week,
                "cases": town.cases[week], "cases_median": medians[code], "layout": layout, "rgb": rgb,
                **{f"{k}_pct": as_float(static.get(k)) for k in STATIC}}
        samples.append(Sample(sample_id=f"{code}_{date}", image_path=abspath(tiff), fragment=RGB[rgb],
                              text=template.render(fields), label=label, group_id=str(code),
                              split_paper=sp, split_grouped=sg, meta=meta))
    return finish("satellitebench", root, samples, prompt=template, meta_types=META_TYPES,
                  skipped=skipped, notes=notes, progress=progress)
