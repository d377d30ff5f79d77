"""The HTML report: one self-contained file, every figure embedded, runs/sweeps/versions inside."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from embedstore.cli.main import cli
from embedstore.alignment import align
from embedstore.pairs import toy_pairs
from embedstore.report import write_report


class _Refs(HTMLParser):
    """Collects every attribute that could load something."""

    def __init__(self):
        super().__init__()
        self.tags, self.refs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster", "background"):
                self.refs.append((tag, name, value or ""))


def _check_self_contained(text: str) -> list[bytes]:
    parser = _Refs()
    parser.feed(text)
    assert not {"script", "link", "iframe", "object", "embed"} & set(parser.tags)
    pngs = []
    for tag, name, value in parser.refs:
        assert tag == "img" and name == "src", (tag, name)
        assert value.startswith("data:image/png;base64,"), value[:40]
        pngs.append(base64.b64decode(value.split(",", 1)[1]))
    assert not re.search(r"url\(|@import|https?://", text)
    for png in pngs:  # every embedded figure is a real, non-trivial PNG
        img = Image.open(io.BytesIO(png))
        img.load()
        assert img.size[0] >= 400
    return pngs


@pytest.mark.slow
def test_report_embeds_everything_and_reads_the_runs_table(store, tmp_path):
    from embedstore.trainers.train import train

    img, txt = toy_pairs(store, "toy", n=60)
    train(store, "toy", image_model=img, text_model=txt, fusion="text", epochs=2, seeds=2)
    key = align(store, "toy", image_model=img, text_model=txt, lam=1.0, match="interp").alignment_key
    train(store, "toy", image_model=img, text_model=txt, fusion="late", epochs=2, alignment_key=key)
    runner = CliRunner()
    res = runner.invoke(cli, ["--store", store.uri, "sweep", "toy", "--image-model", img, "--text-model", txt,
                              "--fusion", "early", "--lambdas", "0:1:1", "--epochs", "2", "--no-progress",
                              "--out", str(tmp_path / "sweep.png")])
    assert res.exit_code == 0, res.output
    assert "selected on validation macro-F1" in res.output and (tmp_path / "sweep.png").stat().st_size > 1000
    assert "no alignment: test macro-F1" in res.output and "selected λ − no alignment: test macro-F1" in res.output
    out = tmp_path / "r" / "report.html"
    res = runner.invoke(cli, ["--store", store.uri, "report", "toy", "--out", str(out), "--max-queries", "10"])
    assert res.exit_code == 0, res.output
    assert "7 embedded figures" in res.output  # confusion matrix + 4 gap figures + methods + 1 sweep plot
    text = out.read_text(encoding="utf-8")
    pngs = _check_self_contained(text)
    assert len(pngs) == 7 and len(set(pngs)) == 7  # no figure twice
    assert text.index("<h2>Results</h2>") < text.index("<h2>Modality gap</h2>")
    # the method comparison figure (one panel per swept method) before the sweeps, with its reference
    assert text.index("<h2>Alignment methods: the gap shift and others</h2>") < text.index("<h3>Each λ sweep</h3>")
    assert 'alt="methods early honest"' in text and "no-alignment runs" in text
    assert "method gapshift)</summary>" in text and "ΔF1 vs none [95% CI]" in text
    assert "test macro-F1 (95% CI)" in text and "The best head per class" in text
    # gap diagnostics, the comparison table (text-only, aligned late, sweep rows) and store versions
    for needle in ("recall@1 image→text", "variance, paper PCA(2): text", "kNN@5 label agreement",
                   "text only, standardised inputs", "late fusion, gap shift λ=+1.0, standardised inputs",
                   f"λ=1 (train) {key}", "sweep λ=0 (gs-", "sweep selected λ=", "samples__toy@", "emb__image__",
                   "always the 10 most common", "rows outside the train split"):
        assert needle in text, needle
    # the second report of the same inputs is the file already written
    again = runner.invoke(cli, ["--store", store.uri, "report", "toy", "--out", str(out), "--max-queries", "10"])
    assert again.exit_code == 0 and "unchanged" in again.output and out.read_text(encoding="utf-8") == text
    # --runs restricts the runs; the gap section can be left out
    only = write_report(store, "toy", tmp_path / "only.html", runs=[_text_group(store)], gap=False)
    assert only.images == 1 and only.run_groups == 1 and only.sweeps == 0  # the best head's confusion matrix
    _check_self_contained((tmp_path / "only.html").read_text())


def _text_group(store):
    from embedstore.runs import list_runs

    return next(r.group_id for r in list_runs(store, "toy") if r.fusion == "text")


def test_report_without_runs_and_bad_target(store, tmp_path):
    img, txt = toy_pairs(store, "toy", n=20)
    res = write_report(store, "toy", tmp_path / "r.html", image_model=img, text_model=txt, max_queries=5)
    assert res.images == 4 and res.run_groups == 0 and res.gap
    text = (tmp_path / "r.html").read_text()
    assert len(_check_self_contained(text)) == 4 and "(no sweep recorded)" in text
    from embedstore.errors import InputError

    with pytest.raises(InputError, match="must end in .html"):
        write_report(store, "toy", tmp_path / "r.pdf")


def test_the_sweeps_no_alignment_reference_is_the_results_tables_row(store, tmp_path):
    """One "no alignment" row: a sweep's reference runs are the default ``train`` of the same setting, number for number."""
    from embedstore.results import setting_rows
    from embedstore.runs import list_runs
    from embedstore.sweep_records import sweep_reference
    from embedstore.trainers.sweep import sweep
    from embedstore.trainers.train import train

    img, txt = toy_pairs(store, "toy", n=60)
    plain = train(store, "toy", image_model=img, text_model=txt, fusion="early", epochs=2, seeds=2)
    res = sweep(store, "toy", image_model=img, text_model=txt, fusion="early", lambdas="0,1", seeds=2, epochs=2,
                progress=False)
    ref = sweep_reference(store, "toy", res.sweep_id)
    refs = sorted(list_runs(store, "toy", group_id=ref.group_id), key=lambda r: r.seed)
    assert all(r.config["scale"] == plain.config["scale"] == {"image": "standard", "text": "standard"} for r in refs)
    assert all(set(get.alignment_keys.values()) == {"none"} for get in refs)
    for run, again in zip(plain.runs, refs):  # the same runs: same test rows, same predictions
        assert again.metrics["test_pred"] == run.metrics["test_pred"] and again.metrics["baseline"] == run.metrics["baseline"]
    row = next(r for r in setting_rows(list_runs(store, "toy")) if r["group"] == plain.group_id)
    assert row["_f1"] == pytest.approx(ref.test_f1) == pytest.approx(plain.mean["macro_f1"])
    # every λ is judged against that row, paired by seed on the same test rows
    one = res.points[1]
    paired = np.mean(np.array(one.test_f1_by_seed) - np.array([r.metrics["macro_f1"] for r in plain.runs]))
    assert res.intervals()[1]["vs_none"]["difference"] == pytest.approx(paired)
    html = write_report(store, "toy", tmp_path / "r.html", gap=False)
    text = (tmp_path / "r.html").read_text()
    results, sweeps = text.split("<h2>Alignment methods")[0], text.split("<h3>Each λ sweep</h3>")[1]
    assert f"{row['_f1']:.3f}" in results and f"macro-F1 {ref.test_f1:.3f}" in sweeps and html.sweeps == 1
