"""The report's answer cannot mislead: the best head is chosen among settings tested on the same rows only.

Recorded runs on a real store: five settings evaluated by 5-fold CV and one
by a single split with a higher test score. Picking the winner by test score
across protocols (the optimism the honest protocol exists to prevent) would
crown the single-split run and leave every paired comparison empty.
"""

from __future__ import annotations

import re

import numpy as np

from embedstore.results import primary_protocol, results_section, setting_rows
from embedstore.runs import RunRecord, new_run_id, record_run


def _record(store, gid, fusion, pred, y, *, fold=None, split="split_grouped", scale="standard", seed=0):
    cfg = {"scale": {"image": scale, "text": scale}}
    if fold is not None:
        cfg["cv"] = {"k": 5, "repeats": 1, "split_seed": 0, "fold": fold}
    acc = float(np.mean(np.asarray(pred) == np.asarray(y)))
    record_run(store, RunRecord(new_run_id(), "toy", fusion, "honest", seed, group_id=gid, split=split, config=cfg,
                                model_keys={"image": "k1", "text": "k2"},
                                metrics={"macro_f1": acc, "accuracy": acc, "test_y": list(y), "test_pred": list(pred),
                                         "classes": ["a", "b"]}))


def test_best_head_only_among_one_protocol_and_compared_on_its_rows(store):
    rng = np.random.default_rng(0)
    folds = [rng.integers(0, 2, 30) for _ in range(5)]
    quality = {"early": 0.92, "late": 0.75, "image": 0.6, "text": 0.55, "linear": 0.7}
    for fusion, q in quality.items():
        for fold, y in enumerate(folds):
            pred = np.where(rng.random(30) < q, y, 1 - y)
            _record(store, f"cv-{fusion}", fusion, pred, y, fold=fold)
    y = rng.integers(0, 2, 20)
    _record(store, "split-early", "early", y, y)  # a perfect score on one small split: another protocol
    rows = setting_rows(__import__("embedstore.runs", fromlist=["list_runs"]).list_runs(store, "toy"))
    assert rows[0]["group"] == "split-early"  # the highest test score overall...
    primary = primary_protocol(rows)
    assert {r["group"] for r in rows if r["_protocol"] == primary} == {f"cv-{f}" for f in quality}
    html, images, best = results_section(store, "toy")
    assert best == "cv-early" and images == 1  # ...is not the best head: it was tested on other rows
    answer = re.search(r'<p class="answer">(.*?)</p>', html).group(1)
    assert "early fusion, standardised inputs" in answer and "5-fold grouped cross-validation" in answer
    assert "1 other setting tested on other rows" in answer
    top, others = html.split("Settings tested on other rows", 1)
    # every CV head is compared with the best on the same rows: a difference with an interval, never "share no fold"
    assert top.count("<th>compared with</th>") == 1 and "share no fold" not in html
    for fusion in ("late fusion", "image only", "text only", "linear probe"):
        cells = re.search(rf"<td>{fusion}, standardised inputs</td>(.*?)</tr>", top).group(1)
        assert re.search(r"<td>[+-]\d\.\d{3} \([+-]\d\.\d{3} to [+-]\d\.\d{3}\)</td>", cells), (fusion, cells)
    assert "early fusion, standardised inputs" in others and "one grouped split (split_grouped)" in others
    # intervals of a metric stay in [0, 1] even for a perfect score
    for low, high in re.findall(r"\((\d\.\d{3})–(\d\.\d{3})\)", html):
        assert 0.0 <= float(low) <= float(high) <= 1.0


def test_pooled_counts_say_what_they_pool(store):
    y = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1]
    for seed in range(3):
        _record(store, "g", "early", y, y, seed=seed)
    html, _, _ = results_section(store, "toy")
    assert "10 test rows, predictions of 3 seeds pooled: each test row counts 3 times" in html
    # support counts each test row once (4 of class a, 6 of class b), not once per seed
    assert re.search(r"<td>a</td><td>1\.000</td><td>1\.000</td><td>1\.000</td><td>4</td>", html)
    assert re.search(r"<td>b</td><td>1\.000</td><td>1\.000</td><td>1\.000</td><td>6</td>", html)
