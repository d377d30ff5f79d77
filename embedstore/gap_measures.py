"""Gap measures beyond the centroid distance, on paired image/text matrices.

* :func:`relative_modality_gap` (RMG, Schrodi et al., ICLR 2025): the mean
  distance of matching pairs relative to the mean distances within each
  modality, with the cosine dissimilarity ``d(x, y) = (1 - cos(x, y)) / 2``::

      RMG = M / (W + M),   M = mean_i d(x_i, y_i),
      W = 1 / (2 N (N - 1)) * sum_{i != j} [d(x_i, x_j) + d(y_i, y_j)]

  0 when pairs coincide, near 1 when the modalities sit apart.
* :func:`gap_dimensions`: each dimension's share of ``||mu_img - mu_txt||^2``.
* :func:`pair_vs_random_cosine`: paired cosine against the cosine of random
  (deranged) pairs: the cross-modal signal beyond the gap.
* :func:`modality_separability`: cross-validated accuracy of a logistic
  regression telling image from text vectors (0.5 = inseparable).
* :func:`exact_text_recall`: image→text recall@k over the *distinct* texts,
  a hit when the retrieved text equals the paired one (duplicate prompts,
  e.g. HAM10000's repeated age/sex/site strings, cannot inflate it), with
  two chance levels: ``min(k, U) / U`` for ``U`` distinct texts (a random
  ranking), and the share of queries whose text is one of the ``k`` most
  common texts (always answering those, which scores far above ``k / U``
  when a few texts repeat often).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .alignment import l2_normalize


def _mean_offdiag(a: np.ndarray) -> float:
    n = len(a)
    s = a.sum(axis=0)
    return float((s @ s - np.einsum("ij,ij->", a, a)) / max(1, n * (n - 1)))


def relative_modality_gap(image: np.ndarray, text: np.ndarray) -> float:
    """RMG of row-paired ``image`` and ``text`` (see the module docstring).

    Examples
    --------
    >>> x = np.eye(3)
    >>> relative_modality_gap(x, x)
    0.0
    >>> round(relative_modality_gap(x, -x), 3)
    0.667
    """
    a, b = l2_normalize(image), l2_normalize(text)
    matched = float((1.0 - np.einsum("ij,ij->i", a, b)).mean() / 2.0)
    within = ((1.0 - _mean_offdiag(a)) + (1.0 - _mean_offdiag(b))) / 4.0
    return matched / (within + matched) if within + matched > 0 else 0.0


def gap_dimensions(image: np.ndarray, text: np.ndarray, top: int = 5) -> list[dict[str, float]]:
    """The ``top`` dimensions by share of the squared centroid gap.

    Examples
    --------
    >>> img = np.array([[1.0, 0.1], [1.0, -0.1]]); txt = np.array([[0.0, 0.1], [0.0, -0.1]])
    >>> [(d["dim"], round(d["share"], 3)) for d in gap_dimensions(img, txt, top=2)]
    [(0, 1.0), (1, 0.0)]
    """
    diff = l2_normalize(image).mean(axis=0) - l2_normalize(text).mean(axis=0)
    total = float(diff @ diff) or 1.0
    order = np.argsort(-diff ** 2)[:top]
    return [{"dim": int(d), "share": float(diff[d] ** 2 / total), "diff": float(diff[d])} for d in order]


def pair_vs_random_cosine(image: np.ndarray, text: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Mean cosine of true pairs and of random pairs (a seeded derangement), and their difference.

    Examples
    --------
    >>> x = np.eye(4)
    >>> pair_vs_random_cosine(x, x)
    {'paired': 1.0, 'random': 0.0, 'difference': 1.0}
    """
    a, b = l2_normalize(image), l2_normalize(text)
    n = len(a)
    perm = (np.arange(n) + np.random.default_rng(seed).integers(1, max(2, n))) % n  # no row meets itself
    paired = float(np.einsum("ij,ij->i", a, b).mean())
    rand = float(np.einsum("ij,ij->i", a, b[perm]).mean())
    return {"paired": paired, "random": rand, "difference": paired - rand}


def modality_separability(image: np.ndarray, text: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of ``LogisticRegression`` predicting the modality of a vector.

    Both modalities must have the same width (aligned vectors).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(0, 1, (40, 3)) + [4, 0, 0]; txt = rng.normal(0, 1, (40, 3)) - [4, 0, 0]
    >>> modality_separability(img, txt) > 0.95
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.vstack([l2_normalize(image), l2_normalize(text)])
    y = np.r_[np.zeros(len(image)), np.ones(len(text))]
    cv = StratifiedKFold(n_splits=min(folds, len(image)), shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=cv).mean())


def exact_text_recall(image: np.ndarray, text: np.ndarray, text_ids: Sequence[str],
                      ks: Sequence[int] = (1, 10)) -> dict[str, Any]:
    """Image→text recall@k over distinct texts, hit = retrieved text equals the paired text.

    Parameters
    ----------
    image, text : ndarray
        Row-paired (aligned) vectors; every row is a query.
    text_ids : sequence of str
        What makes two texts equal (the text or its hash); rows with the
        same id form one gallery item (the first row's vector).

    Returns
    -------
    dict
        ``{"recall": {k: r}, "chance": {k: min(k, U)/U}, "most_common": {k: share},
        "distinct_texts": U, "queries": n}``; ``most_common[k]`` is the recall of
        always answering the ``k`` most common texts.

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # the same text gives the same vector
    >>> r = exact_text_recall(x, x, ["a", "b", "b"], ks=(1,))
    >>> r["recall"][1], r["chance"][1], round(r["most_common"][1], 3), r["distinct_texts"]
    (1.0, 0.5, 0.667, 2)
    """
    ids = np.asarray(text_ids)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    gallery = l2_normalize(text)[first]
    sims = l2_normalize(image) @ gallery.T
    ranked = np.argsort(-sims, axis=1, kind="stable")
    u = len(uniq)
    recall = {int(k): float((ranked[:, :k] == inverse[:, None]).any(axis=1).mean()) for k in ks}
    counts = np.sort(np.bincount(inverse, minlength=u))[::-1]
    common = {int(k): float(counts[:k].sum() / max(1, len(ids))) for k in ks}
    return {"recall": recall, "chance": {int(k): min(k, u) / u for k in ks}, "most_common": common,
            "distinct_texts": int(u), "queries": int(len(image))}


def gap_measures(image: np.ndarray, text: np.ndarray, text_ids: Sequence[str], *, top: int = 5,
                 seed: int = 0, retrieval_rows: np.ndarray | None = None) -> dict[str, Any]:
    """All measures of this module on one stage's aligned pairs (a JSON-able dict).

    ``retrieval_rows`` (indices) restricts :func:`exact_text_recall`, queries
    and gallery, to those rows: the rows a fitted map never saw.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = gap_measures(rng.normal(size=(20, 4)), rng.normal(size=(20, 4)), [str(i) for i in range(20)])
    >>> sorted(m)
    ['exact_text_recall', 'pair_vs_random', 'rmg', 'separability', 'top_gap_dims']
    """
    return {"rmg": relative_modality_gap(image, text), "top_gap_dims": gap_dimensions(image, text, top),
            "pair_vs_random": pair_vs_random_cosine(image, text, seed),
            "separability": modality_separability(image, text, seed=seed),
            "exact_text_recall": exact_text_recall(*_rows(retrieval_rows, image, text, np.asarray(text_ids)))}


def _rows(rows: np.ndarray | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return arrays if rows is None else tuple(a[rows] for a in arrays)
