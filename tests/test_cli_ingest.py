"""``embedstore ingest`` through click's CliRunner, checked against the store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from embedstore.cli.main import cli
from embedstore import Store
from tests.test_datasets_ham10000 import link_ham_copy


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_ingest_sample70_and_dev270_then_rerun(shared_data, tmp_path):
    uri = str(tmp_path / "store")
    for folder, n in (("ham10000-sample70", 70), ("ham10000-dev270", 270)):
        root = str(shared_data / folder)
        first = invoke("--store", uri, "ingest", "ham10000", "--root", root, "--name", folder, "--no-progress")
        assert first.exit_code == 0, first.output
        assert f"rows: {n} valid, {n} written ({n} new, 0 updated, 0 unchanged), 0 skipped" in first.output
        assert "class counts (split_grouped):" in first.output and "akiec" in first.output
        assert f"store: samples__{folder} version 1 (new version), tag ingest-" in first.output
        second = invoke("--store", uri, "ingest", "ham10000", "--root", root, "--name", folder, "--no-progress")
        assert f"{n} valid, 0 written (0 new, 0 updated, {n} unchanged)" in second.output
        assert "version 1 (unchanged, no new version)" in second.output
        store = Store(uri)
        assert store.samples(folder).num_rows == n and store.version(f"samples__{folder}") == 1
    assert sorted(Store(uri).datasets()) == ["ham10000-dev270", "ham10000-sample70"]


def test_json_lists_every_skipped_sample_and_console_counts_them(shared_data, tmp_path):
    (tmp_path / "ham").mkdir()
    ids = link_ham_copy(shared_data / "ham10000-sample70", tmp_path / "ham")
    (tmp_path / "ham" / "images" / f"{ids[5]}.jpg").unlink()
    (tmp_path / "ham" / "images" / f"{ids[6]}.jpg").unlink()
    (tmp_path / "ham" / "images" / f"{ids[6]}.jpg").write_bytes(b"")
    uri = str(tmp_path / "store")
    out = invoke("--store", uri, "ingest", "ham10000", "--root", str(tmp_path / "ham"), "--split", "paper", "--json")
    data = json.loads(out.output)
    assert data["rows_written"] == 68 and data["split"] == "paper"
    assert sorted(s["sample_id"] for s in data["skipped"]) == sorted(ids[5:7])
    assert set(data["class_counts"]) == {"train", "test"}
    text = invoke("--store", uri, "ingest", "ham10000", "--root", str(tmp_path / "ham"), "--no-progress").output
    assert "skipped 2 sample(s) (full list with --json):" in text
    assert "1  file not found" in text and "1  file is empty" in text


def test_bad_input_is_one_line_and_nonzero(tmp_path):
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id;image_id;dx\nH;I;nv\n")
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "ingest", "ham10000", "--root", str(tmp_path)])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "looks ';'-separated" in lines[0]
    res = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "ingest", "ham10000", "--root", str(tmp_path),
                                   "--rgb", "paper"])
    assert res.exit_code == 1 and "do not apply to kind 'ham10000'" in res.output


def test_manifest_through_the_cli(shared_data, tmp_path):
    photos = sorted((shared_data / "ham10000-dev270" / "images").iterdir())[:10]
    lines = ["file,path,y,age"] + [f"m{i},{p},{'xy'[i % 2]},{20 + i}" for i, p in enumerate(photos)]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    uri = str(tmp_path / "store")
    res = invoke("--store", uri, "ingest", "manifest", "--root", str(tmp_path / "list.csv"), "--name", "mine",
                 "--id-column", "file", "--image-column", "path", "--label-column", "y",
                 "--text-template", "A patient aged {age}.", "--json")
    data = json.loads(res.output)
    assert data["rows_written"] == 10 and data["prompt_name"] == "template"
    rows = {r["sample_id"]: r for r in Store(uri).samples("mine").to_pylist()}
    assert rows["m3"]["text"] == "A patient aged 23." and rows["m3"]["label"] == "y"
