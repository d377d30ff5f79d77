"""Metrics and the paper's data-memory formulas."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.trainers.metrics import classification_metrics, data_mib


def test_binary_macro_f1_is_the_mean_of_both_classes():
    y = np.array([0, 0, 0, 0, 1, 1])
    logits = np.array([[-1.0], [-1.0], [-1.0], [1.0], [1.0], [-1.0]])
    m = classification_metrics(y, logits, n_classes=2)
    f1_0, f1_1 = 2 * 3 / (2 * 3 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1)
    assert m["per_class_f1"] == pytest.approx([f1_0, f1_1])
    assert m["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)
    assert m["confusion"] == [[3, 1], [1, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["roc_auc_ovr"] == pytest.approx(0.625)


def test_multiclass_metrics_and_undefined_auc():
    y = np.array([0, 1, 2, 2])
    logits = np.eye(3)[[0, 1, 2, 1]] * 5
    m = classification_metrics(y, logits, n_classes=3)
    assert m["accuracy"] == 0.75 and m["confusion"][2] == [0, 1, 1]
    assert m["roc_auc_ovr"] is not None
    assert classification_metrics(np.array([1, 1]), np.array([[1.0], [2.0]]), 2)["roc_auc_ovr"] is None


@pytest.mark.parametrize("n_train,n_test,dim,labels,train,test_paper", [
    (13012, 3254, 768 + 4096, 1, 241.48, 15.10),   # BRSET DINOv2 + LLaMA-2
    (13012, 3254, 512 + 512, 1, 50.88, 3.18),      # BRSET CLIP
    (8012, 2003, 768 + 4096, 7, 148.87, 9.45),     # HAM DINOv2 + LLaMA-2
    (936, 312, 768 + 4096, 2, 17.37, 1.93),        # Satellite DINOv2 + LLaMA-2
])
def test_data_memory_reproduces_the_papers_numbers_and_the_corrected_test(n_train, n_test, dim, labels,
                                                                          train, test_paper):
    d = data_mib(n_train, n_test, dim, labels, 64)
    assert (round(d["train"], 2), round(d["test_paper"], 2)) == (train, test_paper)
    assert d["test"] == pytest.approx(n_test * (dim + labels) * 4 / 2**20)
    assert d["test"] > d["test_paper"]
