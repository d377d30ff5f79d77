"""``drift``: do two sets of rows (two datasets, or two values of a column) come from one distribution?

Per modality and model with vectors on both sides, three measures:

* **domain classifier**: logistic regression telling side A from side B on
  the pooled vectors, standardised and reduced to at most 32 whitened
  principal components (fitted on both sides together, without the side
  labels), scored out of fold in stratified 5-fold cross-validation. Its ROC
  AUC is 0.5 when the sides cannot be told apart. The interval is DeLong's
  95 % interval of that AUC; the permutation test refits the classifier on
  shuffled side labels (``permutations`` times) and gives the p-value and
  the 95 % range of AUCs under no drift. **Drift** is declared when the
  interval's lower end is above 0.55 (Evidently's threshold on the AUC).
* **MMD**: the unbiased squared maximum mean discrepancy with a Gaussian
  kernel (median-distance bandwidth) on the same features, with a
  permutation p-value (at most 1,000 rows a side).
* **per-class centroid shifts**: for each label with at least 5 rows on each
  side, the distance between the side means in those features and its
  permutation p-value within the class: whether the *same* class looks
  different, which a different class mix alone does not explain.

Results are recorded in the ``checks`` table (kind ``drift``) under the
table versions and settings, so a repeated call computes nothing.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> a, b = rng.standard_normal((150, 8)), rng.standard_normal((150, 8)) + 0.6
>>> r = domain_classifier(a, b, permutations=20)
>>> r["auc"] > 0.8, r["auc_interval"][0] > 0.55, r["p_value"] <= 0.05
(True, True, True)
>>> round(domain_classifier(a, rng.standard_normal((150, 8)), permutations=0)["auc"], 1)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..formats import ToDict
from ..identity import MODALITIES, ModelIdentity
from .records import CheckRecord, check_key, find_record, save_record

#: AUC above which (the interval's lower end) two sides are said to drift apart.
DRIFT_AUC = 0.55
ALGORITHM = 1
_MMD_ROWS = 1000


def _features(a: np.ndarray, b: np.ndarray, dims: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both sides standardised and whitened on at most ``dims`` principal components of the pooled rows."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([a, b]).astype(np.float64)
    x = StandardScaler().fit_transform(x)
    k = int(max(1, min(dims, x.shape[1], len(x) // 10 or 1)))
    z = PCA(n_components=k, whiten=True, random_state=seed).fit_transform(x)
    return z[: len(a)], z[len(a):]


def auc_delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float, float]:
    """ROC AUC of ``score`` for ``y == 1`` and DeLong's 95 % interval (clipped to [0, 1]).

    Examples
    --------
    >>> auc, lo, hi = auc_delong(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    >>> auc, lo <= auc <= hi
    (0.75, True)
    """
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    pos, neg = score[y], score[~y]
    m, n = len(pos), len(neg)
    tz = rankdata(np.concatenate([pos, neg]))
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    v01 = (tz[:m] - rankdata(pos)) / n
    v10 = 1.0 - (tz[m:] - rankdata(neg)) / m
    se = float(np.sqrt(np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n)) if m > 1 and n > 1 else 0.0
    return auc, max(0.0, auc - 1.96 * se), min(1.0, auc + 1.96 * se)


def _oof_scores(x: np.ndarray, side: np.ndarray, folds: int, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(side))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, side):
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(x[train], side[train])
        out[test] = clf.decision_function(x[test])
    return out


def domain_classifier(a: np.ndarray, b: np.ndarray, *, permutations: int = 100, folds: int = 5,
                      seed: int = 0, features: bool = True) -> dict[str, Any]:
    """Out-of-fold ROC AUC of a classifier telling rows of ``a`` from rows of ``b``; see the module docstring."""
    from threadpoolctl import threadpool_limits

    za, zb = _features(a, b, seed=seed) if features else (a, b)
    x = np.vstack([za, zb])
    side = np.r_[np.zeros(len(za), dtype=int), np.ones(len(zb), dtype=int)]
    folds = int(min(folds, len(za), len(zb)))
    if folds < 2:
        raise InputError(f"drift needs at least 2 rows a side (got {len(za)} and {len(zb)})")
    rng = np.random.default_rng(seed)
    with threadpool_limits(1):
        auc, lo, hi = auc_delong(side, _oof_scores(x, side, folds, seed))
        null = np.array([auc_delong(s, _oof_scores(x, s, folds, seed))[0]
                         for s in (rng.permutation(side) for _ in range(permutations))])
    out = {"auc": auc, "auc_interval": [lo, hi], "drift": bool(lo > DRIFT_AUC), "rows": [len(za), len(zb)],
           "features": int(x.shape[1]), "permutations": int(permutations)}
    if permutations:
        out["p_value"] = float((1 + np.sum(null >= auc)) / (1 + permutations))
        out["null_interval"] = [float(v) for v in np.quantile(null, [0.025, 0.975])]
    return out


def mmd(a: np.ndarray, b: np.ndarray, *, permutations: int = 200, seed: int = 0) -> dict[str, Any]:
    """Unbiased squared MMD (Gaussian kernel, median bandwidth) with a permutation p-value.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> mmd(rng.standard_normal((80, 3)), rng.standard_normal((80, 3)) + 1.0, permutations=50)["p_value"] < 0.05
    True
    """
    rng = np.random.default_rng(seed)
    if len(a) > _MMD_ROWS:
        a = a[rng.choice(len(a), _MMD_ROWS, replace=False)]
    if len(b) > _MMD_ROWS:
        b = b[rng.choice(len(b), _MMD_ROWS, replace=False)]
    x = np.vstack([a, b]).astype(np.float64)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    bandwidth = float(np.median(d2[np.triu_indices(len(x), 1)]))
    kern = np.exp(-d2 / max(bandwidth, 1e-12))
    np.fill_diagonal(kern, 0.0)
    m, n = len(a), len(b)

    def stat(is_a: np.ndarray) -> float:
        wa, wb = is_a.astype(float), (~is_a).astype(float)
        kaa = wa @ kern @ wa / (m * (m - 1))
        kbb = wb @ kern @ wb / (n * (n - 1))
        kab = wa @ kern @ wb / (m * n)
        return float(kaa + kbb - 2.0 * kab)

    side = np.r_[np.ones(m, dtype=bool), np.zeros(n, dtype=bool)]
    value = stat(side)
    null = np.array([stat(rng.permutation(side)) for _ in range(permutations)])
    return {"mmd2": value, "p_value": float((1 + np.sum(null >= value)) / (1 + permutations)) if permutations else None,
            "bandwidth": bandwidth, "rows": [m, n], "permutations": int(permutations)}


def class_shifts(za: np.ndarray, zb: np.ndarray, ya: np.ndarray, yb: np.ndarray, *, permutations: int = 200,
                 min_rows: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Per label on both sides: distance of the side means (whitened features) and its within-class permutation p."""
    rng = np.random.default_rng(seed)
    out = []
    for label in sorted(set(map(str, ya)) & set(map(str, yb))):
        xa, xb = za[ya.astype(str) == label], zb[yb.astype(str) == label]
        if len(xa) < min_rows or len(xb) < min_rows:
            continue
        shift = float(np.linalg.norm(xa.mean(0) - xb.mean(0)))
        pooled = np.vstack([xa, xb])
        null = []
        for _ in range(permutations):
            p = rng.permutation(len(pooled))
            null.append(np.linalg.norm(pooled[p[: len(xa)]].mean(0) - pooled[p[len(xa):]].mean(0)))
        out.append({"label": label, "rows": [len(xa), len(xb)], "shift": shift,
                    "p_value": float((1 + np.sum(np.asarray(null) >= shift)) / (1 + permutations))})
    return out


@dataclass
class DriftReport(ToDict):
    """What :func:`drift` found, per modality and model.

    Attributes
    ----------
    check_id : str
    a, b : str
        The two sides (datasets, or values of ``by`` in ``dataset``).
    dataset, by : str or None
    cached : bool
    table_versions, settings : dict
    results : list of dict
        One per (modality, model): ``modality``, ``model_id``, ``model_key``,
        ``domain_classifier`` (:func:`domain_classifier`), ``mmd``
        (:func:`mmd`), ``classes`` (:func:`class_shifts`) and ``drift``.
    notes : list of str
    """

    check_id: str
    a: str
    b: str
    dataset: str | None
    by: str | None
    cached: bool
    table_versions: dict[str, int]
    settings: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        """Whether any modality and model drifts (its AUC interval is above 0.55)."""
        return any(r["drift"] for r in self.results)


def _sides(store, a: str, b: str, dataset: str | None, by: str | None) -> list[tuple[str, str | None, str]]:
    """``[(dataset, column or None, value), ...]`` for the two sides."""
    if by is None:
        if dataset is not None:
            raise InputError("dataset= names the dataset whose column by= splits the rows: pass by= too, or "
                             "leave dataset= out to compare datasets a and b")
        return [(a, None, a), (b, None, b)]
    if dataset is None:
        raise InputError(f"by={by!r} compares two values of a column: pass dataset= (the dataset holding it)")
    return [(dataset, by, a), (dataset, by, b)]


def _models(store, sides, image_model, text_model, modalities) -> list[tuple[str, ModelIdentity]]:
    from .inputs import dataset_models

    named = {"image": image_model, "text": text_model}
    out = []
    for modality in MODALITIES:
        if modalities is not None and modality not in modalities:
            continue
        if named[modality] is not None:
            out.append((modality, store.models.identity(named[modality], modality)))
            continue
        keys = None
        found: dict[str, ModelIdentity] = {}
        for ds in {s[0] for s in sides}:
            models = dataset_models(store, ds, modality)
            found.update({m.key: m for m in models})
            keys = {m.key for m in models} if keys is None else keys & {m.key for m in models}
        out += [(modality, found[k]) for k in sorted(keys or ())]
    if not out:
        names = " and ".join(sorted({s[0] for s in sides}))
        raise InputError(f"no model has vectors of both sides ({names}): extract the same model for both first")
    return out


def drift(store, a: str, b: str, *, dataset: str | None = None, by: str | None = None,
          image_model: str | ModelIdentity | None = None, text_model: str | ModelIdentity | None = None,
          modalities: Sequence[str] | None = None, versions: dict[str, int] | None = None,
          permutations: int = 100, seed: int = 0, recompute: bool = False) -> DriftReport:
    """Compare datasets ``a`` and ``b`` (or, with ``dataset`` and ``by``, the rows whose column ``by`` is ``a`` / ``b``).

    Parameters
    ----------
    store : Store
    a, b : str
        Two datasets, or two values of column ``by``.
    dataset, by : str, optional
        Compare two values of column ``by`` (a split column, ``site``, a year...) within ``dataset``.
    image_model, text_model : optional
        Only these models (default: every model with vectors of both sides).
    modalities : sequence of str, optional
    versions : dict, optional
        ``{table: version}`` to pin; latest otherwise.
    permutations : int
        Refits of the domain classifier on shuffled sides (MMD and the class
        shifts use twice as many, cheaper, permutations).
    seed : int
    recompute : bool
        Compute even when a record of the same versions and settings exists.

    Returns
    -------
    DriftReport
    """
    from .inputs import pinned_versions, read_check_data, snapshots

    sides = _sides(store, a, b, dataset, by)
    pairs = _models(store, sides, image_model, text_model, modalities)
    snaps = {}
    for ds in dict.fromkeys(s[0] for s in sides):
        by_modality = {}
        for modality, ident in pairs:
            by_modality.setdefault(modality, []).append(ident)
        snaps[ds] = {(m, ident.key): snapshots(store, ds, {m: ident}, versions)[m]
                     for m, idents in by_modality.items() for ident in idents}
    pinned: dict[str, int] = {}
    for per in snaps.values():
        pinned.update(pinned_versions(per))
    settings = {"algorithm": ALGORITHM, "permutations": permutations, "seed": seed, "by": by,
                "models": sorted(f"{m}:{i.key}" for m, i in pairs)}
    label = f"{a}|{b}" if by is None else f"{dataset}:{by}={a}|{b}"
    key = check_key("drift", label, pinned, settings)
    if not recompute and (found := find_record(store, key)) is not None:
        return DriftReport(key, a, b, dataset, by, True, found.table_versions, found.settings,
                           found.result["results"], found.result.get("notes", []))
    results, notes = [], []
    for modality, ident in pairs:
        parts = []
        for ds, column, value in sides:
            data = read_check_data({modality: snaps[ds][(modality, ident.key)]}, ds)
            pos = data.positions[modality]
            vec = data.vectors[modality]
            labels = data.column("label")[pos] if "label" in data.rows.column_names else np.full(len(pos), None)
            if column is not None:
                if column not in data.rows.column_names:
                    raise InputError(f"dataset '{ds}' has no column '{column}': pass by= one of "
                                     f"{', '.join(data.rows.column_names)}")
                keep = np.array([str(v) == value for v in data.column(column)[pos]], dtype=bool)
                vec, labels = vec[keep], labels[keep]
            parts.append((vec, labels))
        (xa, ya), (xb, yb) = parts
        if len(xa) < 2 or len(xb) < 2:
            notes.append(f"{modality} {ident.model_id}: {len(xa)} and {len(xb)} rows with vectors: skipped")
            continue
        clf = domain_classifier(xa, xb, permutations=permutations, seed=seed)
        za, zb = _features(xa, xb, seed=seed)
        labelled = [(v is not None) for v in ya], [(v is not None) for v in yb]
        shifts = class_shifts(za[labelled[0]], zb[labelled[1]], ya[labelled[0]], yb[labelled[1]],
                              permutations=2 * permutations, seed=seed)
        results.append({"modality": modality, "model_id": ident.model_id, "model_key": ident.key,
                        "domain_classifier": clf, "mmd": mmd(za, zb, permutations=2 * permutations, seed=seed),
                        "classes": shifts, "drift": clf["drift"]})
    save_record(store, CheckRecord(key, "drift", label, pinned, settings, {"results": results, "notes": notes,
                                                                            "a": a, "b": b, "by": by}))
    return DriftReport(key, a, b, dataset, by, False, pinned, settings, results, notes)
