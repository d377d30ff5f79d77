"""Reading input tables: encodings, delimiters, missing columns, duplicate ids, prompt files."""

from __future__ import annotations

import pytest

from embedstore.datasets import build_rows, ham10000, options
from embedstore.datasets.base import read_csv
from embedstore.datasets.prompts import PromptTemplate, resolve_prompt
from embedstore.errors import InputError


def _ham_csv(tmp_path, text: str):
    (tmp_path / ham10000.METADATA).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return tmp_path


HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization"


def test_missing_columns_are_listed_with_the_columns_found(tmp_path):
    _ham_csv(tmp_path, "lesion_id,image_id,dx_type,age,sex\r\nHAM_1,ISIC_1,histo,80,male\r\n")
    with pytest.raises(InputError) as err:
        ham10000.rows(tmp_path, progress=False)
    msg = str(err.value)
    assert "HAM10000_metadata.csv" in msg and "['localization']" in msg  # dx may be absent (predict-only)
    assert "found ['lesion_id', 'image_id', 'dx_type', 'age', 'sex']" in msg and "\n" not in msg


def test_duplicate_ids_are_an_error_with_examples(tmp_path):
    _ham_csv(tmp_path, f"{HEADER}\nHAM_1,ISIC_1,nv,histo,80,male,back\nHAM_2,ISIC_2,nv,histo,80,male,back\n"
                       "HAM_3,ISIC_1,mel,histo,70,male,face\n")
    with pytest.raises(InputError, match=r"duplicate value\(s\) in id column 'image_id', e.g. 'ISIC_1' \(data rows 1, 3\)"):
        ham10000.rows(tmp_path, progress=False)


def test_wrong_delimiter_names_the_fix(tmp_path):
    _ham_csv(tmp_path, HEADER.replace(",", ";") + "\nHAM_1;ISIC_1;nv;histo;80;male;back\n")
    with pytest.raises(InputError, match="looks ';'-separated; re-save it comma-separated"):
        ham10000.rows(tmp_path, progress=False)


def test_non_utf8_names_the_line_and_the_fix(tmp_path):
    _ham_csv(tmp_path, f"{HEADER}\nHAM_1,ISIC_1,nv,histo,80,male,back\nHAM_2,ISIC_2,nv,histo,80,male,".encode()
             + "pé\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"not valid UTF-8 \(line 3, .*re-save it as UTF-8"):
        ham10000.rows(tmp_path, progress=False)


def test_bom_crlf_and_pandas_missing_values(tmp_path):
    p = tmp_path / "m.csv"
    p.write_bytes(b"\xef\xbb\xbfid,age,note\r\na,NaN,\"x,\r\ny\"\r\nb,,NA\r\n")
    frame = read_csv(p, required=["id"])
    assert frame.columns == ["id", "age", "note"]
    assert frame.rows() == [("a", None, "x,\ny"), ("b", None, None)]


def test_ragged_rows_are_reported(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("id,age\na,1\nb,2,extra\n")
    with pytest.raises(InputError, match=r"m.csv: data row 2 \(line 3\) has 3 fields, the header has 2; quote"):
        read_csv(p)


def test_prompt_file_and_unknown_fields(shared_data, tmp_path):
    root = shared_data / "ham10000-sample70"
    tmpl = tmp_path / "short.txt"
    tmpl.write_text("A {sex} patient, {age} years, lesion on the {localization}.\n")
    built = ham10000.rows(root, prompt=str(tmpl), progress=False)
    assert set(built.table["prompt_name"].to_pylist()) == {"file:short.txt"}
    assert built.table["prompt_template"][0].as_py() == "A {sex} patient, {age} years, lesion on the {localization}."
    assert "A male patient, 75 years, lesion on the ear." in built.table["text"].to_pylist()
    tmpl.write_text("Lesion {size}.")
    with pytest.raises(InputError, match=r"unknown field\(s\) \['size'\].*available: \['age', 'dx_type'"):
        ham10000.rows(root, prompt=str(tmpl), progress=False)
    with pytest.raises(InputError, match="use named fields"):
        PromptTemplate("x", "a {} b").fields
    with pytest.raises(InputError, match="unknown prompt 'papr' for brset: use paper, default, findings or"):
        resolve_prompt("brset", "papr", ["age"])


def test_options_are_checked_per_kind():
    assert "text_template" in options("manifest")
    with pytest.raises(InputError, match=r"option\(s\) \['rgb'\] do not apply to kind 'ham10000'"):
        build_rows("ham10000", ".", rgb="paper")
