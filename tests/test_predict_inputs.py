"""Predict's inputs: the run's alignment re-applied (and folded into ONNX), single-modality datasets, mismatches.

Real images, tiny real CLIP/BERT models saved to disk, real LanceDB and torch.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedstore import Store
from embedstore.alignment import align
from embedstore.errors import InputError, NotFoundError
from embedstore.extract import extract
from embedstore.heads import HEADS, HeadArtifact, heads_of_run, save_head
from embedstore.ingest import ingest
from embedstore.modalities import dataset_modalities
from embedstore.runs import get_run
from tests.helpers import embedded_manifest, manifest_copy
from embedstore.trainers.predict import predict, probabilities
from embedstore.trainers.train import train


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from tests.tiny_models import make_tiny_bert

    base = tmp_path_factory.mktemp("inputs")
    store, clip, data = embedded_manifest(base)
    bert = make_tiny_bert(base / "bert", hidden_size=24)
    extract(store, "ds", bert, modality="text", progress=False, threads=1)
    return store, data.manifest, clip, bert, base


def _own_test_rows_match(store, run_id, dataset="ds"):
    rec, head = get_run(store, run_id), heads_of_run(store, run_id)[0]
    res = predict(store, dataset, run_id, write=False)
    pos = {s: i for i, s in enumerate(res.sample_ids)}
    rows = [pos[s] for s in head.spec["test_sample_ids"]]
    np.testing.assert_allclose(res.proba[rows], probabilities(np.array(rec.metrics["test_logits"])), atol=1e-6)
    return res


def _onnx_matches(store, run_id, res, vectors, path):
    import onnxruntime as ort

    from embedstore.trainers.export import export_head

    side = export_head(store, run_id, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {name: vectors[name.split("_")[0]] for name in side["inputs"]})
    np.testing.assert_allclose(got, res.proba, atol=1e-5)
    return side


@pytest.mark.parametrize("pair", ["clip", "clip+bert-interp"])
def test_aligned_head_reapplies_the_train_fitted_shift_and_onnx_folds_it_in(lab, tmp_path, pair):
    from embedstore.snapshot import Snapshot

    store, manifest, clip, bert, _ = lab
    text = clip if pair == "clip" else bert
    al = align(store, "ds", image_model=clip, text_model=text, lam=1.0,
               match=None if pair == "clip" else "interp")
    assert al.settings["fit_on"] == "train"
    run = train(store, "ds", image_model=clip, text_model=text, fusion="early", seeds=1, epochs=3,
                alignment_key=al.alignment_key)
    run_id = run.run_ids[0]
    head = heads_of_run(store, run_id)[0]
    assert head.spec["alignment"]["image"]["lam"] == 1.0 and "align.text.gap" in head.tensors
    res = _own_test_rows_match(store, run_id)
    # new rows: an unlabelled copy, embedded by the raw models only; predict aligns them with the stored gap
    held = set(head.spec["test_sample_ids"])
    ingest(store, "manifest", manifest_copy(manifest, tmp_path / "new", drop=("label",), keep=held),
           name=f"new{len(pair)}", id_column="sample_id", group_column="group", progress=False)
    new = predict(store, f"new{len(pair)}", run_id, write=False)
    assert new.forward_calls == 0
    np.testing.assert_allclose(new.proba, res.proba[[res.sample_ids.index(s) for s in new.sample_ids]], atol=1e-6)
    _, raw, _ = Snapshot(store, "ds", image_model=clip, text_model=text).current()
    side = _onnx_matches(store, run_id, res, raw, tmp_path / "aligned.onnx")
    assert side["alignment_folded_in"] and side["input_dims"]["image_embedding"] == 16


def test_interp_matrix_and_torch_shift_equal_the_numpy_shift():
    import torch

    from embedstore.trainers.head_inputs import _shift, export_buffers, torch_align

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7))
    a = {"alignment_key": "k", "method": "gapshift", "lam": 0.7, "match": "interp", "dim": 11, "noise_std": 0.0}
    gap = rng.normal(size=11)
    bufs = export_buffers({"image": a}, {"align.image.gap": gap}, {"image": 7})["image"]
    tensors = {k: torch.from_numpy(v) for k, v in bufs.items()}
    got = torch_align(torch.from_numpy(x.astype(np.float32)), "image", a, tensors)
    np.testing.assert_allclose(got.numpy(), _shift("image", x, a, gap), atol=1e-6)


def test_a_head_saved_before_alignments_were_kept_reads_them_from_the_registry(lab):
    store, _, clip, _, _ = lab
    al = align(store, "ds", image_model=clip, text_model=clip, lam=0.5)
    run_id = train(store, "ds", image_model=clip, text_model=clip, fusion="late", seeds=1, epochs=2,
                   alignment_key=al.alignment_key).run_ids[0]
    new = heads_of_run(store, run_id)[0]
    old_spec = {k: v for k, v in new.spec.items() if k not in ("alignment", "input_dims", "prompt")}
    old = HeadArtifact(new.head_id, new.run_id, new.group_id, new.dataset, new.seed, new.fold, old_spec,
                       {k: v for k, v in new.tensors.items() if not k.startswith("align.")})
    save_head(store, old)
    assert "alignment" not in heads_of_run(store, run_id)[0].spec
    _own_test_rows_match(store, run_id)


def test_image_only_dataset_ingests_extracts_trains_and_predicts(lab, tmp_path):
    store, manifest, clip, _, _ = lab
    rep = ingest(store, "manifest", manifest_copy(manifest, tmp_path / "img", drop=("text",)), name="imgonly",
                 id_column="sample_id", group_column="group", progress=False)
    assert rep.modalities == ("image",) and any("image-only" in n for n in rep.notes)
    rows = store.samples("imgonly")
    assert rows["text"].null_count == rows.num_rows and rows["prompt_name"][0].as_py() == "none"
    assert dataset_modalities(store, "imgonly") == ("image",) and dataset_modalities(store, "ds") == ("image", "text")
    ex = extract(store, "imgonly", clip, progress=False, threads=1)  # a CLIP: only the image side runs
    assert [r.modality for r in ex.results] == ["image"] and ex.forward_calls == 0  # same photos: reused
    with pytest.raises(InputError, match=r"has no text \(image only\): extract modality='image'"):
        extract(store, "imgonly", clip, modality="text", progress=False)
    for fusion in ("early", "late"):
        with pytest.raises(InputError, match=f"image only: {fusion} fusion needs image and text; train fusion='image'"):
            train(store, "imgonly", image_model=clip, text_model=clip, fusion=fusion, epochs=1)
    with pytest.raises(InputError, match="has no text"):
        train(store, "imgonly", image_model=clip, text_model=clip, fusion="linear")
    img = train(store, "imgonly", image_model=clip, fusion="image", seeds=1, epochs=2).run_ids[0]
    lin = train(store, "imgonly", image_model=clip, fusion="linear").run_ids[0]
    for run_id in (img, lin):
        res = _own_test_rows_match(store, run_id, "imgonly")
        assert res.written == 0 and len(res.sample_ids) == 60
    early = train(store, "ds", image_model=clip, text_model=clip, fusion="early", seeds=1, epochs=1).run_ids[0]
    with pytest.raises(InputError, match=r"has no text \(image only\) but run .* reads image and text: predict it "
                                         r"with a run trained on image only"):
        predict(store, "imgonly", early)


def test_text_only_dataset_ingests_extracts_trains_and_predicts(lab, tmp_path):
    store, manifest, _, bert, _ = lab
    rep = ingest(store, "manifest", manifest_copy(manifest, tmp_path / "txt", drop=("image",)), name="txtonly",
                 id_column="sample_id", group_column="group", progress=False)
    assert rep.modalities == ("text",) and not rep.skipped
    rows = store.samples("txtonly")
    assert rows["image_ref"].null_count == rows.num_rows == 60
    ex = extract(store, "txtonly", bert, progress=False, threads=1)
    assert [r.modality for r in ex.results] == ["text"]
    with pytest.raises(InputError, match="has no image"):
        extract(store, "txtonly", bert, modality="image", progress=False)
    with pytest.raises(InputError, match="text only: late fusion needs image and text"):
        train(store, "txtonly", image_model=bert, text_model=bert, fusion="late", epochs=1)
    run_id = train(store, "txtonly", text_model=bert, fusion="text", seeds=1, epochs=2).run_ids[0]
    _own_test_rows_match(store, run_id, "txtonly")
    with pytest.raises(InputError, match="no image column and no text"):
        ingest(store, "manifest", manifest_copy(manifest, tmp_path / "none", drop=("image", "text")), name="nothing",
               id_column="sample_id", progress=False)


def test_mismatches_are_one_line_errors_naming_the_fix(lab, tmp_path):
    from tests.tiny_models import make_tiny_clip_hf

    store, manifest, clip, _, base = lab
    run_id = train(store, "ds", image_model=clip, text_model=clip, fusion="late", seeds=1, epochs=1).run_ids[0]
    # unseen metadata field in the prompt template
    ingest(store, "manifest", manifest_copy(manifest, tmp_path / "p", drop=("label", "text")), name="prompted",
           id_column="sample_id", text_template="Age: {age}. Site: {site}.", progress=False)
    with pytest.raises(InputError, match=r"metadata field\(s\) \['age', 'site'\] the head never saw \(trained on "
                                         r"column:text .*re-ingest with text_column=COLUMN") as err:
        predict(store, "prompted", run_id)
    assert "\n" not in str(err.value)
    # a head trained on a template: a new dataset's extra field is named, with the training template as the fix
    ingest(store, "manifest", manifest_copy(manifest, tmp_path / "t", drop=("text",)), name="templ",
           id_column="sample_id", group_column="group", text_template="Age: {age}.", progress=False)
    extract(store, "templ", clip, progress=False, threads=1)
    t_run = train(store, "templ", image_model=clip, text_model=clip, fusion="late", seeds=1, epochs=1).run_ids[0]
    with pytest.raises(InputError, match=r"field\(s\) \['site'\] the head never saw \(trained on template 'Age: "
                                         r"\{age\}\.'\): re-ingest it with text_template='Age: \{age\}\.'"):
        predict(store, "prompted", t_run)
    # run without stored heads
    off = train(store, "ds", image_model=clip, fusion="image", epochs=1, save_heads=False).run_ids[0]
    with pytest.raises(NotFoundError, match="has no stored head: re-train it with save_heads=True"):
        predict(store, "ds", off)
    # a dataset embedded by another model, while the head's own model cannot be loaded here
    other = Store(tmp_path / "other")
    gone = make_tiny_clip_hf(tmp_path / "gone-clip", projection_dim=12)
    ingest(other, "manifest", manifest, name="ds", id_column="sample_id", group_column="group", progress=False)
    extract(other, "ds", gone, progress=False, threads=1)
    head = train(other, "ds", image_model=gone, fusion="image", seeds=1, epochs=1).run_ids[0]
    ingest(other, "manifest", manifest_copy(manifest, tmp_path / "c", drop=("label",)), name="clinic",
           id_column="sample_id", progress=False)
    shutil.rmtree(gone)
    with pytest.raises(InputError, match="dataset 'clinic' lacks the head's image model .* cannot be run here"):
        predict(other, "clinic", head)
    extract(other, "clinic", clip, modality="image", progress=False, threads=1)
    with pytest.raises(InputError, match=r"dataset 'clinic' is embedded by .*clip.*, not the head's image model"):
        predict(other, "clinic", head)
    assert other.has_table(HEADS)
