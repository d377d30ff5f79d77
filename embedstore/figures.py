"""The paper's figures as PNG files (matplotlib, Agg backend, no pyplot state).

* :func:`pca_scatter_2d`: PCA(2) of the stacked text+image embeddings, one
  scatter per modality, the unit circle, axes at ±1.1 (paper figures 2/3).
* :func:`pca_scatter_3d`: a separate PCA(3) with a unit-sphere wireframe.
* :func:`before_after`: the 2-D scatter before and after the shift, side by side.
* :func:`paired_cosine_hist`: histogram of ``cos(image_i, text_i)`` per stage.
* :func:`sweep_plot`: accuracy and macro-F1 against λ (paper figures 4-6),
  with mean ± sd bands when several seeds were run.
* :func:`method_comparison_plot`: one panel per alignment method, test
  macro-F1 against λ with intervals and the no-alignment reference.
* :func:`gap_figures`: all gap figures of a :class:`~embedstore.diagnostics.GapReport`.

Every function takes ``out`` (a path or a binary file object), writes one PNG
and returns ``out``. Each PNG carries a ``embedstore-figure`` text chunk
(:func:`figure_info` reads it): every axes' title and axis labels, the
texts that would fall outside the image (none: a figure whose text would be
clipped is saved with a tight bounding box instead), and the range of the
metric intervals drawn, which are clipped to the metric's range [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Sequence

import numpy as np

from .diagnostics import pca_project
from .errors import require

Out = str | Path | IO[bytes]
COLOURS = {"image": "#1f77b4", "text": "#d62728"}
_MAX_POINTS = 2000
#: PNG text key of the figure description written by :func:`_save`.
INFO_KEY = "embedstore-figure"


def _figure(width: float, height: float):
    require("matplotlib", "embedstore[report]")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _title(text: str, width_in: float, fontsize: float = 10) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize`` points."""
    import textwrap

    chars = max(20, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) or text


def _axes_info(fig) -> list[dict[str, str]]:
    out = []
    for ax in fig.axes:
        kind = "3d" if getattr(ax, "name", "") == "3d" else ("colorbar" if hasattr(ax, "_colorbar") else "2d")
        info = {"kind": kind, "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()}
        if kind == "3d":
            info["zlabel"] = ax.get_zlabel()
        out.append(info)
    return out


def _texts(fig) -> list:
    """Every drawn, non-empty text of ``fig``: titles, labels, legends, annotations and the tick labels
    of ticks inside their axis' view (matplotlib keeps, and does not draw, labels of ticks outside it)."""
    from matplotlib.text import Text

    ticks, shown = set(), []
    for ax in fig.axes:
        for axis in [getattr(ax, a) for a in ("xaxis", "yaxis", "zaxis") if hasattr(ax, a)]:
            lo, hi = sorted(axis.get_view_interval())
            pad = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                labels = (tick.label1, tick.label2)
                ticks.update(map(id, labels))
                if lo - pad <= tick.get_loc() <= hi + pad:
                    shown += [t for t in labels if t.get_visible() and t.get_text().strip()]
    rest = [t for t in fig.findobj(Text) if id(t) not in ticks and t.get_visible() and t.get_text().strip()]
    return rest + shown


def _outside(fig, texts, box) -> list[str]:
    renderer = fig.canvas.get_renderer()
    bad = []
    for t in texts:
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5:
            bad.append(t.get_text())
    return bad


def _save(fig, out: Out, *, intervals: tuple[float, float] | None = None) -> Out:
    """Lay out, check that no text falls outside the image, write the PNG with its description."""
    import json

    fig.tight_layout()
    fig.canvas.draw()
    texts = _texts(fig)
    tight = bool(_outside(fig, texts, fig.bbox))
    box = fig.bbox
    if tight:  # keep every text inside: grow the canvas to the artists' bounding box
        from matplotlib.transforms import Bbox

        inches = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
        box = Bbox(inches.get_points() * fig.dpi)
    info = {"axes": _axes_info(fig), "clipped_text": _outside(fig, texts, box), "tight": tight}
    if intervals is not None:
        info["intervals"] = [float(intervals[0]), float(intervals[1])]
    if isinstance(out, (str, Path)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", bbox_inches="tight" if tight else None, pad_inches=0.1,
                metadata={INFO_KEY: json.dumps(info, ensure_ascii=True)})
    return out


def figure_info(png: bytes) -> dict[str, Any]:
    """The description :func:`_save` wrote into a PNG (``{}`` for other PNGs).

    Examples
    --------
    >>> import io
    >>> buf = confusion_plot([[5, 1], [2, 4]], ["a", "b"], io.BytesIO())
    >>> info = figure_info(buf.getvalue())
    >>> [a["xlabel"] for a in info["axes"] if a["kind"] == "2d"], info["clipped_text"]
    (['predicted'], [])
    """
    import io
    import json

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        text = im.info.get(INFO_KEY)
    return json.loads(text) if text else {}


def _clip01(values: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(values, dtype=float), 0.0, 1.0)


def _subsample(image: np.ndarray, text: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = len(image)
    if n <= _MAX_POINTS:
        return image, text
    keep = np.sort(np.random.default_rng(seed).choice(n, _MAX_POINTS, replace=False))
    return image[keep], text[keep]


def _draw_2d(ax, image: np.ndarray, text: np.ndarray, title: str) -> None:
    proj, _ = pca_project(np.vstack([text, image]), 2)
    n_text = len(text)
    ax.scatter(proj[:n_text, 0], proj[:n_text, 1], s=6, alpha=0.6, c=COLOURS["text"], label="text")
    ax.scatter(proj[n_text:, 0], proj[n_text:, 1], s=6, alpha=0.6, c=COLOURS["image"], label="image")
    t = np.linspace(0, 2 * np.pi, 256)
    ax.plot(np.cos(t), np.sin(t), color="0.4", lw=0.8)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_title(_title(title, 4.5), fontsize=10)
    ax.legend(loc="upper right", fontsize=8)


def pca_scatter_2d(image: np.ndarray, text: np.ndarray, out: Out, *, title: str = "PCA (2-D)") -> Out:
    """2-D PCA of both modalities with the unit circle (paper figures 2/3).

    Examples
    --------
    >>> import io
    >>> rng = np.random.default_rng(0)
    >>> buf = pca_scatter_2d(rng.normal(size=(20, 5)), rng.normal(size=(20, 5)), io.BytesIO())
    >>> buf.getvalue()[:4] == b"\\x89PNG"
    True
    """
    image, text = _subsample(np.asarray(image), np.asarray(text))
    fig = _figure(5, 5)
    _draw_2d(fig.add_subplot(1, 1, 1), image, text, title)
    return _save(fig, out)


def pca_scatter_3d(image: np.ndarray, text: np.ndarray, out: Out, *, title: str = "PCA (3-D)") -> Out:
    """3-D PCA of both modalities with a unit-sphere wireframe."""
    image, text = _subsample(np.asarray(image), np.asarray(text))
    proj, _ = pca_project(np.vstack([text, image]), 3)
    n_text = len(text)
    fig = _figure(6, 6)
    ax = fig.add_subplot(1, 1, 1, projection="3d")
    u, v = np.mgrid[0:2 * np.pi:24j, 0:np.pi:12j]
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.75", lw=0.4)
    for name, sl in (("text", slice(0, n_text)), ("image", slice(n_text, None))):
        ax.scatter(proj[sl, 0], proj[sl, 1], proj[sl, 2], s=5, alpha=0.6, c=COLOURS[name], label=name)
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-1.1, 1.1)
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_zlabel("PC3")
    ax.set_title(_title(title, 5.5), fontsize=10)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out)


def before_after(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray], out: Out, *,
                 lam: float, title: str = "") -> Out:
    """The 2-D PCA scatter before (λ=0) and after the shift, side by side.

    ``before`` and ``after`` are ``(image, text)`` pairs.
    """
    fig = _figure(10, 5)
    for i, ((image, text), name) in enumerate(((before, "before (λ=0)"), (after, f"after (λ={lam:g})"))):
        image, text = _subsample(np.asarray(image), np.asarray(text))
        _draw_2d(fig.add_subplot(1, 2, i + 1), image, text, f"{title} {name}".strip())
    return _save(fig, out)


def paired_cosine_hist(stages: dict[str, np.ndarray], out: Out, *, title: str = "paired cosine") -> Out:
    """Histogram of ``cos(image_i, text_i)``, one series per stage name."""
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    values = [np.asarray(v, dtype=float) for v in stages.values()]
    lo = min(-0.1, *(float(v.min()) for v in values if v.size))
    hi = max(0.1, *(float(v.max()) for v in values if v.size))
    bins = np.linspace(lo, hi, 41)
    for name, v in zip(stages, values):
        ax.hist(v, bins=bins, alpha=0.55, label=f"{name} (mean {v.mean():.3f})")
    ax.set_xlabel("cos(image_i, text_i)")
    ax.set_ylabel("samples")
    ax.set_title(_title(title, 5.5), fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, out)


def sweep_plot(rows: Sequence[dict[str, Any]], out: Out, *, title: str = "λ sweep",
               selected: dict[str, float] | None = None) -> Out:
    """Accuracy and macro-F1 against λ, one line per series, ± sd bands.

    Parameters
    ----------
    rows : sequence of dict
        Each with ``series`` (e.g. ``"early / test"``), ``lam``, ``acc_mean``,
        ``f1_mean`` and optionally ``acc_sd`` / ``f1_sd`` (bands drawn when > 0).
    selected : dict, optional
        ``{series: lam}`` marked with a dashed vertical line (honest selection).

    Examples
    --------
    >>> import io
    >>> rows = [{"series": "early", "lam": l, "acc_mean": 0.5 + l / 10, "f1_mean": 0.4,
    ...          "acc_sd": 0.01, "f1_sd": 0.02} for l in (-1, 0, 1)]
    >>> sweep_plot(rows, io.BytesIO()).getvalue()[:4] == b"\\x89PNG"
    True
    """
    fig = _figure(11, 4.2)
    series = list(dict.fromkeys(r["series"] for r in rows))
    drawn: list[float] = []
    for j, (metric, label) in enumerate((("acc", "accuracy"), ("f1", "macro-F1"))):
        ax = fig.add_subplot(1, 2, j + 1)
        for i, name in enumerate(series):
            pts = sorted((r for r in rows if r["series"] == name), key=lambda r: r["lam"])
            lam = np.array([r["lam"] for r in pts], dtype=float)
            mean = np.array([r[f"{metric}_mean"] for r in pts], dtype=float)
            sd = np.array([r.get(f"{metric}_sd") or 0.0 for r in pts], dtype=float)
            colour = f"C{i}"
            ax.plot(lam, mean, marker="o", ms=3, color=colour, label=name)
            if np.any(sd > 0):
                low, high = _clip01(mean - sd), _clip01(mean + sd)
                ax.fill_between(lam, low, high, color=colour, alpha=0.2, lw=0)
                drawn += [float(low.min()), float(high.max())]
            if selected and name in selected:
                ax.axvline(selected[name], color=colour, ls="--", lw=0.8)
        ax.set_xlabel("λ")
        ax.set_ylabel(label)
        ax.set_title(_title(f"{title}: {label}", 5.2), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out, intervals=(min(drawn), max(drawn)) if drawn else None)


def method_comparison_plot(panels: dict[str, dict[str, Any]], out: Out, *, metric: str = "test macro-F1",
                           title: str = "alignment methods") -> Out:
    """One panel per method: ``metric`` against λ with 95 % intervals, and the no-alignment reference.

    Parameters
    ----------
    panels : dict
        ``{label: {"lam": [...], "mean": [...], "low": [...], "high": [...],
        "reference": (mean, low, high) or None, "selected": λ or None}}``;
        ``low``/``high`` entries may be ``None`` (one seed: no interval).
        The reference is drawn as a dashed horizontal line with its band.

    Examples
    --------
    >>> import io
    >>> p = {"cca": {"lam": [0, 1], "mean": [0.5, 0.6], "low": [0.4, 0.5], "high": [0.6, 0.7],
    ...              "reference": (0.45, 0.4, 0.5), "selected": 1.0}}
    >>> method_comparison_plot(p, io.BytesIO()).getvalue()[:4] == b"\\x89PNG"
    True
    """
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = _figure(max(4.2 * cols, 6.0), 3.4 * rows)
    axes = [fig.add_subplot(rows, cols, 1)]
    axes += [fig.add_subplot(rows, cols, i + 1, sharey=axes[0]) for i in range(1, n)]  # one scale to compare
    drawn: list[float] = []
    for ax, (label, panel) in zip(axes, panels.items()):
        lam = np.asarray(panel["lam"], dtype=float)
        mean = np.asarray(panel["mean"], dtype=float)
        low = _clip01([m if v is None else v for v, m in zip(panel["low"], mean)])
        high = _clip01([m if v is None else v for v, m in zip(panel["high"], mean)])
        drawn += [float(low.min()), float(high.max())]
        ax.errorbar(lam, mean, yerr=[mean - low, high - mean], marker="o", ms=4, capsize=3, color="C0",
                    label=label)
        ref = panel.get("reference")
        if ref is not None:
            ax.axhline(ref[0], color="C3", ls="--", lw=1, label="no alignment")
            if ref[1] is not None:
                band = _clip01([ref[1], ref[2]])
                ax.axhspan(band[0], band[1], color="C3", alpha=0.12, lw=0)
                drawn += [float(band[0]), float(band[1])]
        if panel.get("selected") is not None:
            ax.axvline(panel["selected"], color="C0", ls=":", lw=0.8)
        ax.set_xlabel("λ")
        ax.set_ylabel(metric)
        ax.set_title(_title(label, 3.8), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    width = max(4.2 * cols, 6.0)
    fig.suptitle(_title(f"{title}: {metric}, mean over seeds with 95% t intervals (clipped to [0, 1])", width),
                 fontsize=10)
    return _save(fig, out, intervals=(min(drawn), max(drawn)) if drawn else None)


GAP_FIGURES = ("2d_before", "2d_after", "3d_before", "3d_after", "before_after", "paired_cosine")


def gap_figures(store, report, out_dir: str | Path, names: Sequence[str] = GAP_FIGURES) -> dict[str, Path]:
    """Write the 2-D, 3-D, before/after and paired-cosine PNGs of a gap report.

    Returns ``{name: path}`` for each of ``names`` (default all of
    :data:`GAP_FIGURES`; ``before_after`` holds the two 2-D views side by
    side). The vectors the report already read (:attr:`GapReport.sources`)
    are reused; otherwise they are read at the versions each stage recorded.
    """
    from .pairs import paired_sources

    out_dir = Path(out_dir)
    vecs = {}
    for stage in (report.before, report.after):
        src = report.sources.get(stage.stage) or paired_sources(
            store, report.dataset, report.settings["image_model_key"], report.settings["text_model_key"],
            alignment_key=stage.alignment_key, dim=stage.dim, versions=stage.versions)
        vecs[stage.stage] = (src.image_vectors, src.text_vectors)
    lam = report.after.lam
    paths = {}
    for stage, label in (("before", "λ=0"), ("after", f"λ={lam:g}")):
        if f"2d_{stage}" in names:
            paths[f"2d_{stage}"] = pca_scatter_2d(*vecs[stage], out_dir / f"2d_{stage}.png",
                                                  title=f"{report.dataset} PCA 2-D, {label}")
        if f"3d_{stage}" in names:
            paths[f"3d_{stage}"] = pca_scatter_3d(*vecs[stage], out_dir / f"3d_{stage}.png",
                                                  title=f"{report.dataset} PCA 3-D, {label}")
    if "before_after" in names:
        paths["before_after"] = before_after(vecs["before"], vecs["after"], out_dir / "before_after.png",
                                             lam=lam, title=report.dataset)
    if "paired_cosine" in names:
        paths["paired_cosine"] = paired_cosine_hist(
            {"before (λ=0)": report.before.paired_cosines, f"after (λ={lam:g})": report.after.paired_cosines},
            out_dir / "paired_cosine.png", title=f"{report.dataset}: paired cosine")
    return {k: Path(v) for k, v in paths.items()}


#: Most classes a confusion figure draws: beyond, the best-supported classes and one pooled "other" class.
MAX_CONFUSION_CLASSES = 20


def top_classes(confusion: np.ndarray, classes: Sequence[str], k: int) -> tuple[np.ndarray, list[str]]:
    """The ``k - 1`` classes with the most true rows, in that order, and the others pooled into one class.

    Rows and columns of the pooled classes are summed, so every count stays
    in the matrix (its total is unchanged).

    Examples
    --------
    >>> conf = np.array([[5, 1, 0], [2, 9, 1], [0, 1, 1]])
    >>> m, names = top_classes(conf, ["a", "b", "c"], 2)
    >>> names, m.tolist()
    (['b', 'other (2 classes)'], [[9.0, 3.0], [2.0, 6.0]])
    """
    conf = np.asarray(confusion, dtype=np.float64)
    keep = np.argsort(-conf.sum(axis=1), kind="stable")[: max(1, k - 1)]
    rest = np.setdiff1d(np.arange(len(classes)), keep)
    index = np.concatenate([keep, rest])
    ordered = conf[np.ix_(index, index)]
    n = len(keep)
    out = np.zeros((n + 1, n + 1))
    out[:n, :n] = ordered[:n, :n]
    out[:n, n] = ordered[:n, n:].sum(axis=1)
    out[n, :n] = ordered[n:, :n].sum(axis=0)
    out[n, n] = ordered[n:, n:].sum()
    return out, [str(classes[i]) for i in keep] + [f"other ({len(rest)} classes)"]


def confusion_plot(confusion: Sequence[Sequence[int]], classes: Sequence[str], out: Out, *,
                   title: str = "confusion matrix", max_classes: int | None = MAX_CONFUSION_CLASSES) -> Out:
    """Row-normalised confusion matrix (true class per row) with the counts written in each cell.

    With more than ``max_classes`` classes the figure shows the
    ``max_classes - 1`` classes with the most test rows and pools the others
    into one "other" row and column (:func:`top_classes`), so its size and
    drawing time stay bounded (a full 200-class figure took minutes and GBs:
    ``benchmarks/results/confusion_figure.md``); the per-class table beside it
    lists every class. ``max_classes=None`` draws every class.

    Examples
    --------
    >>> import io
    >>> buf = confusion_plot([[5, 1], [2, 4]], ["a", "b"], io.BytesIO())
    >>> buf.getvalue()[:4] == b"\\x89PNG"
    True
    """
    conf = np.asarray(confusion, dtype=np.float64)
    classes = [str(c) for c in classes]
    if max_classes is not None and len(classes) > max_classes:
        total = len(classes)
        conf, classes = top_classes(conf, classes, max_classes)
        title = f"{title}\n{len(classes) - 1} most frequent of {total} classes; the others pooled"
    rates = conf / np.clip(conf.sum(axis=1, keepdims=True), 1, None)
    longest = max((len(str(c)) for c in classes), default=1)
    size = max(3.5, 1.2 + 0.55 * len(classes))
    width, height = size + 1.0 + 0.09 * longest, size + 0.8 + 0.06 * longest  # room for the class names
    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, f"{int(conf[i, j])}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_title(title, width - 0.5, 10), fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    return _save(fig, out)
