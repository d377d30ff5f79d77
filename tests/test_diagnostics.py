"""Gap diagnostics against independent NumPy / scikit-learn computations on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore import ModelIdentity
from embedstore.alignment import l2_normalize
from embedstore.diagnostics import gap_diagnostics, paper_variance, report_rows
from tests.helpers import sample_rows


def _paired_store(store, n=40, d=6, seed=0):
    """Image = random; text = image + small noise - a constant offset: pairs identifiable, known gap."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    image = rng.standard_normal((n, d)) + 2.0 * labels[:, None] * np.eye(1, d, 1)
    offset = 3.0 * np.eye(1, d)
    text = image + 0.05 * rng.standard_normal((n, d)) - offset
    image = image + offset
    ids = [f"s{i:03d}" for i in range(n)]
    rows = sample_rows(ids, labels=[f"c{c}" for c in labels],
                       splits=["train" if i % 4 else "test" for i in range(n)])
    store.write_samples("pairs", rows)
    mi = ModelIdentity("hf:pi", "w", ("image",), {"image": d})
    mt = ModelIdentity("hf:pt", "w", ("text",), {"text": d})
    store.write_embeddings("pairs", mi, "image", ids, image.astype(np.float32), rows["image_sha256"].to_pylist())
    store.write_embeddings("pairs", mt, "text", ids, text.astype(np.float32), rows["text_sha256"].to_pylist())
    return image, text, labels


def _recall(q, t, k):
    sims = l2_normalize(q) @ l2_normalize(t).T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return float(np.mean([i in top[i] for i in range(len(q))]))


def _knn(x, labels, k):
    x = l2_normalize(x)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    return float((labels[top] == labels[:, None]).mean())


def test_before_stage_matches_independent_computations(store):
    image, text, labels = _paired_store(store)
    rep = gap_diagnostics(store, "pairs", image_model="hf:pi", text_model="hf:pt", lam=1.0, fit_on="all")
    b = rep.before
    I, T = l2_normalize(image), l2_normalize(text)
    assert b.rows == 40 and b.dim == 6 and b.lam == 0.0
    assert b.gap_norm == pytest.approx(np.linalg.norm(I.mean(0) - T.mean(0)), rel=1e-5)
    mi, mt = I.mean(0), T.mean(0)
    assert b.centroid_cosine == pytest.approx(mi @ mt / np.linalg.norm(mi) / np.linalg.norm(mt), rel=1e-5)
    within = (I @ I.T)[~np.eye(40, dtype=bool)].mean()
    assert b.cos_within_image == pytest.approx(within, rel=1e-5)
    assert b.cos_across == pytest.approx((I @ T.T).mean(), rel=1e-5)
    paired = np.sum(I * T, axis=1)
    assert b.paired_cosine["mean"] == pytest.approx(paired.mean(), rel=1e-5)
    assert b.paired_cosine["median"] == pytest.approx(np.median(paired), rel=1e-5)
    # the paper's variance: sklearn PCA(2) on stacked [text; image], np.var per component, mean
    from sklearn.decomposition import PCA

    proj = PCA(n_components=2).fit(np.vstack([T, I]))
    assert b.pca_variance_text == pytest.approx(np.var(proj.transform(T), axis=0).mean(), rel=1e-4)
    assert b.pca_variance_image == pytest.approx(np.var(proj.transform(I), axis=0).mean(), rel=1e-4)
    assert b.total_variance_image == pytest.approx(I.var(axis=0).sum(), rel=1e-5)
    # retrieval through the store's neighbors equals brute-force NumPy retrieval
    for k in (1, 5, 10):
        assert b.recall_image_to_text[k] == pytest.approx(_recall(I, T, k))
        assert b.recall_text_to_image[k] == pytest.approx(_recall(T, I, k))
    assert b.retrieval_queries == 40
    assert b.knn_agreement_image == pytest.approx(_knn(I, labels, 5))
    assert b.knn_chance == pytest.approx(0.5)


def test_alignment_closes_the_gap_and_keeps_pairs(store):
    image, text, _ = _paired_store(store)
    rep = gap_diagnostics(store, "pairs", image_model="hf:pi", text_model="hf:pt", lam=1.0, fit_on="all")
    a, b = rep.after, rep.before
    assert b.gap_norm > 0.8 and a.gap_norm < 0.2 * b.gap_norm
    assert b.centroid_cosine < 0 < 0.9 < a.centroid_cosine
    assert a.paired_cosine["mean"] > b.paired_cosine["mean"]
    assert a.cos_across > b.cos_across
    # closing the gap makes each text's own image its nearest neighbour far more often
    assert a.recall_image_to_text[1] > b.recall_image_to_text[1] + 0.3
    assert a.recall_text_to_image[10] >= 0.9
    assert rep.settings["lam"] == 1.0 and a.alignment_key != b.alignment_key
    # the same report again reuses the stored alignments (no new versions)
    versions = {t["table"]: t["version"] for t in store.info()["tables"]}
    again = gap_diagnostics(store, "pairs", alignment_key=a.alignment_key)
    assert {t["table"]: t["version"] for t in store.info()["tables"]} == versions
    assert again.after.gap_norm == pytest.approx(a.gap_norm)
    rows = report_rows(again)
    assert {"before", "after", "metric"} == set(rows[0]) and len(rows) == len({r["metric"] for r in rows})
    assert any(r["metric"] == "recall@10 text→image" for r in rows)


def test_query_cap_and_missing_models(store):
    _paired_store(store, n=30)
    rep = gap_diagnostics(store, "pairs", image_model="hf:pi", text_model="hf:pt", max_queries=7)
    assert rep.before.retrieval_queries == 7 and rep.before.rows == 30
    from embedstore.errors import InputError, NotFoundError

    with pytest.raises(InputError, match="image_model="):
        gap_diagnostics(store, "pairs")
    with pytest.raises(NotFoundError, match="no model 'hf:nope'"):
        gap_diagnostics(store, "pairs", image_model="hf:nope", text_model="hf:pt")


def test_paper_variance_is_per_modality():
    rng = np.random.default_rng(0)
    wide, narrow = rng.normal(0, 1, (100, 5)), rng.normal(0, 0.01, (100, 5)) + 3
    vi, vt = paper_variance(wide, narrow)
    assert vi > 100 * vt


def test_gap_command_prints_every_diagnostic(store, tmp_path):
    import json

    from click.testing import CliRunner

    from embedstore.cli.main import cli

    _paired_store(store, n=24)
    args = ["--store", store.uri, "gap", "pairs", "--image-model", "hf:pi", "--text-model", "hf:pt"]
    res = CliRunner().invoke(cli, args + ["--figures", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    for row in report_rows(gap_diagnostics(store, "pairs", image_model="hf:pi", text_model="hf:pt")):
        assert row["metric"] in res.output and row["after"] in res.output
    assert "store versions: emb__image__" in res.output
    assert len(list((tmp_path / "figs").glob("*.png"))) == 6
    data = json.loads(CliRunner().invoke(cli, args + ["--json"]).output)
    assert data["before"]["recall_image_to_text"]["10"] >= data["before"]["recall_image_to_text"]["1"]
    assert data["after"]["lam"] == 1.0 and data["settings"]["fit_on"] == "train"
    bad = CliRunner().invoke(cli, ["--store", store.uri, "gap", "pairs", "--image-model", "hf:nope",
                                   "--text-model", "hf:pt"])
    assert bad.exit_code == 1 and "Error: no model 'hf:nope'" in bad.output and "Traceback" not in bad.output


def test_retrieval_after_a_fitted_map_is_measured_on_rows_it_never_saw(store):
    """fit_on="train": retrieval queries and candidates are the rows outside the train split, for both stages."""
    image, text, _ = _paired_store(store)  # splits: every 4th row is test, the others train
    rep = gap_diagnostics(store, "pairs", image_model="hf:pi", text_model="hf:pt", lam=1.0, fit_on="train")
    held = np.arange(40)[np.arange(40) % 4 == 0]
    for stage, src in (("before", rep.sources["before"]), ("after", rep.sources["after"])):
        st = getattr(rep, stage)
        assert st.retrieval_queries == len(held) and "10 rows outside the train split" in st.retrieval_rows
        I, T = src.image_vectors[held], src.text_vectors[held]
        for k in (1, 5, 10):
            assert st.recall_image_to_text[k] == pytest.approx(_recall(I, T, k))  # among held-out rows only
            assert st.recall_chance[k] == pytest.approx(k / len(held))
        assert st.measures["exact_text_recall"]["queries"] == len(held)
    rows = {r["metric"]: r for r in report_rows(rep)}
    assert rows["recall@1/5/10 chance (random ranking)"]["after"] == "0.1000 / 0.5000 / 1.0000"
    assert "always the 1 most common" in rows["recall@1 image→distinct text (exact text)"]["after"]
    # an alignment fitted on every row leaves none unseen: all rows, and the description says it is optimistic
    everything = gap_diagnostics(store, "pairs", image_model="hf:pi", text_model="hf:pt", lam=1.0, fit_on="all")
    assert everything.after.retrieval_queries == 40 and "optimistic" in everything.after.retrieval_rows
