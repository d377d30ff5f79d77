"""Model identity: embedstore's own code version is part of ``model_key``; release-0.1 keys stay valid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedstore import ModelIdentity
from embedstore.extractors import base as extractor_base
from embedstore.extractors import load_extractor
from embedstore.extractors.hf import HFTextEncoder
from tests.helpers import sample_rows
from tests.tiny_models import make_tiny_bert


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> str:
    return f"local:{make_tiny_bert(tmp_path_factory.mktemp('bert'))}"


def test_release_0_1_keys_and_registry_rows_are_unchanged():
    # Keys computed by release 0.1 (before code_version existed) for the same identities.
    assert ModelIdentity("hf:x", "abc", ("text",), {"text": 4}).key == "e5bf72c0d379c584"
    assert ModelIdentity("hf:toy", "weights-sha", ("image",), {"image": 4}, pooling="cls").key == "da6f385e6cec53fc"
    old_row = json.dumps({"model_id": "hf:x", "weights": "abc", "modalities": ["text"], "dims": {"text": 4},
                          "preprocessing": {}, "pooling": "", "dtype": "fp32", "truncation": None,
                          "library_versions": {}})  # a registry row written by release 0.1
    ident = ModelIdentity.from_json(old_row)
    assert ident.code_version == 0 and ident.key == "e5bf72c0d379c584"


def test_a_code_version_bump_changes_the_key_and_forces_a_re_extract(store, bert, monkeypatch):
    ext = load_extractor(bert)
    assert ext.identity.code_version == 0
    store.write_samples("d", sample_rows(["a", "b"]))
    rows = store.samples("d")
    store.write_embeddings("d", ext.identity, "text", ["a", "b"], np.ones((2, ext.identity.dim("text")), np.float32),
                           rows["text_sha256"].to_pylist())
    assert store.missing("d", ext.identity, "text").num_rows == 0

    monkeypatch.setattr(HFTextEncoder, "code_version", 1)  # a fix to this class's pooling
    pooled = load_extractor(bert).identity
    monkeypatch.setattr(HFTextEncoder, "code_version", 0)
    assert pooled.key != ext.identity.key and pooled.code_version == 1
    assert pooled.keyed_fields()["code_version"] == 1 and "code_version" not in ext.identity.keyed_fields()
    assert store.missing("d", pooled, "text").num_rows == 2  # old vectors are not served under the new code

    # the shared image code's version: text-only encoders never read images and keep their keys
    monkeypatch.setattr(extractor_base, "SHARED_CODE_VERSION", extractor_base.SHARED_CODE_VERSION + 1)
    assert load_extractor(bert).identity.key == ext.identity.key


def test_the_shared_image_code_version_keys_every_image_model(tmp_path, monkeypatch):
    from tests.tiny_models import make_tiny_vit

    vit = make_tiny_vit(tmp_path / "vit")
    now = load_extractor(vit).identity
    # 1 = EXIF orientation applied before embedding: vectors of release 0.1 keys are not served again
    assert extractor_base.SHARED_CODE_VERSION >= 1 and now.code_version == extractor_base.SHARED_CODE_VERSION
    monkeypatch.setattr(extractor_base, "SHARED_CODE_VERSION", 0)
    assert load_extractor(vit).identity.key != now.key
