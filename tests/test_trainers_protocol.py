"""Protocols and losses: paper settings and its class-weight bug, honest weights that act."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedstore.errors import InputError
from embedstore.trainers.protocol import TaskLoss, alignment_loss, balanced_weights, resolve_protocol


def test_paper_protocol_reproduces_the_code_settings():
    p = resolve_protocol("paper")
    assert (p.epochs, p.lr, p.weight_decay, p.batch_size, p.dropout) == (30, 1e-3, 0.01, 64, 0.0)
    assert (p.split, p.select_on, p.patience) == ("paper", "test", None)
    h = resolve_protocol("honest", epochs=7, lr=None)
    assert (h.split, h.select_on, h.epochs, h.lr) == ("grouped", "val", 7, 1e-3)
    with pytest.raises(InputError, match="unknown mode"):
        resolve_protocol("fast")


def test_binary_single_logit_paper_is_unweighted_and_honest_uses_pos_weight():
    y = np.array([0] * 9 + [1])
    logits = torch.tensor([[0.3]] * 10)
    target = torch.tensor(y)
    paper = TaskLoss("paper", 1, y)
    honest = TaskLoss("honest", 1, y)
    plain = F.binary_cross_entropy_with_logits(logits.squeeze(1), target.float())
    assert torch.allclose(paper(logits, target), plain)  # the no-op weight bug
    assert honest.describe()["pos_weight"] == 9.0
    assert float(honest(logits, target)) > float(plain)


def test_multiclass_weights_are_balanced_and_paper_divides_by_n():
    y = np.array([0, 0, 0, 1, 2, 2])
    w = balanced_weights(y, 3)
    assert np.allclose(w, [6 / 9, 6 / 3, 6 / 6])
    logits = torch.randn(6, 3)
    target = torch.tensor(y)
    nll = F.cross_entropy(logits, target, reduction="none")
    wt = torch.tensor(w, dtype=torch.float32)[target]
    assert torch.allclose(TaskLoss("paper", 3, y)(logits, target), (nll * wt).sum() / 6)
    assert torch.allclose(TaskLoss("honest", 3, y)(logits, target), (nll * wt).sum() / wt.sum())


def test_two_logit_binary_uses_cross_entropy():
    y = np.array([0, 1, 1, 1])
    loss = TaskLoss("paper", 2, y)
    assert loss.describe()["loss"] == "cross_entropy"
    assert np.allclose(loss.describe()["class_weight"], [2.0, 4 / 6])
    with pytest.raises(InputError, match="binary"):
        TaskLoss("paper", 1, np.array([0, 1, 2]))


def test_alignment_loss_is_one_minus_cosine():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    assert float(alignment_loss(a, b)) == pytest.approx(0.5)
    with pytest.raises(InputError, match="equal branch widths"):
        alignment_loss(torch.ones(2, 3), torch.ones(2, 4))
