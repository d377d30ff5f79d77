"""Modality-gap diagnostics, before and after a :class:`~embedstore.alignment.GapShift`.

Both stages are read from the store as stored alignments: *before* is the
same alignment with ``lam=0`` and no noise (L2-normalised and, for unequal
widths, interpolated onto the common index grid, so that cross-modal numbers
exist), *after* is the alignment itself. Both are written (once) by
:func:`embedstore.alignment.align` and reused afterwards.

Per stage (:class:`StageDiagnostics`):

* the gap vector norm ``||mean(image) - mean(text)||`` and the centroid cosine;
* mean pairwise cosine within each modality (the cone effect) and across
  modalities, and the distribution of the paired cosine ``cos(image_i, text_i)``;
* variance as the paper defines it (protocol §5.4: PCA(2) fitted on the
  stacked [text; image] matrix, ``np.var`` of each modality's projection,
  averaged over the two components) and the plain total variance (trace of
  each modality's covariance);
* cross-modal retrieval recall@k, image→text and text→image (exact cosine),
  a query hits when its own pair is among the ``k`` nearest, with the chance
  level ``k / N`` of a random ranking of ``N`` candidates. Retrieval is
  measured on **rows the fitted map never saw**: when the alignment was
  fitted on the train split, queries and candidates are the other rows (both
  stages on the same rows); an alignment fitted on all rows leaves none, and
  :attr:`StageDiagnostics.retrieval_rows` says the figures are optimistic;
* kNN label agreement within each modality: the share of each query's ``k``
  nearest same-modality neighbours (cosine, self excluded) that have its
  label, with the chance level ``sum_c p_c^2`` alongside;
* :func:`embedstore.gap_measures.gap_measures` in ``measures``: RMG, top
  gap dimensions, true- vs random-pair cosine, modality separability and
  image→text recall over distinct texts (on the same held-out rows) with two
  chance levels: a random ranking and always answering the most common texts.

The "after" stage may be any method of :mod:`embedstore.transforms`
(``method=``, ``gap --method``); "before" is always the λ=0 mean shift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from .alignment import align, l2_normalize
from .gap_measures import gap_measures
from .pairs import PairedSources, paired_sources
from .refs import lookup_model

RECALL_K = (1, 5, 10)


@dataclass
class StageDiagnostics:
    """Gap diagnostics of one stage (see the module docstring)."""

    stage: str
    alignment_key: str
    lam: float
    dim: int
    rows: int
    gap_norm: float
    centroid_cosine: float
    cos_within_image: float
    cos_within_text: float
    cos_across: float
    paired_cosine: dict[str, float]
    pca_variance_image: float
    pca_variance_text: float
    total_variance_image: float
    total_variance_text: float
    recall_image_to_text: dict[int, float]
    recall_text_to_image: dict[int, float]
    retrieval_queries: int
    knn_agreement_image: float
    knn_agreement_text: float
    knn_chance: float
    knn_k: int
    versions: dict[str, int]
    measures: dict[str, Any] = field(default_factory=dict)
    recall_chance: dict[int, float] = field(default_factory=dict)
    retrieval_rows: str = "all rows"
    paired_cosines: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the per-row paired cosines are left out)."""
        d = asdict(self)
        d.pop("paired_cosines")
        return d


@dataclass
class GapReport:
    """Diagnostics before and after one alignment of one dataset."""

    dataset: str
    image_model: str
    text_model: str
    settings: dict[str, Any]
    before: StageDiagnostics
    after: StageDiagnostics
    unpaired: dict[str, int]
    stale: dict[str, int] = field(default_factory=dict)
    sources: dict[str, PairedSources] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"dataset": self.dataset, "image_model": self.image_model, "text_model": self.text_model,
                "settings": self.settings, "unpaired": self.unpaired, "stale": self.stale,
                "before": self.before.to_dict(), "after": self.after.to_dict()}


def pca_project(stacked: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Fit PCA on ``stacked`` and return ``(projection, components)``.

    Equivalent to ``sklearn.decomposition.PCA(n_components).fit_transform``
    up to the sign of each component.

    Examples
    --------
    >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.1]])
    >>> proj, comp = pca_project(x, 1)
    >>> proj.shape, round(float(abs(comp[0, 0])), 3)
    ((3, 1), 1.0)
    """
    with _one_blas_thread():
        return _pca(np.asarray(stacked, dtype=np.float64), n_components)


def _one_blas_thread():
    """Limit BLAS to one thread: these products are small, and on a busy
    machine a threaded OpenBLAS spins (measured 20x slower eigh at load 6 on 2 cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def _pca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    centred = x - x.mean(axis=0)
    n, d = centred.shape
    k = min(n_components, n, d)
    if n < d:  # eigenvectors of the n x n Gram matrix give the scores directly
        vals, vecs = np.linalg.eigh(centred @ centred.T)
        top = np.argsort(vals)[::-1][:k]
        scale = np.sqrt(np.clip(vals[top], 1e-300, None))
        comps = (centred.T @ vecs[:, top] / scale).T
    else:  # eigenvectors of the d x d scatter matrix are the components
        vals, vecs = np.linalg.eigh(centred.T @ centred)
        comps = vecs[:, np.argsort(vals)[::-1][:k]].T
    return centred @ comps.T, comps


def paper_variance(image: np.ndarray, text: np.ndarray) -> tuple[float, float]:
    """The paper's "mean variance of PCA-transformed embeddings" per modality.

    PCA(2) is fitted on the stacked ``[text; image]``; each modality's 2-D
    projection gets ``np.var`` (ddof=0) per component, averaged over the two.

    Returns
    -------
    (image_variance, text_variance) : tuple of float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img, txt = rng.normal(0, 1, (50, 4)), rng.normal(0, 0.1, (50, 4))
    >>> vi, vt = paper_variance(img, txt)
    >>> vi > vt
    True
    """
    proj, _ = pca_project(np.vstack([text, image]), 2)
    n_text = len(text)
    return float(np.var(proj[n_text:], axis=0).mean()), float(np.var(proj[:n_text], axis=0).mean())


def _mean_pairwise_cos(a: np.ndarray, b: np.ndarray | None = None) -> float:
    """Mean cosine over all pairs (i != j within one matrix, all i, j across two)."""
    a = l2_normalize(a)
    sa = a.sum(axis=0)
    if b is None:
        n = len(a)
        return float((sa @ sa - np.einsum("ij,ij->", a, a)) / max(1, n * (n - 1)))
    b = l2_normalize(b)
    return float(sa @ b.sum(axis=0) / (len(a) * len(b)))


def _knn_agreement(x: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> float:
    x = l2_normalize(x)
    agree = []
    for start in range(0, len(queries), 256):
        q = queries[start:start + 256]
        sims = x[q] @ x.T
        sims[np.arange(len(q)), q] = -np.inf  # exclude self
        kk = min(k, len(x) - 1)
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        agree.append((labels[top] == labels[q][:, None]).mean(axis=1))
    return float(np.concatenate(agree).mean())


def _recall(queries: np.ndarray, gallery: np.ndarray, own: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Recall@k of query ``i`` finding gallery row ``own[i]`` (exact cosine, ties by row order)."""
    q, g = l2_normalize(queries.astype(np.float64)), l2_normalize(gallery.astype(np.float64))
    hits = np.zeros(len(ks))
    for start in range(0, len(q), 256):
        sims = q[start:start + 256] @ g.T
        ranked = np.argsort(-sims, axis=1, kind="stable")[:, :max(ks)]
        own_hit = ranked == own[start:start + len(sims), None]
        hits += [own_hit[:, :k].any(axis=1).sum() for k in ks]
    return {int(k): float(h / max(1, len(q))) for k, h in zip(ks, hits)}


def held_out_rows(src: PairedSources, fit_on: str, split_column: str | None) -> tuple[np.ndarray, str]:
    """Indices of ``src``'s rows an alignment fitted on ``fit_on`` rows never saw, and a description.

    ``fit_on="train"``: the rows outside the train split of ``split_column``
    (when the sources carry that column; else all rows, said so).
    ``fit_on="all"``: every row, described as optimistic.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> src = SimpleNamespace(splits=np.array(["train", "test", "val", "train"]), split_column="split_x")
    >>> held_out_rows(src, "train", "split_x")
    (array([1, 2]), '2 rows outside the train split of split_x (the map was fitted on the other 2)')
    """
    n = len(src.splits)
    if fit_on == "train" and (split_column in (None, src.split_column)):
        held = np.flatnonzero(np.asarray(src.splits) != "train")
        if len(held):
            return held, (f"{len(held)} rows outside the train split of {src.split_column} (the map was fitted "
                          f"on the other {n - len(held)})")
    what = ("the map was fitted on every row: retrieval figures are optimistic" if fit_on == "all"
            else f"no row outside the rows the map was fitted on ({fit_on}): retrieval figures are optimistic")
    return np.arange(n), f"all {n} rows ({what})"


def stage_diagnostics(store, src: PairedSources, *, stage: str, lam: float, recall_k: Sequence[int] = RECALL_K,
                      knn_k: int = 5, max_queries: int = 1000, seed: int = 0,
                      rows: tuple[np.ndarray, str] | None = None) -> StageDiagnostics:
    """Diagnostics of one set of paired (aligned) vectors read by :func:`paired_sources`.

    ``rows`` is ``(indices, description)`` of the rows retrieval and kNN
    queries are drawn from (:func:`held_out_rows`; default all rows); retrieval
    candidates are the same rows. ``max_queries`` caps the queries (a seeded
    random subset; all when there are fewer).
    """
    with _one_blas_thread():
        return _stage(src, stage, lam, recall_k, knn_k, max_queries, seed, rows)


def _stage(src: PairedSources, stage: str, lam: float, recall_k: Sequence[int], knn_k: int,
           max_queries: int, seed: int, rows: tuple[np.ndarray, str] | None) -> StageDiagnostics:
    img, txt = src.image_vectors.astype(np.float64), src.text_vectors.astype(np.float64)
    n = len(img)
    pool, pool_text = rows if rows is not None else (np.arange(n), f"all {n} rows")
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(pool), size=min(len(pool), max_queries), replace=False))
    queries = pool[picked]
    gi, gt = img[pool], txt[pool]
    mi, mt = img.mean(axis=0), txt.mean(axis=0)
    paired = np.einsum("ij,ij->i", l2_normalize(img), l2_normalize(txt))
    labels = np.asarray(src.labels)
    _, counts = np.unique(labels, return_counts=True)
    pv_img, pv_txt = paper_variance(img, txt)
    quant = np.quantile(paired, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return StageDiagnostics(
        stage=stage, alignment_key=src.alignment_key, lam=float(lam), dim=int(img.shape[1]), rows=n,
        gap_norm=float(np.linalg.norm(mi - mt)),
        centroid_cosine=float(mi @ mt / (np.linalg.norm(mi) * np.linalg.norm(mt) or 1.0)),
        cos_within_image=_mean_pairwise_cos(img), cos_within_text=_mean_pairwise_cos(txt),
        cos_across=_mean_pairwise_cos(img, txt),
        paired_cosine={"mean": float(paired.mean()), "sd": float(paired.std()),
                       **dict(zip(("min", "p05", "p25", "median", "p75", "p95", "max"), map(float, quant)))},
        pca_variance_image=pv_img, pca_variance_text=pv_txt,
        total_variance_image=float(img.var(axis=0).sum()), total_variance_text=float(txt.var(axis=0).sum()),
        recall_image_to_text=_recall(gi[picked], gt, picked, recall_k),
        recall_text_to_image=_recall(gt[picked], gi, picked, recall_k),
        retrieval_queries=len(queries),
        knn_agreement_image=_knn_agreement(img, labels, queries, knn_k),
        knn_agreement_text=_knn_agreement(txt, labels, queries, knn_k),
        knn_chance=float(((counts / counts.sum()) ** 2).sum()), knn_k=int(knn_k),
        versions=dict(src.versions), measures=gap_measures(img, txt, src.text_hashes, seed=seed, retrieval_rows=pool),
        recall_chance={int(k): min(k, len(pool)) / len(pool) for k in recall_k}, retrieval_rows=pool_text,
        paired_cosines=paired)


def gap_diagnostics(store, dataset: str, *, image_model: str | None = None, text_model: str | None = None,
                    alignment_key: str | None = None, lam: float = 1.0,
                    match: Literal["auto", "interp"] | None = "auto", fit_on: Literal["train", "all"] = "train",
                    noise_std: float = 0.0, seed: int = 0, split_by: str | None = None,
                    knn_k: int = 5, max_queries: int = 1000, method: str = "gapshift",
                    n_components: int | None = None) -> GapReport:
    """Gap diagnostics of ``dataset`` before and after an alignment.

    Give either ``alignment_key`` (an existing alignment; its models and
    settings are used) or the two models and the alignment settings
    (``match="auto"`` interpolates only when the widths differ). The
    ``lam=0`` "before" alignment and, without a key, the "after" one are
    created with :func:`~embedstore.alignment.align` if needed (stored and
    reused). Each matrix is read once: the unaligned pairs (shared by both
    alignments) and each stage's aligned pairs, kept in
    :attr:`GapReport.sources` for the figures. Stale vectors are never used;
    they are counted in :attr:`GapReport.unpaired` / :attr:`GapReport.stale`.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.pairs import toy_pairs
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> img, txt = toy_pairs(s, "toy", n=30)
    >>> rep = gap_diagnostics(s, "toy", image_model=img, text_model=txt)
    >>> rep.before.gap_norm > rep.after.gap_norm
    True
    """
    from .errors import InputError

    if alignment_key:
        s = store.alignment(alignment_key).settings
        image_model, text_model = s["image_model_key"], s["text_model_key"]
        lam, noise_std, seed, match, fit_on = s["lam"], s["noise_std"], s["seed"], s["match"], s["fit_on"]
        method = s.get("method", "gapshift")
        split_by = s.get("split_column") or split_by
    elif not (image_model and text_model):
        raise InputError("gap diagnostics need image_model= and text_model=, or alignment_key=KEY")
    from .numbers import check_alignment_params

    check_alignment_params({"lam": lam, "noise_std": noise_std, "seed": seed})  # before "before" is stored
    if match == "auto":
        widths = lookup_model(store, image_model, "image").dim("image"), lookup_model(store, text_model, "text").dim("text")
        match = "interp" if widths[0] != widths[1] else None
    unaligned = paired_sources(store, dataset, image_model, text_model, split_by=split_by)
    common = dict(image_model=image_model, text_model=text_model, match=match, fit_on=fit_on, seed=seed,
                  split_by=split_by, source=unaligned)
    before = align(store, dataset, lam=0.0, noise_std=0.0, **common)
    if alignment_key:
        after_key = alignment_key
    elif method == "gapshift":
        after_key = align(store, dataset, lam=lam, noise_std=noise_std, **common).alignment_key
    else:
        from .transform_align import align_method

        after_key = align_method(store, dataset, method=method, lam=lam, n_components=n_components,
                                 **{k: v for k, v in common.items() if k != "seed"}).alignment_key
    after_settings = store.alignment(after_key).settings
    fitted = after_settings.get("fit_on", fit_on), after_settings.get("split_column")
    stages, sources = [], {}
    for name, key, stage_lam, dim in (("before", before.alignment_key, 0.0, before.dim),
                                      ("after", after_key, float(lam), int(after_settings["dim"]))):
        sources[name] = paired_sources(store, dataset, unaligned.image, unaligned.text, split_by=split_by,
                                       alignment_key=key, dim=dim)
        stages.append(stage_diagnostics(store, sources[name], stage=name, lam=stage_lam, knn_k=knn_k,
                                        max_queries=max_queries, rows=held_out_rows(sources[name], *fitted)))
    return GapReport(dataset, unaligned.image.model_id, unaligned.text.model_id, after_settings, stages[0],
                     stages[1], unaligned.unpaired, unaligned.stale, sources)


ROWS = (
    ("gap norm ||mu_img - mu_txt||", "gap_norm"),
    ("centroid cosine", "centroid_cosine"),
    ("mean cos within image (cone)", "cos_within_image"),
    ("mean cos within text (cone)", "cos_within_text"),
    ("mean cos across modalities", "cos_across"),
    ("paired cos mean", ("paired_cosine", "mean")),
    ("paired cos sd", ("paired_cosine", "sd")),
    ("paired cos min / median / max", None),
    ("variance, paper PCA(2): image", "pca_variance_image"),
    ("variance, paper PCA(2): text", "pca_variance_text"),
    ("total variance: image", "total_variance_image"),
    ("total variance: text", "total_variance_text"),
)


def report_rows(report: GapReport) -> list[dict[str, str]]:
    """The diagnostics as ``[{"metric", "before", "after"}]`` rows (for text and HTML)."""
    def get(stage: StageDiagnostics, attr):
        if attr is None:
            p = stage.paired_cosine
            return f"{p['min']:.4f} / {p['median']:.4f} / {p['max']:.4f}"
        value = stage.paired_cosine[attr[1]] if isinstance(attr, tuple) else getattr(stage, attr)
        return f"{value:.4g}"

    rows = [{"metric": label, "before": get(report.before, a), "after": get(report.after, a)} for label, a in ROWS]
    for direction in ("image_to_text", "text_to_image"):
        for k in RECALL_K:
            rows.append({"metric": f"recall@{k} {direction.replace('_to_', '→')}",
                         "before": f"{getattr(report.before, 'recall_' + direction)[k]:.4f}",
                         "after": f"{getattr(report.after, 'recall_' + direction)[k]:.4f}"})
    rows.append({"metric": "recall@" + "/".join(map(str, RECALL_K)) + " chance (random ranking)",
                 **{st: " / ".join(f"{getattr(report, st).recall_chance.get(k, float('nan')):.4f}" for k in RECALL_K)
                    for st in ("before", "after")}})
    for m in ("image", "text"):
        rows.append({"metric": f"kNN@{report.before.knn_k} label agreement: {m}",
                     "before": f"{getattr(report.before, 'knn_agreement_' + m):.4f}",
                     "after": f"{getattr(report.after, 'knn_agreement_' + m):.4f}"})
    rows.append({"metric": "kNN chance level", "before": f"{report.before.knn_chance:.4f}",
                 "after": f"{report.after.knn_chance:.4f}"})
    return rows + measure_rows(report.before.measures, report.after.measures)


def measure_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of :func:`~embedstore.gap_measures.gap_measures` before and after (empty when not computed)."""
    if not before or not after:
        return []

    def fmt(m: dict[str, Any], what: str) -> str:
        r = m["exact_text_recall"]
        return {"rmg": f"{m['rmg']:.4f}", "sep": f"{m['separability']:.4f}",
                "pair": f"{m['pair_vs_random']['paired']:.4f} / {m['pair_vs_random']['random']:.4f}",
                "dim": ", ".join(f"{d['dim']}:{d['share']:.2f}" for d in m["top_gap_dims"][:3]),
                **{f"r{k}": f"{r['recall'][k]:.4f} (chance {r['chance'][k]:.4f}; always the {k} most common: "
                            f"{r.get('most_common', {}).get(k, float('nan')):.4f}; {r['distinct_texts']} texts)"
                   for k in r["recall"]}}[what]

    labels = [("relative modality gap (RMG)", "rmg"), ("modality separability (CV logistic acc.)", "sep"),
              ("cos true pairs / random pairs", "pair"), ("top gap dims (dim:share)", "dim")]
    labels += [(f"recall@{k} image→distinct text (exact text)", f"r{k}") for k in before["exact_text_recall"]["recall"]]
    return [{"metric": label, "before": fmt(before, key), "after": fmt(after, key)} for label, key in labels]
