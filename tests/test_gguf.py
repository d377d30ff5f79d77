"""gguf: files through llama.cpp, the paper's LLaMA-2 call pattern, on a tiny GGUF written offline."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from embedstore.errors import InputError  # noqa: E402
from embedstore.extract import extract  # noqa: E402
from embedstore.extractors import canonical_id, load_extractor  # noqa: E402
from embedstore.extractors.backends import min_cosine  # noqa: E402
from embedstore.extractors.gguf_write import llama_to_gguf  # noqa: E402
from tests.test_extract import write_dataset  # noqa: E402
from tests.tiny_models import make_tiny_llama  # noqa: E402

TEXTS = ["a lesion on the back of a male patient", "melanoma\nnevus", "the optic disc is present"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    base = tmp_path_factory.mktemp("llama")
    hf = make_tiny_llama(base / "hf")
    return hf, llama_to_gguf(hf, base / "tiny-f32.gguf", quant="F32"), llama_to_gguf(hf, base / "tiny-q8.gguf")


def _torch_last_token(hf_dir, ids_per_text):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(hf_dir, local_files_only=True).eval()
    with torch.no_grad():
        return np.stack([model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1].numpy() for ids in ids_per_text])


def test_gguf_is_the_paper_pooling_of_the_same_weights(llama):
    hf, f32, q8 = llama
    ext = load_extractor(str(f32))
    assert canonical_id(str(f32)) == f"gguf:{f32}" == ext.identity.model_id
    vecs = ext.encode_texts(TEXTS)
    assert vecs.shape == (3, 64) and ext.forward_calls == 3  # one llama.cpp call per text
    ids = [ext.tokenize(t) for t in TEXTS]
    assert all(i[0] == 1 for i in ids)  # BOS first, as the paper's llama.cpp did
    # last-token hidden state after the final norm, unnormalised: torch on the same tokens agrees
    assert min_cosine(_torch_last_token(hf, ids), vecs) > 0.9999
    assert not np.allclose(np.linalg.norm(vecs, axis=1), 1.0)
    assert min_cosine(vecs, load_extractor(str(q8)).encode_texts(TEXTS)) > 0.999  # Q8_0 vs F32
    mean = load_extractor(str(f32), pooling="mean")
    assert mean.identity.key != ext.identity.key and min_cosine(mean.encode_texts(TEXTS), vecs) < 0.99


def test_gguf_identity_has_the_file_hash_quantisation_and_runtime(llama, tmp_path):
    _, f32, q8 = llama
    a, b = load_extractor(str(f32)).identity, load_extractor(str(q8)).identity
    assert (a.dtype, b.dtype) == ("F32", "Q8_0") and a.key != b.key
    assert a.backend == "llama.cpp" and a.backend_version.startswith("llama-cpp-python ")
    assert a.weights.startswith("sha256:") and a.truncation == 512 and a.pooling == "last_token"
    copy = tmp_path / "same.gguf"
    copy.write_bytes(f32.read_bytes())
    assert load_extractor(str(copy)).identity.weights == a.weights
    with pytest.raises(InputError, match="carries its own quantisation"):
        load_extractor(str(q8), quantize="8bit")
    with pytest.raises(InputError, match="llama.cpp only"):
        load_extractor(str(q8), backend="onnx")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(InputError, match="not a readable GGUF file"):
        load_extractor(str(bad))
    with pytest.raises(InputError, match="ORG/REPO/FILE.gguf"):
        load_extractor("gguf:TheBloke/only-a-repo")


def test_extract_with_a_gguf_file_then_nothing_to_do(store, tmp_path, llama):
    _, _, q8 = llama
    write_dataset(store, "toy", tmp_path / "img", range(5))
    first = extract(store, "toy", f"gguf:{q8}", progress=False, threads=1)
    assert first.computed == 5 and first.forward_calls == 5 and first.backend == "llama.cpp Q8_0"
    again = extract(store, "toy", f"gguf:{q8}", progress=False, threads=1)
    assert (again.computed, again.forward_calls) == (0, 0)
