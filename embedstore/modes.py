"""What each training mode means, as data: :class:`ModeRules` and :func:`mode_rules`.

A run records its mode (``honest`` or ``paper``) as a string. The rules of
that mode (which splits it needs, the split it trains on by default, the
rows an alignment is fitted on, which split and metric select the epoch and
the λ, whether test is touched once) live here, once, so that the store's
readers (:mod:`embedstore.sweep_records`, :mod:`embedstore.report`) and the
trainers (:class:`embedstore.trainers.protocol.Protocol`, which carries
them) ask the rules instead of comparing mode strings. embedstore never
imports the trainers; the trainers read these rules.

Examples
--------
>>> mode_rules("paper").splits, mode_rules("honest").splits
(('train', 'test'), ('train', 'val', 'test'))
>>> mode_rules("honest").fit_on, mode_rules("paper").lambda_on
('train', 'test')
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

MODES = ("honest", "paper")


@dataclass(frozen=True)
class ModeRules:
    """The decisions a training mode fixes.

    Attributes
    ----------
    name : str
        ``honest`` or ``paper``.
    splits : tuple of str
        Splits a run needs (and whose rows its cost counts).
    default_split : str or None
        Split a run trains on when none is given (``None``: the store's
        default, ``grouped`` when present).
    fit_on : str
        Rows an alignment is fitted on in a sweep (``train`` or ``all``).
    select_on : str
        Split that selects the epoch (``val``, or ``test`` as the paper's code did).
    select_metric : str
        Metric that selects the epoch (``macro_f1`` or ``accuracy``).
    lambda_on : str
        Split whose scores select the sweep's λ.
    tests_once : bool
        The selected epoch's weights are restored and test is evaluated once
        (else the best-on-test epoch is reported).
    early_stopping : bool
        Patience applies.
    weighted_bce : bool
        Single-logit BCE gets ``pos_weight = n_neg / n_pos``.
    loss_reduction : str
        Weighted cross-entropy: ``weighted_mean`` (PyTorch's) or ``sum_w/N``.
    raw_inputs : bool
        Inputs are never scaled (the paper's raw vectors).
    audits_alignments : bool
        Refuses an alignment not fitted on this split's training rows.
    presets : bool
        Applies the paper's per-dataset settings.
    cross_validation : bool
        Grouped K-fold cross-validation is allowed.
    split_hint : str
        How to fix a split that lacks one of :attr:`splits`.
    input_scale : str
        Input scaling when a run names none (``standard``: fitted on the
        training rows; ``none``: the raw vectors). With no alignment this is
        the one "no alignment" row of the results table, the sweep and the
        report (:data:`embedstore.sweep_records.REFERENCE`).
    """

    name: str
    splits: tuple[str, ...]
    default_split: str | None
    fit_on: str
    select_on: str
    select_metric: str
    lambda_on: str
    tests_once: bool
    early_stopping: bool
    weighted_bce: bool
    loss_reduction: str
    raw_inputs: bool
    audits_alignments: bool
    presets: bool
    cross_validation: bool
    split_hint: str
    input_scale: str = "standard"

    @property
    def selects_on_val(self) -> bool:
        """True when the sweep's λ is chosen on validation (a λ is *selected*, not read off test)."""
        return self.lambda_on == "val"


_RULES = {
    "honest": ModeRules("honest", ("train", "val", "test"), None, "train", "val", "macro_f1", "val",
                        tests_once=True, early_stopping=True, weighted_bce=True, loss_reduction="weighted_mean",
                        raw_inputs=False, audits_alignments=True, presets=False, cross_validation=True,
                        split_hint="honest mode needs train/val/test: pass a split that has them "
                                   "(e.g. split_by='grouped') or use mode='paper'"),
    "paper": ModeRules("paper", ("train", "test"), "paper", "all", "test", "accuracy", "test",
                       tests_once=False, early_stopping=False, weighted_bce=False, loss_reduction="sum_w/N",
                       raw_inputs=True, audits_alignments=False, presets=True, cross_validation=False,
                       split_hint="pass a split with train and test rows", input_scale="none"),
}


def mode_rules(mode: str) -> ModeRules:
    """The :class:`ModeRules` of ``mode`` (a run record's ``mode``).

    Examples
    --------
    >>> mode_rules("honest").select_metric
    'macro_f1'
    >>> mode_rules("fast")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: unknown mode 'fast': use honest or paper
    """
    try:
        return _RULES[mode]
    except (KeyError, TypeError):
        raise InputError(f"unknown mode {mode!r}: use honest or paper") from None
