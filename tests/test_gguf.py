"""gguf: files through llama.cpp, the paper's LLaMA-2 call pattern, on a tiny GGUF written offline.

Batched decoding and shared prefixes (the default) give the vectors of one
text per call within the stated tolerance: min per-row cosine >= 0.9999.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from embedstore.errors import InputError  # noqa: E402
from embedstore.extract import extract  # noqa: E402
from embedstore.extractors import canonical_id, load_extractor  # noqa: E402
from embedstore.extractors.backends import min_cosine  # noqa: E402
from embedstore.extractors.gguf_write import llama_to_gguf  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.test_extract import write_dataset  # noqa: E402
from tests.tiny_models import make_tiny_llama  # noqa: E402

TEXTS = ["a lesion on the back of a male patient", "melanoma\nnevus", "the optic disc is present"]
TOLERANCE = 0.9999  # min per-row cosine of every batching mode against one text per call


def _prompts(n: int = 40) -> list[str]:
    """HAM10000 paper-template prompts (the project's template) with varied fields, duplicates included."""
    from embedstore.datasets.prompts import TEMPLATES

    rng = np.random.RandomState(0)
    fields = [{"dx_type": rng.choice(["histo", "follow_up", "consensus", "confocal"]),
               "age": str(rng.choice([35, 40, 45, 50, 55, 60, 70, 85])), "sex": rng.choice(["male", "female"]),
               "localization": rng.choice(["back", "face", "lower extremity", "trunk", "scalp"])} for _ in range(n)]
    return [TEMPLATES["ham10000"]["paper"].format(**f) for f in fields]


@pytest.fixture(autouse=True)
def one_thread():
    """llama.cpp follows torch's pool: one thread keeps these tests quick on a shared, loaded machine."""
    from embedstore.cpu import torch_threads

    with torch_threads(1):
        yield


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
    ext = load_extractor(str(f32), batching="single")
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
    default = load_extractor(str(f32))  # batched with shared prefixes: one decode call, the same vectors
    assert min_cosine(default.encode_texts(TEXTS), vecs) > TOLERANCE and default.forward_calls == 1


@pytest.mark.parametrize("pooling", ["last_token", "mean"])
def test_batched_and_prefix_shared_vectors_equal_one_text_per_call_in_input_order(llama, pooling):
    _, _, q8 = llama
    texts = _prompts() + ["Patient diagnosed via histo.", "a line\nbreak", "x", _prompts()[3]]
    texts.append(" ".join(texts[:12]))  # longer than max_length: truncated the same way by every mode
    single = load_extractor(str(q8), pooling=pooling, max_length=64, batching="single")
    ref = single.encode_texts(texts)
    for mode in ("batched", "prefix"):
        ext = load_extractor(str(q8), pooling=pooling, max_length=64, batching=mode, batch_tokens=96)
        assert ext.identity.key != single.identity.key  # keyed: batched numerics differ on 7B shapes
        got = ext.encode_texts(texts)
        assert min_cosine(ref, got) >= TOLERANCE, mode  # row by row, so in input order
        assert np.abs(ref - got).max() <= 1e-2 * np.abs(ref).max(), mode
        assert ext.forward_calls > 1  # the small budget splits the rows over several decode calls
        assert ext.tokens["prompt"] == single.tokens["prompt"] == sum(len(single.tokenize(t)) for t in texts)
        rev = ext.encode_texts(texts[::-1])
        assert min_cosine(ref[::-1], rev) >= TOLERANCE
    # shared prefixes and duplicates are evaluated once; plain batching evaluates every token
    assert ext.tokens["evaluated"] < 0.7 * ext.tokens["prompt"]
    plain = load_extractor(str(q8), pooling=pooling, max_length=64, batching="batched", batch_tokens=96)
    plain.encode_texts(texts)
    assert plain.tokens["evaluated"] == plain.tokens["prompt"]
    with pytest.raises(InputError, match="batching 'two' is unknown"):
        load_extractor(str(q8), batching="two")


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


def test_extract_with_a_gguf_file_then_nothing_to_do(store, tmp_path, llama, capsys):
    _, _, q8 = llama
    write_dataset(store, "toy", tmp_path / "img", range(5))
    first = extract(store, "toy", f"gguf:{q8}", threads=1)
    assert first.computed == 5 and first.forward_calls == 1 and first.backend == "llama.cpp Q8_0"
    assert "shared prefixes once" in first.backend_reason
    progress = capsys.readouterr().err  # a log, not a terminal: plain lines with rows, tokens/s and the saving
    assert "extract text: 5/5 rows (100%)" in progress and "tokens/s=" in progress and "saved=" in progress
    again = extract(store, "toy", f"gguf:{q8}", progress=False, threads=1)
    assert (again.computed, again.forward_calls) == (0, 0)


def test_a_random_llama_gguf_written_tensor_by_tensor_loads_and_its_prefix_savings_match_extract(llama, tmp_path):
    """The benchmark's 7B builder at a tiny shape, with the tiny file's vocabulary; the savings it reports."""
    sys.path.insert(0, str(REPO))
    from benchmarks.llama_gguf import TINY, parameters, write_random_llama
    from benchmarks.prefix_savings import savings

    _, _, q8 = llama
    out = write_random_llama(tmp_path / "random.gguf", q8, TINY)
    ext = load_extractor(str(out))
    assert ext.identity.dtype == "Q8_0" and ext.meta["width"] == TINY["hidden"]
    texts = _prompts(30)
    vecs = ext.encode_texts(texts)
    assert np.isfinite(vecs).all() and min_cosine(load_extractor(str(out), batching="single").encode_texts(texts),
                                                  vecs) >= TOLERANCE
    vocab = int(ext.llm.n_vocab())
    assert out.stat().st_size > parameters(TINY, vocab) * 34 / 32  # Q8_0: 34 bytes per 32 weights
    # the benchmark's plan (sorted rows, chunks) evaluates what extract's forward evaluates on one chunk
    s = savings(texts, ext.tokenize, chunk_rows=256, budget=ext.batch_tokens)
    assert (s["prompt"], s["evaluated"]) == (ext.tokens["prompt"], ext.tokens["evaluated"])
    assert s["ratio"] < 0.7 and s["distinct"] == len(set(texts))


def test_cli_each_batching_mode_writes_its_own_key_and_continues_it_and_refuses_other_models(store, tmp_path, llama):
    from tests.helpers import invoke_cli as run_cli

    _, _, q8 = llama
    write_dataset(store, "toy", tmp_path / "img", range(6), texts=_prompts(6))
    first = extract(store, "toy", f"gguf:{q8}", limit=3, progress=False, threads=1)  # default: prefix
    res = run_cli(store.uri, "extract", "toy", "--model", f"gguf:{q8}", "--batching", "single", "--threads", "1",
                  "--no-progress", "--json")
    assert res.exit_code == 0, res.output
    single = json.loads(res.output)
    assert single["model_key"] != first.model_key and single["computed"] == 6  # not continued under another key
    again = extract(store, "toy", f"gguf:{q8}", progress=False, threads=1)
    assert again.model_key == first.model_key and again.computed == 3  # the default continues its own table
    for key in (first.model_key, single["model_key"]):
        ids, _ = store.embeddings("toy", key, "text", as_="numpy")
        assert len(ids) == 6
    bad = run_cli(store.uri, "extract", "toy", "--model", "builtin:minilm-l6", "--batching", "single")
    assert bad.exit_code != 0 and "--batching applies to gguf: models only" in bad.output


KILLED_RUN = """
import os, signal, sys
from embedstore import Store
from embedstore.extract import extract
from embedstore.extractors import gguf_batch

commits, decodes = [0], [0]
write = Store.write_embeddings
def counted_write(self, *args, **kwargs):
    out = write(self, *args, **kwargs)
    commits[0] += 1
    decodes[0] = 0
    return out
decode = gguf_batch.GroupDecoder.decode
def dying_decode(self, group, pooling):
    decodes[0] += 1
    if commits[0] == 1 and decodes[0] == 2:  # mid-chunk: the second chunk's rows are half computed
        os.kill(os.getpid(), signal.SIGKILL)
    return decode(self, group, pooling)
Store.write_embeddings = counted_write
gguf_batch.GroupDecoder.decode = dying_decode
extract(Store(sys.argv[1]), "toy", "gguf:" + sys.argv[2], chunk_rows=8, progress=False, threads=1,
        max_length=64, batch_tokens=64)
"""


@pytest.mark.slow
def test_kill_9_mid_chunk_then_rerun_gives_exactly_one_row_per_key(store, tmp_path, llama):
    from embedstore.schema import embeddings_table

    _, _, q8 = llama
    texts = _prompts(40)
    write_dataset(store, "toy", tmp_path / "img", range(40), texts=texts)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, store.uri, str(q8)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ext = load_extractor(f"gguf:{q8}", max_length=64, batching="prefix", batch_tokens=64)
    table = embeddings_table(ext.identity.key, "text", 64)
    assert store.read(table).num_rows == 8  # the first chunk was committed, the second was lost with the process
    rerun = extract(store, "toy", f"gguf:{q8}", extractor=ext, chunk_rows=8, progress=False, threads=1)
    assert rerun.computed == 32 and rerun.model_key == ext.identity.key  # the default mode, its key
    keys = store.read(table, columns=["sample_id"])["sample_id"].to_pylist()
    assert len(keys) == len(set(keys)) == 40
    ids, got = store.embeddings("toy", ext.identity.key, "text", as_="numpy")
    by_id = {f"s{i}": t for i, t in enumerate(texts)}
    ref = load_extractor(f"gguf:{q8}", max_length=64, batching="single").encode_texts([by_id[i] for i in ids])
    assert min_cosine(ref, got) >= TOLERANCE  # every stored vector is its own text's
