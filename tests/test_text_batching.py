"""Texts batched by length: vectors in input order, equal to one text per call; extract says what a run cost."""

from __future__ import annotations

import os

import numpy as np
from click.testing import CliRunner

from embedstore.extract import extract
from embedstore.extract_inputs import batch_plan, prefetch_batches
from embedstore.extractors import load_extractor
from embedstore.extractors.backends import min_cosine
from tests.test_extract import write_dataset

#: lengths deliberately mixed, so length order differs from input order
TEXTS = ["melanoma", "a pigmented lesion on the upper back of a 45 year old male patient, histopathology confirmed",
         "nevus", "the optic disc is present, vessels are present, and the macula is absent",
         "a lesion", "benign keratosis-like lesion on the face of an elderly female patient, seen on follow-up",
         "basal cell carcinoma on the scalp", "x"]


def _rowwise_cos(a, b):
    return [min_cosine(a[i:i + 1], b[i:i + 1]) for i in range(len(a))]


def test_length_sorted_batches_return_vectors_in_input_order_equal_to_one_at_a_time(bert_dir):
    ext = load_extractor(bert_dir)
    plan = batch_plan(ext, "text", TEXTS, 3)
    assert sorted(i for p in plan for i in p) == list(range(len(TEXTS)))  # every text once
    assert [i for p in plan for i in p] != list(range(len(TEXTS)))  # reordered: the test exercises it
    lengths = ext.text_lengths(TEXTS)
    flat = [lengths[i] for p in plan for i in p]
    assert flat == sorted(flat)  # each batch pads only to its own longest
    batched = ext.encode_texts(TEXTS, batch_size=3)
    single = np.concatenate([ext.encode_texts([t]) for t in TEXTS])
    assert min(_rowwise_cos(single, batched)) >= 0.9999  # row i is text i's vector
    assert min_cosine(single[::-1], batched) < 0.9999  # ... and not another's


def test_extract_batches_texts_by_length_within_a_chunk_and_keeps_each_vector_with_its_sample(store, tmp_path,
                                                                                             bert_dir):
    texts = TEXTS * 3
    write_dataset(store, "toy", tmp_path / "img", range(len(texts)), texts=texts)
    ext = load_extractor(bert_dir)
    ext.ensure_loaded()
    ids = [f"s{i}" for i in range(len(texts))]
    batches = list(prefetch_batches(ext, "text", ids, texts, 4, [], window=8))
    seen = [i for idx, _ in batches for i in idx]
    assert sorted(seen) == list(range(len(texts)))
    lengths = ext.text_lengths(texts)
    for start in range(0, len(texts), 8):  # sorted within each window of 8 rows, windows in order
        window = [i for i in seen if start <= i < start + 8]
        assert seen[start:start + len(window)] == window and [lengths[i] for i in window] == sorted(
            lengths[i] for i in window)
    rep = extract(store, "toy", bert_dir, modality="text", batch_size=4, chunk_rows=8, progress=False, threads=1)
    assert rep.computed == len(texts) and rep.result("text").forward_calls == 6
    got_ids, got = store.embeddings("toy", rep.model_key, "text", as_="numpy")
    single = np.concatenate([ext.encode_texts([texts[int(s[1:])]]) for s in got_ids])
    assert min(_rowwise_cos(single, got)) >= 0.9999


def test_busy_note_is_one_line_above_the_core_count(monkeypatch):
    from embedstore.cpu import busy_note

    n = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (n + 1.5, 0.0, 0.0))
    note = busy_note()
    assert note is not None and "\n" not in note and f"{n + 1.5:.1f}" in note and f"{n} logical CPUs" in note
    monkeypatch.setattr(os, "getloadavg", lambda: (float(n), 0.0, 0.0))
    assert busy_note() is None  # at the core count: not busy


def test_extract_prints_rows_per_second_and_says_when_the_machine_is_busy(store, tmp_path, bert_dir, monkeypatch):
    from embedstore.cli.main import cli

    write_dataset(store, "toy", tmp_path / "img", range(6))
    monkeypatch.setattr(os, "getloadavg", lambda: (4.0 * (os.cpu_count() or 1), 0.0, 0.0))
    res = CliRunner().invoke(cli, ["--store", store.uri, "extract", "toy", "--model", bert_dir, "--modality", "text",
                                   "--no-progress", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "text: 6 rows in " in res.output and " rows/s on torch fp32" in res.output
    assert sum(line.startswith("machine busy: 1-minute load average") for line in res.output.splitlines()) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    write_dataset(store, "more", tmp_path / "img2", range(6, 9))
    quiet = CliRunner().invoke(cli, ["--store", store.uri, "extract", "more", "--model", bert_dir, "--modality",
                                     "text", "--no-progress", "--threads", "1"])
    assert quiet.exit_code == 0 and "machine busy" not in quiet.output and "rows/s on torch fp32" in quiet.output
