"""Model id forms, offline fail-fast with an actionable message, weights fingerprints, the known-id registry."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from embedstore.errors import InputError, ModelNotAvailableError
from embedstore.extractors import canonical_id, list_known, load_extractor, resolve
from tests.conftest import REPO
from tests.tiny_models import make_tiny_bert, make_tiny_open_clip


def _assert_actionable(message: str, model_id: str) -> None:
    assert f"'{model_id}'" in message
    assert "download it once" in message and "network" in message  # fix 1
    assert "local path" in message  # fix 2
    assert "\n" not in message


def test_missing_hub_id_fails_offline_with_both_fixes():
    with pytest.raises(ModelNotAvailableError) as err:
        load_extractor("hf:facebook/dinov2-base")
    _assert_actionable(str(err.value), "hf:facebook/dinov2-base")
    with pytest.raises(ModelNotAvailableError) as err:
        load_extractor("open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    _assert_actionable(str(err.value), "open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    with pytest.raises(ModelNotAvailableError):
        load_extractor("open_clip:ViT-B-32/openai")


def _cli(args, env_extra, tmp_path, timeout=60):
    """Run the CLI; ``timeout`` only guards against a hang (a hub retry loop), it is not a measurement."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(env_extra)
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    return subprocess.run([sys.executable, "-c", "from embedstore.cli.main import main; main()", *args], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"},
                                 {"HF_ENDPOINT": "http://127.0.0.1:9"}],  # no offline flag, hub unreachable
                         ids=["HF_HUB_OFFLINE", "no-network"])
def test_cli_missing_model_fails_with_one_actionable_line(env, store, tmp_path):
    from tests.helpers import sample_rows

    store.write_samples("toy", sample_rows(["a", "b"]))
    out = _cli(["--store", store.uri, "extract", "toy", "--model", "hf:meta-llama/Llama-2-7b-chat-hf"],
               env, tmp_path)
    assert out.returncode == 1, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: model 'hf:meta-llama/Llama-2-7b-chat-hf' is not available locally")
    _assert_actionable(line, "hf:meta-llama/Llama-2-7b-chat-hf")


def test_id_forms(tmp_path):
    bert = make_tiny_bert(tmp_path / "bert")
    oc = make_tiny_open_clip(tmp_path / "oc")
    assert canonical_id("facebook/dinov2-base") == "hf:facebook/dinov2-base"
    assert canonical_id("hf-clip:openai/clip-vit-base-patch32") == "hf-clip:openai/clip-vit-base-patch32"
    assert canonical_id(bert) == canonical_id("hf:" + bert) == canonical_id("local:" + bert) == f"hf:{bert}"
    rel = os.path.relpath(bert)
    assert canonical_id(rel) == f"hf:{bert}"
    assert canonical_id(oc) == canonical_id("open_clip:" + oc) == f"open_clip:local-dir:{oc}"
    assert canonical_id("open_clip:ViT-B-32/openai") == "open_clip:ViT-B-32/openai"
    r = resolve(bert)
    assert r.scheme == "hf" and r.weights.startswith("sha256:") and str(r.path) == bert


@pytest.mark.parametrize("bad, match", [
    ("", "empty model id"),
    ("not a model", "unknown model id"),
    ("builtin:resnet9000", "unknown builtin model"),
    ("/definitely/not/here", "does not exist"),
    ("open_clip:hf-hub:", "empty repo"),
    ("open_clip:NoSuchArch/openai", "unknown open_clip architecture"),
])
def test_bad_ids_name_the_accepted_forms(bad, match):
    with pytest.raises(InputError, match=match):
        load_extractor(bad)


def test_single_weights_file_needs_an_architecture(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match="give its architecture"):
        load_extractor(str(f))


def test_known_ids_cover_the_paper_models():
    known = {m.model_id: m for m in list_known()}
    assert known["hf:facebook/dinov2-base"].dims == {"image": 768}
    assert known["hf:meta-llama/Llama-2-7b-chat-hf"].pooling == "last_token"
    assert known["hf:meta-llama/Llama-2-7b-chat-hf"].quantize == "8bit"
    assert known["hf-clip:openai/clip-vit-base-patch32"].dims == {"image": 512, "text": 512}
    assert {"builtin:minilm-l6", "builtin:efficientnet-lite0"} <= set(known)


def test_builtin_identities_without_loading():
    text = load_extractor("builtin:minilm-l6")
    image = load_extractor("builtin:efficientnet-lite0")
    assert text.identity.dims == {"text": 384} and text.identity.truncation == 256
    assert text.identity.preprocessing["normalize"] is True and text.identity.pooling == "mean"
    assert image.identity.dims == {"image": 1280}
    assert text.forward_calls == image.forward_calls == 0 and not text._loaded and not image._loaded
