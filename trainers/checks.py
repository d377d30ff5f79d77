"""The door of ``embedstore check``: the store's data checks with the out-of-fold probe for label issues.

:func:`check` is :func:`embedstore.datacheck.check.run_checks` with its
probability source filled in: out-of-fold probabilities of the linear probe
(or a chosen head) from grouped cross-validation
(:func:`embedstore.trainers.oof.out_of_fold`). The probe's settings are part
of the record's key, so a second call with the same data and settings
computes nothing.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> from embedstore.pairs import toy_pairs
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> _ = toy_pairs(s, "toy", n=90)
>>> rep = check(s, "toy", k=3)
>>> len(rep.label_ranking), rep.settings["labels"]["head"], check(s, "toy", k=3).cached
(90, 'linear', True)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from embedstore.datacheck.check import CheckReport, run_checks
from embedstore.errors import InputError

from .oof import OOF_C_GRID, out_of_fold, probe_settings
from .seed_runs import HEADS


def check(store, dataset: str, *, head: str = "linear", k: int = 5, seed: int = 0, label_issues: bool = True,
          **options: Any) -> CheckReport:
    """Check ``dataset``: duplicates and leaks, group leaks, label issues, shortcut columns.

    Parameters
    ----------
    store : Store
    dataset : str
    head : str
        Model of the out-of-fold probabilities: ``linear`` (the probe) or an
        MLP head (``early``, ``late``, ``image``, ``text``).
    k, seed : int
        Grouped folds of the out-of-fold probabilities and their seed.
    label_issues : bool
        Compute label issues (the slowest part).
    **options
        Passed to :func:`~embedstore.datacheck.check.run_checks`
        (``image_model``, ``text_model``, ``versions``, ``threshold``, ``recompute``...).

    Returns
    -------
    CheckReport
    """
    if head not in HEADS:
        raise InputError(f"head={head!r}: use one of {', '.join(HEADS)}")
    if not label_issues:
        return run_checks(store, dataset, **options)
    fn = partial(out_of_fold, head=head, c_grid=OOF_C_GRID)
    return run_checks(store, dataset, probabilities=fn, probe=probe_settings(head, k, seed), **options)
