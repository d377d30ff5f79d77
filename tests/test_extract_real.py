"""Real pretrained weights, offline: the two builtin encoders on 70 real HAM10000 photos."""

from __future__ import annotations

import numpy as np
import pytest

from embedstore.extract import extract
from embedstore.extractors import load_extractor


def _loo_1nn_accuracy(x: np.ndarray, labels: list[str]) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    y = np.asarray(labels)
    return float((y[nearest] == y).mean())


@pytest.mark.slow
def test_builtin_encoders_on_ham10000_sample70(store, shared_data):
    from embedstore.ingest import ingest

    ingest(store, "ham10000", shared_data / "ham10000-sample70", name="ham70", progress=False)
    image = extract(store, "ham70", "builtin:efficientnet-lite0", modality="image", batch_size=16, progress=False)
    text = extract(store, "ham70", "builtin:minilm-l6", modality="text", batch_size=32, progress=False)
    assert image.result("image").computed == 70 and not image.skipped
    assert text.result("text").computed == 70
    ids, img = store.embeddings("ham70", image.model_key, "image", as_="numpy")
    tids, txt = store.embeddings("ham70", text.model_key, "text", as_="numpy")
    assert img.shape == (70, 1280) and txt.shape == (70, 384) and len(set(ids)) == len(set(tids)) == 70
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)  # all-MiniLM-L6-v2 normalises

    samples = store.samples("ham70", columns=["sample_id", "label"]).to_pylist()
    label = {r["sample_id"]: r["label"] for r in samples}
    acc = _loo_1nn_accuracy(img, [label[s] for s in ids])
    assert acc > 0.2, f"leave-one-out 1-NN accuracy {acc:.3f} is not above chance (1/7)"

    # a second run over the same data: zero forwards, no new version
    again = extract(store, "ham70", "builtin:efficientnet-lite0", modality="image", progress=False)
    assert again.forward_calls == 0 and again.result("image").version == image.result("image").version


@pytest.mark.slow
def test_minilm_is_a_real_sentence_encoder():
    ext = load_extractor("builtin:minilm-l6")
    v = ext.encode_texts(["a photo of a dog", "a picture of a puppy", "the stock market fell sharply today"])
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
