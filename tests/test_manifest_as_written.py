"""Manifests as written: ids and text as in the file, any column name, the dialects spreadsheets write.

Every test ingests a real manifest (real image files, or a text-only one) into
a real store through the CLI or the API and reads the rows back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from embedstore import Store
from embedstore.ingest import ingest
from tests.helpers import invoke_cli, one_line_error


@pytest.fixture
def pics(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (12, 10), (40 * i, 90, 200 - 30 * i)).save(folder / f"{i}.png")
    return folder


def _write(path: Path, text: str, *, bom: bool = False, crlf: bool = False) -> Path:
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_ids_and_free_text_are_stored_as_written(tmp_path, pics):
    m = _write(pics / "m.csv", "id,image,label,zip,age,dose,note\n"
                               "007,0.png,a,02139,41,1.50,first\n"
                               "7,1.png,b,94110,7,2.25,second\n"
                               "00042,2.png,a,10001,,1e3,\n")
    store = Store(tmp_path / "s")
    rep = ingest(store, "manifest", m, name="d", text_template="Zip {zip}, age {age}, dose {dose}.", progress=False)
    assert rep.rows_total == 3 and not rep.skipped
    rows = {r["sample_id"]: r for r in store.samples("d").to_pylist()}
    assert set(rows) == {"007", "7", "00042"}  # three ids, none collapsed into another
    assert rows["007"]["text"] == "Zip 02139, age 41, dose 1.50."  # leading zero and trailing zero kept
    assert rows["00042"]["text"] == "Zip 10001, age No data reported, dose 1e3."
    assert rows["007"]["zip"] == "02139" and rows["007"]["dose"] == "1.50" and rows["007"]["note"] == "first"
    schema = store.open_table("samples__d").schema
    assert schema.field("zip").type == pa.string() and schema.field("dose").type == pa.string()
    assert schema.field("age").type == pa.int64() and rows["7"]["age"] == 7  # every value an exact integer


def test_any_column_name_ingests_with_its_original_kept(tmp_path, pics):
    m = _write(pics / "m.csv", "id,image,label,Patient.Age,Lesion `site`,body site,\n"
                               "a,0.png,x,41,back,left arm,z1\n"
                               "b,1.png,y,57,face,right leg,z2\n")
    r = invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", m, "--name", "d", "--no-progress",
                   "--text-template", "Age {Patient.Age} ({Patient_Age}); {Lesion `site`}; {body site}.")
    assert r.exit_code == 0, r.output
    store = Store(tmp_path / "s")
    schema = store.open_table("samples__d").schema
    stored = {f.name: (f.metadata or {}).get(b"original_name", b"").decode() for f in schema
              if f.metadata and b"original_name" in f.metadata}
    assert stored == {"Patient_Age": "Patient.Age", "Lesion _site_": "Lesion `site`", "body site": "body site",
                      "column_7": "column_7"}  # an empty header cell is named by its position
    row = store.samples("d").to_pylist()[0]
    assert row["text"] == "Age 41 (41); back; left arm." and row["Patient_Age"] == 41 and row["column_7"] == "z1"
    # the storage name filters like any column
    r = invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", m, "--name", "d", "--no-progress", "--json",
                   "--text-template", "Age {Patient.Age} ({Patient_Age}); {Lesion `site`}; {body site}.")
    assert r.exit_code == 0 and json.loads(r.output)["rows_written"] == 0  # a re-ingest is unchanged


def test_a_late_non_numeric_value_keeps_the_column_text_instead_of_aborting(tmp_path):
    rows = [f"s{i},{i % 2},{20 + i % 60},note {i}" for i in range(10_050)]
    rows[10_020] = "s10020,0,unknown,note"  # one non-numeric value after row 10,000
    m = _write(tmp_path / "m.csv", "id,label,age,text\n" + "\n".join(rows) + "\n")  # text-only: no image column
    r = invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", m, "--name", "d", "--no-progress", "--json")
    assert r.exit_code == 0, r.output
    store = Store(tmp_path / "s")
    assert store.samples("d").num_rows == 10_050
    assert store.open_table("samples__d").schema.field("age").type == pa.string()
    ages = dict(zip(*store.samples("d", columns=["sample_id", "age"]).to_pydict().values()))
    assert ages["s10020"] == "unknown" and ages["s5"] == "25"
    # declared numeric: the bad value is refused in one line naming the row, the id, the column and the value
    line = one_line_error(invoke_cli(tmp_path / "s2", "ingest", "manifest", "--root", m, "--name", "d",
                                     "--column-type", "age=int", "--no-progress"),
                          "data row 10021 (id s10020) column 'age': 'unknown' is not an int",
                          "declare the column str")
    assert "quot" not in line  # no advice about quoting
    assert not Store(tmp_path / "s2").datasets()
    r = invoke_cli(tmp_path / "s3", "ingest", "manifest", "--root", m, "--name", "d", "--no-progress",
                   "--column-type", "label=str")  # id/label/image/text are always text: not metadata
    one_line_error(r, "column_types names 'label', which is not a column")


def test_spreadsheet_dialects_bom_semicolons_and_quoted_newlines(tmp_path, pics):
    m = _write(pics / "m.csv", 'id;image;label;text;weight\n'
                               'a;0.png;x;"first line\nsecond; with a semicolon";1,5\n'
                               'b;1.png;y;"said ""hello""";2,0\n', bom=True, crlf=True)
    r = invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", m, "--name", "d", "--no-progress")
    assert r.exit_code == 0 and "read as ';'-separated" in r.output, r.output
    rows = {x["sample_id"]: x for x in Store(tmp_path / "s").samples("d").to_pylist()}
    assert rows["a"]["text"] == "first line\nsecond; with a semicolon" and rows["b"]["text"] == 'said "hello"'
    assert rows["a"]["weight"] == "1,5"  # a decimal comma stays as written


@pytest.mark.parametrize("text, needle", [
    ('id,image,label\na,0.png,x\nb,1.png,y,extra\n', "data row 2 (line 3) has 4 fields, the header has 3"),
    ('id,image,label,text\na,0.png,x,"never closed\nb,1.png,y,fine\n', "data row 1 (line 2) is not valid CSV"),
    ('id,image,label,age,age\na,0.png,x,1,2\n', "column 'age' appears twice in the header (columns 4 and 5)"),
    ('id;image\tlabel\na;0.png\tx\n', "the header has no ',' but several of [';', '\\\\t']"),
])
def test_dialects_that_cannot_be_read_are_refused_in_one_line_naming_the_row(tmp_path, pics, text, needle):
    m = _write(pics / "m.csv", text)
    one_line_error(invoke_cli(tmp_path / "s", "ingest", "manifest", "--root", m, "--name", "d", "--no-progress"),
                   str(m), needle)
    assert not Store(tmp_path / "s").datasets()


def test_parquet_manifests_keep_their_types_and_any_column_name(tmp_path, pics):
    import pyarrow.parquet as pq

    table = pa.table({"id": [7, 8], "image": ["0.png", "1.png"], "label": ["x", "y"],
                      "Patient.Age": [41.5, 57.0], "zip": ["02139", "94110"]})
    pq.write_table(table, pics / "m.parquet")
    store = Store(tmp_path / "s")
    ingest(store, "manifest", pics / "m.parquet", name="d", text_template="{Patient.Age} {zip}", progress=False)
    rows = {r["sample_id"]: r for r in store.samples("d").to_pylist()}
    assert rows["7"]["Patient_Age"] == 41.5 and rows["7"]["text"] == "41.5 02139"
