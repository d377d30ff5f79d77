"""Label issues: cleanlab's finder on out-of-fold class probabilities.

The probabilities come from a model that never saw the row it scores
(grouped cross-validation; the door with the linear probe or another head
is :func:`embedstore.trainers.checks.check`). cleanlab's
:func:`~cleanlab.filter.find_label_issues` flags the rows whose given label
the probabilities contradict (confident learning, pruned by the estimated
noise rates), and :func:`~cleanlab.rank.get_label_quality_scores` (the
self-confidence, the probability of the given label) ranks every row, so a
reviewer reads the most suspect first. cleanlab is an optional extra:
``pip install 'embedstore[checks]'``.

Examples
--------
>>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.95, 0.05], [0.2, 0.8], [0.3, 0.7]])
>>> found = label_issues(np.array(["s0", "s1", "s2", "s3", "s4", "s5"]), np.array([0, 0, 1, 1, 1, 1]),
...                      probs, ["a", "b"])
>>> found[0]["sample_id"], found[0]["given"], found[0]["suggested"], found[0]["issue"]
('s3', 'b', 'a', True)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import require

#: What a probability source computes: out-of-fold ``(n, K)`` probabilities of rows ``x`` (``{modality: (n, d)}``)
#: with integer labels ``y`` and groups ``groups``, in ``k`` folds drawn with ``seed``.
ProbabilityFn = Callable[..., np.ndarray]

RANKED_BY = "self_confidence"


def label_issues(ids: Sequence[str], y: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Every row ranked by label quality (most suspect first), with cleanlab's verdict.

    Returns
    -------
    list of dict
        ``sample_id``, ``given``, ``suggested`` (the most probable class),
        ``quality`` (probability of the given label), ``p_suggested``,
        ``issue`` (flagged by cleanlab's finder) and ``rank`` (1 = most suspect).
    """
    require("cleanlab", "embedstore[checks]")
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    present = np.unique(y)
    if len(present) < 2 or len(y) < 2 * len(classes):
        return []
    quality = get_label_quality_scores(y, probs, method=RANKED_BY)
    flagged = np.zeros(len(y), dtype=bool)
    counts = np.bincount(y, minlength=len(classes))
    if (counts[present] >= 2).all() and len(present) == len(classes):
        flagged = np.asarray(find_label_issues(y, probs, filter_by="prune_by_noise_rate", n_jobs=1), dtype=bool)
    order = np.lexsort((np.asarray(ids, dtype=str), quality))
    suggested = probs.argmax(axis=1)
    return [{"sample_id": str(ids[i]), "given": classes[y[i]], "suggested": classes[suggested[i]],
             "quality": float(quality[i]), "p_suggested": float(probs[i, suggested[i]]), "issue": bool(flagged[i]),
             "rank": r + 1} for r, i in enumerate(order)]
