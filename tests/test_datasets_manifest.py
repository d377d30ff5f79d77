"""Generic manifest adapter: CSV and Parquet, column options, templates, splits."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from embedstore.datasets import manifest
from embedstore.errors import InputError


@pytest.fixture
def mroot(shared_data, tmp_path):
    """20 real HAM photos (linked) and a manifest with relative paths and extra columns."""
    src = sorted((shared_data / "ham10000-dev270" / "images").iterdir())[:20]
    (tmp_path / "pics").mkdir()
    lines = ["file,path,y,age,site,patient,text,split,label_extra"]
    for i, photo in enumerate(src):
        (tmp_path / "pics" / photo.name).symlink_to(photo)
        age = "" if i == 3 else str(30 + i)
        lines.append(f"f{i},pics/{photo.name},{'ab'[i % 2]},{age},site {i % 3},p{i // 2},note {i},"
                     f"{['train', 'valid', 'test'][i % 3]},{i}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_template_columns_types_and_splits(mroot):
    built = manifest.rows(mroot, id_column="file", image_column="path", label_column="y",
                          text_template="Age {age}, {site}.", group_column="patient", progress=False)
    rows = {r["sample_id"]: r for r in built.table.to_pylist()}
    assert len(rows) == 20 and not built.skipped
    assert rows["f0"]["text"] == "Age 30, site 0." and rows["f3"]["text"] == "Age No data reported, site 0."
    assert rows["f0"]["label"] == "a" and rows["f1"]["label"] == "b"
    assert rows["f0"]["prompt_name"] == "template" and rows["f0"]["prompt_template"] == "Age {age}, {site}."
    assert rows["f0"]["image_ref"] == str(mroot / "pics" / sorted((mroot / "pics").iterdir())[0].name)
    assert rows["f0"]["age"] == 30 and rows["f3"]["age"] is None
    assert built.table.schema.field("age").type == "int64"
    assert rows["f0"]["meta_text"] == "note 0" and rows["f0"]["meta_label_extra"] == 0  # clashing names prefixed
    assert "meta_split" not in rows["f0"] and rows["f0"]["split"] == "train"
    for i in range(0, 20, 2):
        assert rows[f"f{i}"]["split_grouped"] == rows[f"f{i + 1}"]["split_grouped"]
    assert Counter(r["split_paper"] for r in rows.values()) == {"train": 16, "test": 4}


def test_text_column_split_column_and_parquet(mroot):
    frame = pl.read_csv(mroot / "labels.csv")
    frame.write_parquet(mroot / "labels.parquet")
    (mroot / "labels.csv").unlink()
    built = manifest.rows(mroot, id_column="file", image_column="path", label_column="y",
                          split_column="split", progress=False)
    rows = {r["sample_id"]: r for r in built.table.to_pylist()}
    assert rows["f1"]["text"] == "note 1" and rows["f1"]["prompt_name"] == "column:text"
    assert [rows[f"f{i}"]["split_paper"] for i in range(3)] == ["train", "val", "test"]


def test_template_file_missing_labels_and_errors(mroot, tmp_path):
    text = (mroot / "labels.csv").read_text().replace(",b,", ",,", 1)  # f1 loses its label
    (mroot / "labels.csv").write_text(text)
    tmpl = tmp_path / "t.txt"
    tmpl.write_text("{site}: age {age}")
    kw = dict(id_column="file", image_column="path", label_column="y", progress=False)
    built = manifest.rows(mroot, prompt=str(tmpl), **kw)
    assert built.table.num_rows == 19 and [s.sample_id for s in built.skipped] == ["f1"]
    assert built.table["prompt_name"][0].as_py() == "file:t.txt"
    # no "label" column is allowed (a predict-only dataset), no "image" column too (text-only); id is required
    with pytest.raises(InputError, match=r"missing required column\(s\) \['id'\]; found \['file'"):
        manifest.rows(mroot, progress=False)
    with pytest.raises(InputError, match="no 'paper' prompt"):
        manifest.rows(mroot, prompt="paper", **kw)
    with pytest.raises(InputError, match=r"unknown field\(s\) \['weight'\]"):
        manifest.rows(mroot, text_template="{weight}", **kw)
    with pytest.raises(InputError, match="either text_column= or text_template="):
        manifest.rows(mroot, text_column="text", text_template="{age}", **kw)
    (mroot / "other.csv").write_text("a\n")
    with pytest.raises(InputError, match="name one with manifest="):
        manifest.rows(mroot, **kw)
    (mroot / "semi.csv").write_text("file;path;y\nx;y;z\n")
    with pytest.raises(InputError, match="pass delimiter="):
        manifest.rows(mroot, manifest="semi.csv", delimiter=",", **kw)
    assert manifest.rows(mroot, manifest="semi.csv", delimiter=";", text_template="t", **kw).skipped[0].reason \
        .startswith("file not found")
