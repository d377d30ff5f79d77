"""Mode rules as data (embedstore/modes.py): what honest and paper decide, read by embedstore and the trainers."""

from __future__ import annotations

import pytest

from embedstore.errors import InputError
from embedstore.modes import MODES, mode_rules
from embedstore.sweep_records import SweepPoint, plot_rows, select, table_rows
from embedstore.trainers.protocol import resolve_protocol


def test_honest_and_paper_rules():
    h, p = mode_rules("honest"), mode_rules("paper")
    assert (h.splits, h.default_split, h.fit_on, h.select_on, h.select_metric) == (
        ("train", "val", "test"), None, "train", "val", "macro_f1")
    assert (p.splits, p.default_split, p.fit_on, p.select_on, p.select_metric) == (
        ("train", "test"), "paper", "all", "test", "accuracy")
    assert h.tests_once and h.early_stopping and h.audits_alignments and h.cross_validation and h.selects_on_val
    assert not (p.tests_once or p.early_stopping or p.audits_alignments or p.cross_validation or p.selects_on_val)
    assert p.raw_inputs and p.presets and not h.raw_inputs
    with pytest.raises(InputError, match="unknown mode 'fast': use honest or paper"):
        mode_rules("fast")


@pytest.mark.parametrize("mode", MODES)
def test_protocol_carries_its_rules_and_the_record_stays_the_same(mode):
    proto = resolve_protocol(mode)
    rules = mode_rules(mode)
    assert proto.rules is rules and proto.splits == rules.splits and proto.fit_on == rules.fit_on
    assert proto.select_on == rules.select_on and proto.select_metric == rules.select_metric
    assert proto.default_split == rules.default_split
    assert proto.setup_splits() == ("train", rules.select_on) and proto.setup_splits(cv=True) == rules.splits
    # the recorded protocol (and so the demo's cache keys) has exactly the fields it had before
    assert set(proto.to_dict()) == {"mode", "epochs", "lr", "weight_decay", "batch_size", "dropout", "split",
                                    "select_on", "patience"}
    assert (proto.patience is not None) == rules.early_stopping


def test_sweep_readers_follow_the_rules():
    pts = [SweepPoint(lam, "k", "g", 2, [], 0.5, 0.0, 0.4, 0.0, 0.6, 0.0, 0.3, 0.0) for lam in (0.0, 1.0)]
    assert select(pts, "honest")["criterion"] == "mean validation macro-F1"
    assert "best_acc_lam" in select(pts, "paper")
    assert {r["series"] for r in plot_rows(pts, "early", "honest")} == {"early test", "early val"}
    assert {r["series"] for r in plot_rows(pts, "early", "paper")} == {"early test (best epoch on test)"}
    assert "val_f1" in table_rows(pts, "honest")[0] and "val_f1" not in table_rows(pts, "paper")[0]
