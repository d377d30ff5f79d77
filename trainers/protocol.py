"""The two training protocols (paper and honest) and their losses.

``paper`` reproduces the authors' code (protocol §3.2–3.3): AdamW lr 1e-3 and
weight decay 0.01, 30 epochs, batch 64, dropout 0, split ``paper`` (val rows
ignored), the test split evaluated after every epoch with the best-accuracy
and best-F1 epochs both reported. Its losses keep the code's behaviour:

* one output (BRSET): ``BCEWithLogitsLoss`` **without** weights: the code's
  balanced weight collapses to ``[1.0]`` (the no-op bug, §3.2);
* several outputs: cross-entropy with balanced class weights
  ``w_c = N / (K · n_c)``, averaged over the batch size N (soft one-hot
  targets make PyTorch divide by N, not by Σw).

``honest`` (the default) uses split ``grouped`` (train/val/test), selects the
epoch and stops early on validation macro-F1, touches test once, and uses
class weights that act: ``pos_weight = n_neg / n_pos`` for single-logit BCE,
PyTorch's weighted-mean cross-entropy otherwise.

Examples
--------
>>> p = resolve_protocol("paper")
>>> (p.epochs, p.lr, p.weight_decay, p.batch_size, p.split, p.select_on)
(30, 0.001, 0.01, 64, 'paper', 'test')
>>> resolve_protocol("honest", epochs=5).select_on
'val'
>>> p.splits, p.fit_on, p.select_metric, p.default_split
(('train', 'test'), 'all', 'accuracy', 'paper')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedstore.errors import InputError
from embedstore.numbers import check_number
from embedstore.modes import MODES, ModeRules, mode_rules  # noqa: F401 (MODES re-exported)


@dataclass(frozen=True)
class Protocol:
    """Optimisation and evaluation settings of one training protocol.

    Attributes
    ----------
    mode : str
        ``paper`` or ``honest``.
    epochs : int
        Epochs (the maximum, in honest mode).
    lr, weight_decay : float
        AdamW settings.
    batch_size : int
    dropout : float
    split : str
        Default split column name (``paper`` / ``grouped``).
    select_on : str
        Split used for epoch selection: ``test`` (paper) or ``val`` (honest).
    patience : int or None
        Early-stopping patience in epochs (honest mode), ``None`` = off.
        The default, 10, outlasts the BatchNorm warm-up: the running
        statistics used in eval mode start at mean 0 / variance 1 and need a
        few dozen optimiser steps to reach the data's scale, so on a small
        dataset (a few batches per epoch) a shorter patience stops while
        every validation prediction is still the same class.
    """

    mode: str
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    dropout: float = 0.0
    split: str = "grouped"
    select_on: str = "val"
    patience: int | None = 10

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored in the run record; the rules follow from ``mode``)."""
        return asdict(self)

    @property
    def rules(self) -> ModeRules:
        """What this protocol's mode decides (:mod:`embedstore.modes`)."""
        return mode_rules(self.mode)

    @property
    def splits(self) -> tuple[str, ...]:
        """Splits a run needs: ``train``/``test`` (paper) or ``train``/``val``/``test``."""
        return self.rules.splits

    @property
    def default_split(self) -> str | None:
        """Split trained on when none is given (``None``: the store's default)."""
        return self.rules.default_split

    @property
    def fit_on(self) -> str:
        """Rows an alignment is fitted on under this protocol (``train``, or ``all`` as the paper did)."""
        return self.rules.fit_on

    @property
    def select_metric(self) -> str:
        """Metric that selects the epoch on :attr:`select_on`."""
        return self.rules.select_metric

    def setup_splits(self, cv: bool = False) -> tuple[str, ...]:
        """Splits a source prepares up front: train and the selection split (every split under CV)."""
        return self.splits if cv else ("train", self.select_on)


_DEFAULTS = {m: Protocol(m, split=mode_rules(m).default_split or "grouped", select_on=mode_rules(m).select_on,
                         patience=10 if mode_rules(m).early_stopping else None) for m in MODES}


def resolve_protocol(mode: str = "honest", **overrides: Any) -> Protocol:
    """The protocol of ``mode`` with non-``None`` ``overrides`` applied."""
    mode_rules(mode)  # refuses an unknown mode
    settings = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(settings) - set(Protocol.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown protocol settings {sorted(unknown)}")
    proto = replace(_DEFAULTS[mode], **settings)
    check_number("epochs", proto.epochs, low=1, integer=True)
    check_number("batch_size", proto.batch_size, low=1, integer=True)
    check_number("lr", proto.lr, low=0, low_open=True, fix="e.g. 0.001")
    check_number("weight_decay", proto.weight_decay, low=0)
    check_number("dropout", proto.dropout, low=0, high=1, high_open=True)
    if proto.patience is not None:
        check_number("patience", proto.patience, low=0, integer=True, fix="epochs without improvement before "
                     "stopping, e.g. 10")
    return proto


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``w_c = N / (K · n_c)`` over the classes present (1.0 for absent ones).

    Examples
    --------
    >>> balanced_weights(np.array([0, 0, 0, 1]), 2).round(3).tolist()
    [0.667, 2.0]
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes, dtype=np.float64)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w


class TaskLoss:
    """The task loss of a protocol for a given output size and train labels.

    Call it as ``loss(logits, y)`` with integer labels ``y``. ``describe()``
    says what it is (stored in the run record).

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1])
    >>> TaskLoss("paper", 1, y).describe()["pos_weight"] is None
    True
    >>> TaskLoss("honest", 1, y).describe()["pos_weight"]
    3.0
    """

    def __init__(self, mode: str, output_size: int, y_train: np.ndarray, n_classes: int | None = None) -> None:
        self.mode = mode
        self.rules = mode_rules(mode)
        self.output_size = int(output_size)
        n_classes = int(n_classes or max(int(np.max(y_train)) + 1, 2))
        self.pos_weight: torch.Tensor | None = None
        self.class_weight: torch.Tensor | None = None
        if self.output_size == 1:
            if n_classes > 2:
                raise InputError(f"output size 1 needs a binary task, this one has {n_classes} classes")
            if self.rules.weighted_bce:
                pos = float(np.sum(y_train == 1))
                neg = float(np.sum(y_train == 0))
                self.pos_weight = torch.tensor([neg / pos if pos else 1.0], dtype=torch.float32)
        else:
            if self.output_size < n_classes:
                raise InputError(f"output size {self.output_size} is smaller than the {n_classes} classes")
            self.class_weight = torch.tensor(balanced_weights(y_train, self.output_size), dtype=torch.float32)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.output_size == 1:
            return F.binary_cross_entropy_with_logits(logits.squeeze(1), y.to(logits.dtype),
                                                      pos_weight=self.pos_weight)
        if self.rules.loss_reduction == "sum_w/N":  # the paper's soft one-hot targets: weighted sum / N
            nll = F.cross_entropy(logits, y, reduction="none")
            return (nll * self.class_weight[y]).mean()
        return F.cross_entropy(logits, y, weight=self.class_weight)

    def describe(self) -> dict[str, Any]:
        """Loss name and weights, JSON-able."""
        if self.output_size == 1:
            return {"loss": "bce_logits", "pos_weight": None if self.pos_weight is None
                    else round(float(self.pos_weight[0]), 6)}
        return {"loss": "cross_entropy", "reduction": self.rules.loss_reduction,
                "class_weight": [round(float(w), 6) for w in self.class_weight]}


def alignment_loss(h_text: torch.Tensor, h_image: torch.Tensor) -> torch.Tensor:
    """Intra-modal alignment regulariser ``mean(1 − cos(h_text, h_image))``.

    Our interpretation of the paper's lost formula (protocol §5.2), applied to
    the two late-fusion branch outputs; multiply by ``align_loss_weight``.

    Examples
    --------
    >>> h = torch.ones(3, 4)
    >>> float(alignment_loss(h, h))
    0.0
    >>> float(alignment_loss(h, -h))
    2.0
    """
    if h_text.shape != h_image.shape:
        raise InputError(f"alignment loss needs equal branch widths, got {tuple(h_text.shape)} "
                         f"and {tuple(h_image.shape)}: give both branches the same last hidden size")
    return (1.0 - F.cosine_similarity(h_text, h_image, dim=1)).mean()
