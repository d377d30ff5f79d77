"""Errors that diagnose: a wrong name is named as what it is, in every command, with the closest names.

Each case was a misdiagnosis before: a group id given as a run id and an
unknown run id both read "run has no stored head"; a misspelled dataset was
blamed on the sample (``neighbors``), written up as an empty report
(``report``), listed as nothing (``runs``) or blamed on a model
(``train-raw``); a misspelled alignment read "run the alignment first"; a
misspelled column was a Lance projection error; ``runs --group`` with a
typo printed "(none)". Everything runs on a real store on disk with real
training (a constructed paired dataset, tiny heads).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore.pairs import toy_pairs


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store with dataset 'toy', two early-fusion seeds (heads kept) and one late-fusion run."""
    from embedstore import Store
    from embedstore.alignment import align
    from embedstore.trainers.train import train

    tmp = tmp_path_factory.mktemp("diagnose")
    store = Store(tmp / "store")
    img, txt = toy_pairs(store, "toy", n=40)
    early = train(store, "toy", image_model=img, text_model=txt, fusion="early", epochs=2, seeds=2)
    late = train(store, "toy", image_model=img, text_model=txt, fusion="late", epochs=2)
    key = align(store, "toy", image_model=img, text_model=txt, lam=1.0, match="interp").alignment_key
    return {"store": store, "uri": store.uri, "img": img, "txt": txt, "early": early, "late": late, "key": key,
            "tmp": tmp}


def _run(lab, *args):
    res = CliRunner().invoke(cli, ["--store", lab["uri"], *args])
    return res.exit_code, res.output.strip()


def _one_line_error(code, out, *needles):
    assert code == 1, out
    assert len(out.splitlines()) == 1 and out.startswith("Error: ") and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, (needle, out)


DATASET_COMMANDS = {
    "runs": lambda lab: ["runs", "toi"],
    "report": lambda lab: ["report", "toi", "--out", str(lab["tmp"] / "r.html")],
    "neighbors": lambda lab: ["neighbors", "toi", "--model", lab["txt"], "--modality", "text", "--sample", "toy-0001"],
    "neighbors-any-sample": lambda lab: ["neighbors", "toi", "--model", lab["txt"], "--modality", "text", "--sample",
                                     "nope"],
    "train": lambda lab: ["train", "toi", "--image-model", lab["img"], "--text-model", lab["txt"], "--no-progress"],
    "sweep": lambda lab: ["sweep", "toi", "--image-model", lab["img"], "--text-model", lab["txt"], "--no-progress"],
    "gap": lambda lab: ["gap", "toi", "--image-model", lab["img"], "--text-model", lab["txt"]],
    "align": lambda lab: ["align", "toi", "--image-model", lab["img"], "--text-model", lab["txt"]],
    "export": lambda lab: ["export", "toi", "--model", lab["txt"], "--modality", "text", "--out",
                           str(lab["tmp"] / "t.parquet")],
    "predict": lambda lab: ["predict", "toi", "--run", lab["early"].run_ids[0]],
    "train-raw": lambda lab: ["train-raw", "toi", "--fusion", "early", "--max-batches", "1"],
    "versions": lambda lab: ["versions", "samples__toi"],
}


@pytest.mark.parametrize("command", sorted(DATASET_COMMANDS))
def test_a_misspelled_dataset_is_named_unknown_with_the_closest_name(lab, command):
    _one_line_error(*_run(lab, *DATASET_COMMANDS[command](lab)), "unknown dataset 'toi'",
                    "(did you mean 'toy'?)", "known: toy")


def test_a_group_id_where_a_run_id_is_expected(lab):
    early = lab["early"]
    # predict: the group stands for the ensemble of its runs' heads, the same as --ensemble with one of its runs
    code, out = _run(lab, "predict", "toy", "--run", early.group_id, "--json")
    assert code == 0, out
    import json

    by_group = json.loads(out)
    assert len(by_group["head_ids"]) == 2 and by_group["rows"] == 40
    code, out = _run(lab, "predict", "toy", "--run", early.run_ids[0], "--ensemble", "--json")
    assert code == 0 and json.loads(out)["predicted_counts"] == by_group["predicted_counts"]
    # export-head and rerun need one run: they say it is a group and list its runs
    for args in (["export-head", early.group_id, "--out", str(lab["tmp"] / "h.onnx")], ["rerun", early.group_id]):
        _one_line_error(*_run(lab, *args), f"'{early.group_id}' is a group of 2 run(s), not a run id",
                        early.run_ids[0], early.run_ids[1])


def test_an_unknown_run_id_is_named_unknown(lab):
    for args in (["predict", "toy", "--run", "run-nope"], ["export-head", "run-nope", "--out", "h.onnx"],
                 ["rerun", "run-nope"]):
        code, out = _run(lab, *args)
        _one_line_error(code, out, "unknown run 'run-nope'", "embedstore runs --each")
        assert "stored head" not in out
    typo = lab["early"].run_ids[0][:-1] + ("x" if not lab["early"].run_ids[0].endswith("x") else "y")
    _one_line_error(*_run(lab, "rerun", typo), f"unknown run '{typo}'", f"did you mean '{lab['early'].run_ids[0]}'")


def test_groups_in_runs_and_report(lab):
    early, late = lab["early"], lab["late"]
    _one_line_error(*_run(lab, "runs", "--group", early.group_id[:-1]), f"unknown group '{early.group_id[:-1]}'",
                    f"did you mean '{early.group_id}'")
    _one_line_error(*_run(lab, "runs", "--compare", early.group_id, "nope"), "unknown group 'nope'")
    code, out = _run(lab, "runs", "--compare", early.run_ids[0], late.group_id)  # a run stands for its group
    assert code == 0 and "paired folds" in out, out
    _one_line_error(*_run(lab, "report", "toy", "--runs", "nope", "--out", str(lab["tmp"] / "x.html")),
                    "unknown id 'nope' in --runs")
    assert not (lab["tmp"] / "x.html").exists()


def test_samples_models_alignments_columns_and_tables(lab):
    _one_line_error(*_run(lab, "neighbors", "toy", "--model", lab["txt"], "--modality", "text", "--sample",
                          "toy-001"), "unknown sample 'toy-001'", "did you mean")
    _one_line_error(*_run(lab, "neighbors", "toy", "--model", "hf:toy-txet", "--modality", "text", "--sample",
                          "toy-0001"), "no model 'hf:toy-txet'", "did you mean 'hf:toy-text'")
    base = ["train", "toy", "--image-model", lab["img"], "--text-model", lab["txt"], "--no-progress", "--epochs", "1"]
    _one_line_error(*_run(lab, *base, "--alignment", lab["key"][:-1]), "unknown alignment",
                    f"did you mean '{lab['key']}'")
    _one_line_error(*_run(lab, *base, "--label-column", "lable"), "unknown column 'lable'", "did you mean 'label'")
    _one_line_error(*_run(lab, "versions", "runz"), "unknown table 'runz'", "did you mean 'runs'")


def test_ingest_manifest_reads_the_demos_own_folder(tmp_path):
    """The demo's synthetic folder (``sample_id``, ``group`` columns) ingests with ``ingest manifest`` as is."""
    from embedstore import Store
    from embedstore.synthetic import make_synthetic

    ds = make_synthetic(tmp_path / "synthetic", n=24)
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "ingest", "manifest", "--root", str(ds.root),
                                   "--name", "again", "--group-column", "group", "--no-progress"])
    assert res.exit_code == 0, res.output
    samples = Store(tmp_path / "s").samples("again", columns=["sample_id", "group_id"])
    assert samples.num_rows == 24 and samples["sample_id"].to_pylist()[0] == "synthetic-0000"
    assert len(set(samples["group_id"].to_pylist())) == 12  # two samples per synthetic patient
