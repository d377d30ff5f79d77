"""Splits: the paper's exact 80/20 (and 60/20/20) and the grouped 70/10/20."""

from __future__ import annotations

from collections import Counter

from embedstore.datasets.ham10000 import read_metadata
from embedstore.datasets.splits import grouped_split, paper_split


def _full_metadata(shared_data):
    return read_metadata(shared_data / "ham10000" / "HAM10000_metadata.csv")


def test_paper_split_reproduces_the_papers_counts_on_full_ham10000(shared_data):
    frame = _full_metadata(shared_data)
    assert frame.height == 10015
    split = paper_split(frame["dx"].to_list(), seed=42)
    assert Counter(split) == {"train": 8012, "test": 2003}
    # protocol §1.2: test supports akiec, bcc, bkl, df, mel, nv, vasc
    test = Counter(d for d, s in zip(frame["dx"].to_list(), split) if s == "test")
    assert [test[c] for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")] == [65, 103, 220, 23, 223, 1341, 28]


def test_grouped_split_keeps_lesions_together_and_stratifies(shared_data):
    frame = _full_metadata(shared_data)
    dx, lesion = frame["dx"].to_list(), frame["lesion_id"].to_list()
    split = grouped_split(dx, lesion, seed=42)
    where: dict[str, set[str]] = {}
    for g, s in zip(lesion, split):
        where.setdefault(g, set()).add(s)
    assert all(len(s) == 1 for s in where.values()), "a lesion crosses splits"
    sizes = Counter(split)
    assert abs(sizes["train"] / 10015 - 0.7) < 0.01
    assert abs(sizes["val"] / 10015 - 0.1) < 0.01
    assert abs(sizes["test"] / 10015 - 0.2) < 0.01
    for cls in set(dx):
        n = dx.count(cls)
        frac = sum(1 for d, s in zip(dx, split) if d == cls and s == "test") / n
        assert abs(frac - 0.2) < 0.03, (cls, frac)
    assert grouped_split(dx, lesion, seed=42) == split
    assert grouped_split(dx, lesion, seed=7) != split


def test_satellite_paper_split_is_936_312_312_with_the_papers_test_balance():
    labels = ["0"] * 840 + ["1"] * 720
    split = paper_split(labels, seed=42, val_size=0.25)
    assert Counter(split) == {"train": 936, "val": 312, "test": 312}
    test = Counter(lab for lab, s in zip(labels, split) if s == "test")
    assert test == {"0": 168, "1": 144}


def test_paper_split_falls_back_when_a_class_is_too_small():
    notes: list[str] = []
    split = paper_split(["a"] * 9 + ["b"], seed=42, notes=notes)
    assert Counter(split) == {"train": 8, "test": 2}
    assert notes and "unstratified" in notes[0]


def test_grouped_split_handles_few_groups_and_is_order_independent():
    labels = ["1", "0", "1", "1", "0"]
    groups = ["a", "a", "b", "c", "c"]
    split = grouped_split(labels, groups, seed=3)
    assert split[0] == split[1] and split[3] == split[4]
    rev = grouped_split(labels[::-1], groups[::-1], seed=3)[::-1]
    assert rev == split
