"""The PNG figures: real files that Pillow opens, of the expected size, not blank."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from embedstore.diagnostics import gap_diagnostics
from embedstore.figures import (before_after, confusion_plot, figure_info, gap_figures, method_comparison_plot,
                                paired_cosine_hist, pca_scatter_2d, pca_scatter_3d, sweep_plot)
from embedstore.pairs import toy_pairs


def _unit(rng, n, d, shift):
    x = rng.standard_normal((n, d)) + shift
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _open(png) -> Image.Image:
    data = png.getvalue() if isinstance(png, io.BytesIO) else open(png, "rb").read()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def test_2d_scatter_renders_both_modalities(tmp_path):
    rng = np.random.default_rng(0)
    image, text = _unit(rng, 80, 6, 2 * np.eye(1, 6)), _unit(rng, 80, 6, -2 * np.eye(1, 6))
    path = pca_scatter_2d(image, text, tmp_path / "sub" / "2d.png", title="toy")
    img = _open(path)
    assert img.size == (500, 500)  # 5 x 5 in at 100 dpi
    arr = np.asarray(img).astype(int)
    assert arr.std() > 10  # not blank
    # both scatter colours are present (blue image points, red text points, alpha-blended)
    r, b = arr[..., 0], arr[..., 2]
    assert (b - r > 60).sum() > 50 and (r - b > 60).sum() > 50


def test_other_figures_are_valid_pngs():
    rng = np.random.default_rng(1)
    image, text = _unit(rng, 50, 5, 1.0), _unit(rng, 50, 5, -1.0)
    w, h = _open(pca_scatter_3d(image, text, io.BytesIO())).size  # 6 x 6 in, re-cut to keep the z label inside
    assert 550 <= w <= 700 and 550 <= h <= 700
    assert _open(before_after((image, text), (text, image), io.BytesIO(), lam=1.0)).size == (1000, 500)
    hist = _open(paired_cosine_hist({"before": rng.uniform(-1, 1, 50), "after": rng.uniform(0, 1, 50)},
                                    io.BytesIO()))
    assert np.asarray(hist).std() > 5
    rows = [{"series": s, "lam": lam, "acc_mean": 0.6 + 0.05 * lam, "acc_sd": 0.02,
             "f1_mean": 0.5, "f1_sd": 0.03} for s in ("early", "late") for lam in (-1, -0.5, 0, 0.5, 1)]
    sweep = _open(sweep_plot(rows, io.BytesIO(), selected={"early": 0.5}))
    assert sweep.size == (1100, 420) and np.asarray(sweep).std() > 5


def test_gap_figures_from_the_store(store, tmp_path):
    img, txt = toy_pairs(store, "toy", n=30)
    rep = gap_diagnostics(store, "toy", image_model=img, text_model=txt, max_queries=5)
    paths = gap_figures(store, rep, tmp_path / "figs")
    assert set(paths) == {"2d_before", "2d_after", "3d_before", "3d_after", "before_after", "paired_cosine"}
    for p in paths.values():
        assert p.is_file() and _open(p).size[0] >= 500


def test_the_confusion_figure_stays_bounded_for_many_classes():
    """200 classes: the figure is the size of a 20-class one, shows the best-supported classes, loses no count."""
    from embedstore.figures import MAX_CONFUSION_CLASSES, confusion_plot, top_classes

    rng = np.random.default_rng(0)
    n = 200
    support = rng.integers(5, 60, n)
    conf = np.stack([rng.multinomial(s, np.full(n, 1.0 / n)) for s in support])
    names = [f"c{i:03d}" for i in range(n)]
    many = _open(confusion_plot(conf, names, io.BytesIO()))
    twenty = _open(confusion_plot(conf[:20, :20], names[:20], io.BytesIO()))
    # bounded: the size of a 20-class figure, give or take the longer pooled label ('other (181 classes)')
    assert all(m <= 1.2 * t for m, t in zip(many.size, twenty.size)) and max(many.size) < 1600
    pooled, shown = top_classes(conf, names, MAX_CONFUSION_CLASSES)
    assert pooled.shape == (20, 20) and pooled.sum() == conf.sum()
    assert shown[:19] == [names[i] for i in np.argsort(-conf.sum(axis=1), kind="stable")[:19]]
    assert shown[-1] == "other (181 classes)"
    assert np.array_equal(pooled.sum(axis=1)[:19], np.sort(conf.sum(axis=1))[::-1][:19])


def _labelled(info):
    """Every axes of a figure's description has its labels: x and y (and z in 3-D), a colorbar its label."""
    for ax in info["axes"]:
        if ax["kind"] == "colorbar":
            assert ax["ylabel"] or ax["xlabel"], ax
        else:
            assert ax["xlabel"] and ax["ylabel"], ax
            assert ax["kind"] != "3d" or ax["zlabel"], ax
    return True


def test_every_figure_describes_itself_labelled_unclipped_and_in_range():
    rng = np.random.default_rng(2)
    image, text = _unit(rng, 40, 5, 1.0), _unit(rng, 40, 5, -1.0)
    long_title = "linear probe, standardised inputs, a setting name long enough to overflow a small figure: pooled"
    rows = [{"series": "early test", "lam": lam, "acc_mean": 0.95, "acc_sd": 0.2, "f1_mean": 0.9, "f1_sd": 0.3}
            for lam in (-1, 0, 1)]
    panels = {"gapshift": {"lam": [0, 1], "mean": [0.9, 0.95], "low": [0.4, 0.3], "high": [1.4, 1.6],
                           "reference": (0.8, 0.1, 1.5), "selected": 1.0}}
    figures = {
        "2d": pca_scatter_2d(image, text, io.BytesIO(), title=long_title),
        "3d": pca_scatter_3d(image, text, io.BytesIO(), title=long_title),
        "before_after": before_after((image, text), (text, image), io.BytesIO(), lam=1.0, title=long_title),
        "cosine": paired_cosine_hist({"before": rng.uniform(-1, 1, 40)}, io.BytesIO(), title=long_title),
        "sweep": sweep_plot(rows, io.BytesIO(), title=long_title),
        "methods": method_comparison_plot(panels, io.BytesIO(), title=long_title),
        "confusion": confusion_plot([[5, 1], [2, 4]], ["a-very-long-class-name", "b"], io.BytesIO(), title=long_title),
    }
    for name, buf in figures.items():
        info = figure_info(buf.getvalue())
        assert info and _labelled(info), name
        assert info["clipped_text"] == [], (name, info["clipped_text"])
        if "intervals" in info:  # metric intervals drawn, clipped to the metric's range
            assert 0.0 <= info["intervals"][0] <= info["intervals"][1] <= 1.0, (name, info["intervals"])
    assert figure_info(figures["methods"].getvalue())["intervals"] == [0.1, 1.0]
    assert figure_info(figures["sweep"].getvalue())["intervals"][1] == 1.0
    assert [a["zlabel"] for a in figure_info(figures["3d"].getvalue())["axes"]] == ["PC3"]
