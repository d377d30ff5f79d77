"""The CLI's flag hints (``cli/common.py``): library messages speak API terms, the CLI names its own flags.

Each test drives a real command through click's CliRunner on a real store and
checks the one ``Error:`` line, one test per kind of token the library writes.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from embedstore.cli.common import flag_hints
from embedstore.cli.main import cli
from embedstore.errors import EmbedstoreError
from embedstore.trainers.synthetic_vectors import write_synthetic
from tests.helpers import toy_model


@pytest.fixture
def synth(store):
    return store, write_synthetic(store, "toy", n=60, image_dim=6, text_dim=5, seed=1)


def _error(uri, *args) -> str:
    res = CliRunner().invoke(cli, ["--store", str(uri), *args], catch_exceptions=False)
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0][len("Error: "):]


def _library_message(call, *args, **kwargs) -> str:
    with pytest.raises(EmbedstoreError) as err:
        call(*args, **kwargs)
    return str(err.value)


def test_a_bare_parameter_becomes_its_flag(synth):
    store, info = synth
    from embedstore.trainers.train import train

    api = _library_message(train, store, "toy", image_model=info["image_model"], fusion="early")
    assert api == "early fusion needs text_model= (a model id or model_key)"
    assert _error(store.uri, "train", "toy", "--image-model", info["image_model"], "--fusion", "early") == \
        "early fusion needs --text-model (a model id or model_key)"


def test_a_parameter_with_a_value_becomes_the_flag_and_its_value(synth):
    store, info = synth
    assert _error(store.uri, "train", "toy", "--image-model", info["image_model"], "--fusion", "image",
                  "--mode", "paper", "--cv", "2") == \
        "--cv is honest-mode cross-validation: use --mode honest (paper mode has one split)"


def test_a_true_flag_becomes_the_bare_flag(store, tmp_path):
    from embedstore.ingest import ingest

    api = _library_message(ingest, store, "ham10000", tmp_path, prune=True, keep_missing=True)
    assert "prune=True removes" in api and "keep_missing=True keeps" in api
    assert _error(store.uri, "ingest", "ham10000", "--root", str(tmp_path), "--prune", "--keep-missing") == \
        ("ingest: --prune removes stored samples absent from the source and --keep-missing keeps them; "
         "pass one of the two")


def test_an_api_name_the_cli_spells_differently_maps_to_its_option(synth, tmp_path):
    store, _ = synth
    afile = tmp_path / "afile"
    afile.write_text("")
    assert _error(afile, "runs") == f"store path {afile} is a file: pass a directory as --store"
    assert _error(store.uri, "cleanup", "--older-than", "-1") == \
        "cleanup: --older-than must be a number of days >= 0, got -1.0"
    vec = tmp_path / "q.txt"
    vec.write_text("1 0 0 0 0 0")
    assert _error(store.uri, "neighbors", "toy", "--model", "synthetic:image-6", "--modality", "image",
                  "--sample", "s0", "--vector-file", str(vec)).endswith(
        "give exactly one of a vector (--vector-file) or a sample id (--sample)")


def test_an_api_call_becomes_the_command_line_with_its_flags(synth):
    store, _ = synth
    store.models.register(toy_model(6))  # a model with no vectors yet
    from embedstore.trainers.train import train

    api = _library_message(train, store, "toy", image_model="hf:toy", fusion="image", epochs=1)
    assert api.endswith("run embedstore.extract(store, 'toy', model_id='hf:toy') first"), api
    msg = _error(store.uri, "train", "toy", "--image-model", "hf:toy", "--fusion", "image", "--epochs", "1")
    assert msg.endswith("run 'embedstore extract toy --model hf:toy' first"), msg


def test_tokens_that_are_not_options_of_the_command_stay(synth):
    store, info = synth
    res = CliRunner().invoke(cli, ["--store", store.uri, "train", "toy", "--image-model", info["image_model"],
                                   "--fusion", "image", "--epochs", "1", "--split", "grouped", "--no-save-heads",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    run_id = res.output.split("runs: ")[1].split()[0]
    msg = _error(store.uri, "predict", "toy", "--run", run_id)
    # save_heads=True is not a flag of 'predict': the token stays as written
    assert "re-train it with save_heads=True ('embedstore train --save-heads'; by default a single split" in msg, msg


def test_false_names_the_negative_flag_and_plain_words_stay():
    @click.command()
    @click.option("--no-save-heads", is_flag=True)
    @click.option("--progress/--no-progress", default=True)
    def train(no_save_heads, progress):
        pass

    ctx = click.Context(train)
    assert flag_hints("pass save_heads=False and progress=False; keep allow_http=true", ctx) == \
        "pass --no-save-heads and --no-progress; keep allow_http=true"
    assert flag_hints("set progress=True.", ctx) == "set --progress."
