"""One self-contained HTML report of a dataset's results, gap and λ sweeps: the answer first.

:func:`write_report` writes a single ``.html`` file with no external
reference: figures are embedded as ``data:image/png;base64`` URIs, styles are
inline, there are no scripts and no links. In reading order:

* **Results** (:mod:`embedstore.results`): the best honest head, chosen only
  among settings tested on the same rows, every other head and the gap
  shift's effect against its "no alignment" row, in plain names, with
  intervals clipped to the metric's range; the best head's per-class scores
  folded;
* **Modality gap** (:mod:`embedstore.gap_section`, from
  :func:`embedstore.diagnostics.gap_diagnostics`): a few headline numbers
  with their chance levels (retrieval on rows the fitted map never saw) and
  the 2-D views before and after; every diagnostic, the 3-D views, the
  paired cosines and the store versions folded;
* **Gap shift and other alignments** (:mod:`embedstore.sweep_sections`):
  one figure per fusion and mode, a panel per swept method (test macro-F1
  against λ with 95 % t intervals over seeds and the sweep's no-alignment
  reference); each λ sweep's plot and per-λ table (paired intervals against
  no alignment and against λ=0) folded;
* optionally, predictions of a few samples by stored heads (the demo's
  held-back samples: sample, true label, predicted label, probability);
* the data checks of the latest ``embedstore check`` (:mod:`embedstore.datacheck.section`);
* folded: every recorded run group with the store table versions behind it.

Every section writes its HTML with the same building blocks (:mod:`embedstore._html`).

No figure appears twice; every axis is labelled and no text of a figure
falls outside it (:func:`embedstore.figures.figure_info` reads what each PNG
says about itself). The file records a fingerprint of everything it was
made from (:func:`report_fingerprint`); :func:`write_report` with
``reuse=True`` leaves an up-to-date file as it is and says so.
"""

from __future__ import annotations

import html
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ._html import cell, embed_png, escape, grid, page, table
from .errors import InputError, NotFoundError
from .formats import ToDict
from .gap_section import gap_section
from .keys import NO_ALIGNMENT
from .plain_names import setting_name
from .runs import RunRecord, group_runs, list_runs
from .stats import format_mean_sd
from .sweep_records import SWEEP_PREFIX, list_sweeps
from .sweep_sections import gap_shift_entries, methods_section, sweep_section


@dataclass(frozen=True)
class ReportResult(ToDict):
    """What :func:`write_report` wrote."""

    path: str
    images: int
    run_groups: int
    sweeps: int
    gap: bool
    reused: bool = False
    generated: str = ""


def _lam_of(store, keys: dict[str, str]) -> str:
    aligned = sorted({k for k in keys.values() if k and k != NO_ALIGNMENT})
    if not aligned:
        return "none"
    out = []
    for key in aligned:
        try:
            s = store.alignment(key).settings
            out.append(f"λ={s['lam']:g} ({s['fit_on']}) {key}")
        except NotFoundError:  # an alignment missing from the registry: show the key only
            out.append(key)
    return "; ".join(out)


def comparison_rows(store, records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per group of seeds, sorted by fusion, mode and alignment."""
    rows = []
    for gid, recs in group_runs(records).items():
        first = recs[0]
        rows.append({"setting": setting_name(recs), "fusion": first.fusion, "mode": first.mode,
                     "alignment": _lam_of(store, first.alignment_keys),
                     "seeds": len(recs), "test accuracy": format_mean_sd([r.metrics.get("accuracy") for r in recs]),
                     "test macro-F1": format_mean_sd([r.metrics.get("macro_f1") for r in recs]),
                     "split": first.split, "group": gid, "store versions": first.table_versions})
    return _sorted(rows)


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"early": 0, "late": 1, "image": 2, "text": 3}
    return sorted(rows, key=lambda r: (order.get(r["fusion"], 9), r["mode"], r["alignment"] != "none",
                                       r["alignment"], r["group"]))


def _thumbnail(ref: str | None) -> str:
    """A small inline PNG of the sample's image ('' when it has none or it cannot be read now)."""
    if not ref:
        return ""
    from .images import load_image

    try:
        image = load_image(ref)
    except (InputError, OSError):
        return ""
    image.thumbnail((48, 48))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return embed_png(buf.getvalue(), "sample")


def predictions_section(predictions: dict[str, Any]) -> tuple[str, int]:
    """HTML of a predictions section (see :func:`write_report`) and the thumbnails it embeds."""
    cols = ["sample", "true label", "predicted", "probability"]
    rows, images = [], 0
    for r in predictions.get("rows", []):
        thumb = _thumbnail(r.get("image_ref"))
        images += bool(thumb)
        rows.append([f'<span class="thumb">{thumb}{escape(r["sample"])}</span>' if thumb else escape(r["sample"]),
                     escape("unknown" if r.get("true label") is None else r["true label"]), escape(r["predicted"]),
                     cell(r["probability"])])
    title = predictions.get("title", "Predictions")
    return (f"<h2>{escape(title)}</h2><p class=\"note\">{escape(predictions.get('note', ''))}</p>" + grid(rows, cols),
            images)


def write_report(store, dataset: str, out: str | Path, *, runs: Sequence[str] | None = None,
                 image_model: str | None = None, text_model: str | None = None,
                 alignment_key: str | None = None, lam: float = 1.0, max_queries: int = 1000,
                 gap: bool = True, banner: str | None = None, gap_report: Any = None,
                 predictions: dict[str, Any] | None = None, reuse: bool = True) -> ReportResult:
    """Write the HTML report of ``dataset`` to ``out``.

    Parameters
    ----------
    store : Store
    dataset : str
    out : path
        The ``.html`` file to write.
    runs : sequence of str, optional
        Run ids, group ids or sweep ids to include (default: every run of
        the dataset).
    image_model, text_model, alignment_key, lam
        The alignment whose gap is diagnosed (see
        :func:`~embedstore.diagnostics.gap_diagnostics`). Without them the
        models of the most recent run that used both modalities are taken.
    gap : bool
        Include the gap section.
    banner : str, optional
        Text shown in a highlighted box under the title (e.g. "SYNTHETIC DATA").
    gap_report : GapReport, optional
        Already computed :func:`~embedstore.diagnostics.gap_diagnostics` of
        this dataset; used instead of computing it again.
    predictions : dict, optional
        A "Predictions" section: ``title``, ``note`` and ``rows`` with
        ``sample``, ``true label``, ``predicted``, ``probability`` and an
        optional ``image_ref`` (shown as a thumbnail), e.g. from
        :func:`embedstore.trainers.demo_predict.predict_held_back`.
    reuse : bool
        Leave ``out`` as it is when it was written from exactly these inputs
        (the same store commits, arguments and code:
        :func:`report_fingerprint`); the result then has ``reused=True``.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.pairs import toy_pairs
    >>> d = tempfile.mkdtemp()
    >>> s = Store(d + "/s")
    >>> img, txt = toy_pairs(s, "toy", n=20)
    >>> res = write_report(s, "toy", d + "/r.html", image_model=img, text_model=txt, max_queries=5)
    >>> res.images, res.reused
    (4, False)
    >>> write_report(s, "toy", d + "/r.html", image_model=img, text_model=txt, max_queries=5).reused
    True
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"report target {out}: the file name must end in .html")
    store.require_dataset(dataset)
    inputs = dict(runs=runs, image_model=image_model, text_model=text_model, alignment_key=alignment_key, lam=lam,
                  max_queries=max_queries, gap=gap, banner=banner, gap_report=gap_report, predictions=predictions)
    if reuse:
        previous = read_report_meta(out)
        if previous.get("fingerprint") == report_fingerprint(store, dataset, **inputs):
            return ReportResult(str(out), int(previous["images"]), int(previous["run_groups"]),
                                int(previous["sweeps"]), bool(previous["gap"]), reused=True,
                                generated=str(previous.get("generated", "")))
    records = list_runs(store, dataset)
    if runs:
        wanted = set(runs)
        records = [r for r in records if r.run_id in wanted or r.group_id in wanted
                   or r.group_id.split(".", 1)[0] in wanted]
        _check_ids(store, dataset, wanted, records)
    sweeps = [s for s in list_sweeps(store, dataset)
              if not runs or any(r.group_id.startswith(s["sweep_id"] + ".") for r in records)]
    plain = [r for r in records if not r.group_id.startswith(SWEEP_PREFIX)]
    if not (image_model and text_model) and not alignment_key:
        both = [r for r in records if {"image", "text"} <= set(r.model_keys)]
        if both:
            image_model, text_model = both[-1].model_keys["image"], both[-1].model_keys["text"]
    from .results import results_section

    results_html, images, _ = results_section(store, dataset, plain, shifts=gap_shift_entries(store, dataset, sweeps))
    sections = [results_html]
    if gap_report is not None:
        image_model, text_model = gap_report.settings["image_model_key"], gap_report.settings["text_model_key"]
    if gap and (alignment_key or (image_model and text_model)):
        part, n = gap_section(store, dataset, gap_report, image_model=image_model, text_model=text_model,
                              alignment_key=alignment_key, lam=lam, max_queries=max_queries)
        sections.append(part)
        images += n
    elif gap:
        sections.append('<h2>Modality gap</h2><p class="note">No models given and no run with both modalities: '
                        "pass image and text models to include the gap diagnostics.</p>")
    sweep_parts, extra_rows = [], []
    for info in sweeps:
        part, extra = sweep_section(store, dataset, info)
        if part:
            sweep_parts.append(part)
            extra_rows += extra
            images += 1
    method_part, n_method = methods_section(store, dataset, sweeps)
    images += n_method
    sections.append((method_part or "<h2>Alignment methods: the gap shift and others</h2>")
                     + "<h3>Each λ sweep</h3>"
                     + ("".join(sweep_parts) or '<p class="note">(no sweep recorded)</p>'))
    if predictions is not None:
        part, n = predictions_section(predictions)
        sections.append(part)
        images += n
    from .datacheck.section import data_checks_section

    part, n = data_checks_section(store, dataset)
    sections.append(part)
    images += n
    comp = _sorted(comparison_rows(store, plain) + extra_rows)
    sections.append("<h2>Every recorded run</h2><details><summary>All run groups with the store versions they read"
                    f" ({len(comp)} groups)</summary><p class=\"note\">Mean ± sd over seeds of the test metrics. "
                    "Paper mode picks the epoch on test (optimistic, as the paper did); honest mode picks it on "
                    "validation and touches test once. Store versions are the exact table versions the runs "
                    "read.</p>" + table(comp, _RUN_COLUMNS) + "</details>")
    from . import __version__

    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    result = ReportResult(str(out), images, len({r["group"] for r in comp}), len(sweep_parts),
                          bool(gap and (alignment_key or (image_model and text_model))), generated=generated)
    # the store as this report leaves it (the gap's alignments are written once, then reused)
    meta = {"fingerprint": report_fingerprint(store, dataset, **inputs), "generated": generated,
            **{k: getattr(result, k) for k in ("images", "run_groups", "sweeps", "gap")}}
    head = (f"<h1>embedstore report: {escape(dataset)}</h1><p class=\"note\">Store <code>{escape(store.uri)}"
            f"</code>; generated {escape(generated)} by embedstore {escape(__version__)}; "
            f"{len(records)} runs in {len({r.group_id for r in records})} groups. Folded parts "
            f"(▸) open with a click.</p>")
    if banner:
        head += f'<p class="banner">{escape(banner)}</p>'
    doc = page(f"embedstore report: {dataset}", head + "".join(sections), {_META: json.dumps(meta, sort_keys=True)})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)  # a reader never sees half a report
    return result


def _check_ids(store, dataset: str, wanted: set[str], records: list[RunRecord]) -> None:
    """Every id of ``runs=`` names a run, group or sweep of ``dataset``; else one line naming the first that does not."""
    from .errors import did_you_mean

    found = {r.run_id for r in records} | {r.group_id for r in records} | {r.group_id.split(".", 1)[0] for r in records}
    for ref in sorted(wanted - found):
        every = list_runs(store, dataset)
        names = {r.run_id for r in every} | {r.group_id for r in every} | {r.group_id.split(".", 1)[0] for r in every}
        raise NotFoundError(f"unknown id '{ref}' in runs=: no run, group or sweep of dataset '{dataset}' has it"
                            f"{did_you_mean(ref, names)}; list them with 'embedstore runs {dataset}'")


#: Columns of the folded table of every run group.
_RUN_COLUMNS = ("setting", "mode", "alignment", "seeds", "test accuracy", "test macro-F1", "split", "group",
                "store versions")
#: Name of the report's ``<meta>`` element holding its fingerprint and counts.
_META = "embedstore-report"


def report_fingerprint(store, dataset: str, **inputs: Any) -> str:
    """Digest of what a report is made of: the store's commits, the arguments and the code.

    ``gap_report`` and ``predictions`` enter by their content.
    """
    from .fingerprint import code_stamp, digest, store_stamp

    gap_report = inputs.pop("gap_report", None)
    described = {k: (sorted(v) if isinstance(v, (list, tuple, set)) else v) for k, v in inputs.items()}
    described["gap_report"] = gap_report.to_dict() if gap_report is not None else None
    return digest({"store": store_stamp(store), "dataset": dataset, "inputs": described, "code": code_stamp()})


def read_report_meta(path: str | Path) -> dict[str, Any]:
    """The fingerprint and counts a report written by :func:`write_report` carries (``{}`` when none)."""
    import re

    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        start = fh.read(4096)
    found = re.search(rf'<meta name="{_META}" content="([^"]*)"', start)
    if not found:
        return {}
    try:
        return json.loads(html.unescape(found.group(1)))
    except ValueError:
        return {}
