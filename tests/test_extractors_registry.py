"""The scheme registry: every id form is a registered scheme, and a new one plugs in end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from embedstore.errors import InputError
from embedstore.extract import extract
from embedstore.extractors import canonical_id, load_extractor, lookup, register, resolve
from embedstore.extractors.registry import bare_scheme, scheme_names, unregister
from tests.charcount import CharCounts, CharCountScheme, expected_counts, registered_charcount
from tests.conftest import REPO
from tests.helpers import sample_rows


@pytest.fixture
def charcount():
    with registered_charcount() as scheme:
        yield scheme


def test_a_registered_scheme_is_used_by_extract_end_to_end(store, charcount):
    texts = ["a lesion on the back", "Benign nevus", "melanoma, left arm", "zzz"]
    store.write_samples("toy", sample_rows([f"s{i}" for i in range(4)], texts=texts))
    assert canonical_id("charcount:8") == "charcount:8" and resolve("charcount:8").scheme == "charcount"
    rep = extract(store, "toy", "charcount:8", modality="text", batch_size=3, chunk_rows=2, progress=False, threads=1)
    r = rep.result("text")
    assert (r.computed, r.reused, r.forward_calls, r.skipped) == (4, 0, 2, [])
    assert rep.model_id == "charcount:8" and rep.backend == "torch fp32"
    ids, mat = store.embeddings("toy", rep.model_key, "text", as_="numpy")
    by_id = dict(zip([f"s{i}" for i in range(4)], texts))
    np.testing.assert_array_equal(mat, expected_counts([by_id[s] for s in ids], 8))
    assert rep.model_key in {m.key for m in store.models()}
    again = extract(store, "toy", "charcount:8", modality="text", progress=False)
    assert (again.computed, again.forward_calls, again.model_key) == (0, 0, rep.model_key)


def test_a_registered_scheme_gets_the_backend_choice(charcount):
    ext = load_extractor("charcount:4", quantize="bf16", backend="torch")
    assert isinstance(ext, CharCounts) and (ext.backend, ext.dtype) == ("torch", "bf16")
    assert ext.identity.key != load_extractor("charcount:4").identity.key  # dtype is keyed
    np.testing.assert_array_equal(load_extractor("charcount:4").encode_texts(["abcd"]), [[1, 1, 1, 1]])


def test_unregistered_is_gone_and_errors_name_the_schemes(charcount):
    unregister("charcount")
    with pytest.raises(InputError, match="unknown model id 'charcount:8'"):
        canonical_id("charcount:8")
    with pytest.raises(InputError, match="unknown model id scheme 'nope': use one of .*builtin.*gguf"):
        lookup("nope")
    with pytest.raises(InputError, match="contain no ':'"):
        register("a:b")(CharCountScheme)


def test_every_shipped_form_is_a_registered_scheme():
    assert {"hf", "hf-clip", "open_clip", "builtin", "gguf", "local"} <= set(scheme_names())
    assert lookup("gguf").runtime == "llama.cpp" and lookup("hf").runtime is None
    # ids without a prefix: a .gguf path, then an existing path, then ORG/NAME
    assert bare_scheme("x.gguf").name == "gguf"
    assert bare_scheme(str(REPO)).name == "local"
    assert bare_scheme("org/name").name == "hf"
    assert bare_scheme("not an id") is None


def test_registration_imports_no_heavy_library():
    code = ("import sys, embedstore.extractors, embedstore.extract\n"
            "print(sorted(m for m in ('torch', 'transformers', 'open_clip', 'llama_cpp', 'onnxruntime', 'ray')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
