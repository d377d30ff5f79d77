"""Raw-data baseline: paper model memory, `embedstore train-raw` on real HAM10000 images, backbone modes."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from embedstore import InputError, Store
from embedstore.runs import list_runs
from embedstore.trainers.models import build_model, model_mib
from embedstore.trainers.raw import train_raw
from embedstore.trainers.raw_models import load_backbones, paper_model_mib, raw_data_mib
from tests.conftest import REPO
from tests.tiny_models import make_tiny_bert, make_tiny_vit

PAPER_TABLE2 = {("dinov2+llama", "early"): 2.38, ("dinov2+llama", "late"): 1.19,
                ("clip", "early"): 0.50, ("clip", "late"): 0.25,
                ("raw", "early"): 747.94, ("raw", "late"): 747.57}


def _efficiency_module():
    spec = importlib.util.spec_from_file_location("efficiency_bench", REPO / "benchmarks" / "efficiency.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_model_mib_column_equals_paper_table2():
    # the library functions, from the real classes (BERT-base + ViT-base from configs, our heads)
    assert round(model_mib(build_model("early", image_dim=768, text_dim=4096, output_size=1)), 2) == 2.38
    assert round(model_mib(build_model("late", image_dim=512, text_dim=512, output_size=1)), 2) == 0.25
    assert round(paper_model_mib("early"), 2) == 747.94
    assert round(paper_model_mib("late"), 2) == 747.57
    # and the benchmark's column, which is computed the same way
    column = _efficiency_module().model_mib_column(output_size=1)
    assert {k: round(v, 2) for k, v in column.items()} == PAPER_TABLE2


@pytest.mark.parametrize("n_train,n_test,width,train,test_paper", [
    (13012, 3254, 1, 7471.78, 467.13), (8012, 2003, 7, 4600.85, 292.12), (936, 312, 2, 537.48, 59.72)])
def test_raw_data_memory_reproduces_the_paper_and_corrects_it(n_train, n_test, width, train, test_paper):
    mem = raw_data_mib(n_train, n_test, label_width=width)
    assert (round(mem["train_paper"], 2), round(mem["test_paper"], 2)) == (train, test_paper)
    # corrected: every test row's image, labels and int64 ids + mask (the paper divided by the train batch count)
    assert mem["test"] == pytest.approx(n_test * (3 * 224 * 224 * 4 + 4 * width + 2 * 50 * 8) / 2**20)
    assert mem["test"] > 2.5 * mem["test_paper"]
    assert mem["train"] - mem["train_paper"] == pytest.approx(n_train * 800 / 2**20)  # int64 ids + masks, 50 each


@pytest.fixture(scope="module")
def ham(tmp_path_factory, request):
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "ham10000-dev270").is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent; set EMBEDSTORE_SHARED_DATA to run this test")
    from embedstore.ingest import ingest

    root = tmp_path_factory.mktemp("raw")
    store = Store(root / "store")
    ingest(store, "ham10000", SHARED_DATA / "ham10000-dev270", progress=False)
    return store, make_tiny_bert(root / "bert"), make_tiny_vit(root / "vit"), root


def test_cli_train_raw_on_real_images_records_a_raw_run(ham):
    from embedstore.cli.main import cli

    store, bert, vit, root = ham
    args = ["--store", store.uri, "train-raw", "ham10000", "--text-model", bert, "--image-model", vit,
            "--fusion", "late", "--mode", "paper", "--epochs", "2", "--max-batches", "2", "--batch-size", "8",
            "--no-progress", "--json"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)[0]
    (rec,) = [r for r in list_runs(store, "ham10000") if r.run_id == payload["run_ids"][0]]
    assert rec.kind == "raw" and rec.fusion == "late" and rec.mode == "paper" and rec.loader == "raw"
    assert rec.table_versions == {"samples__ham10000": store.version("samples__ham10000")}
    assert [h["epoch"] for h in rec.history] == [1, 2]
    assert rec.config["raw"]["backbone"] == "frozen" and rec.config["raw"]["max_length"] == 50
    cost = rec.metrics["cost"]
    assert cost["backbone_params"] > 0 and cost["model_mib_total"] > cost["model_mib"]
    assert cost["train_s_per_epoch"] > 0 and 0.0 <= rec.metrics["accuracy"] <= 1.0
    assert rec.metrics["loader"]["image_pooling"] == "cls"  # the tiny ViT has no trained pooler
    text = CliRunner().invoke(cli, ["--store", store.uri, "runs", "ham10000", "--each"])
    assert rec.run_id in text.output


def _weights(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


def test_frozen_keeps_backbones_and_finetune_trains_them(ham):
    store, bert, vit, _ = ham
    bb = load_backbones(bert, vit)
    before = (_weights(bb.text), _weights(bb.image))
    train_raw(store, "ham10000", backbones=bb, fusion="early", mode="paper", epochs=1, max_batches=2,
              batch_size=8, record=False)
    assert torch.equal(_weights(bb.text), before[0]) and torch.equal(_weights(bb.image), before[1])
    res = train_raw(store, "ham10000", backbones=bb, backbone="finetune", fusion="early", mode="paper",
                    epochs=1, max_batches=2, batch_size=8, record=False)
    assert not torch.equal(_weights(bb.text), before[0]) and not torch.equal(_weights(bb.image), before[1])
    head = build_model("early", image_dim=32, text_dim=32, output_size=7)
    assert res.runs[0].cost["params"] == sum(p.numel() for p in head.parameters())
    with pytest.raises(InputError, match="mode='paper' only"):
        train_raw(store, "ham10000", backbones=bb, backbone="finetune", mode="honest", record=False)
    with pytest.raises(InputError, match="frozen"):
        train_raw(store, "ham10000", backbones=bb, backbone="finetune", mode="paper", cache_features=True)


def test_cached_features_are_exactly_the_embedding_method(ham):
    from embedstore.trainers.train import train_arrays

    store, bert, vit, _ = ham
    bb = load_backbones(bert, vit)
    res = train_raw(store, "ham10000", backbones=bb, cache_features=True, fusion="late", mode="honest",
                    epochs=3, batch_size=16, max_batches=3, record=False)
    src = res.source
    parts = {s: src.features(s, 16) for s in ("train", "val", "test")}
    xi = np.concatenate([p[0] for p in parts.values()])
    xt = np.concatenate([p[1] for p in parts.values()])
    y = np.asarray(src.classes, dtype=object)[np.concatenate([p[2] for p in parts.values()])]
    split = np.concatenate([[s] * len(p[2]) for s, p in parts.items()])
    ref = train_arrays(xi, xt, y, split, fusion="late", mode="honest", epochs=3, batch_size=16, classes=src.classes)
    assert res.runs[0].metrics["macro_f1"] == ref.runs[0].metrics["macro_f1"]
    assert res.runs[0].metrics["confusion"] == ref.runs[0].metrics["confusion"]
    assert res.runs[0].cost["rows"]["train"] == int((split != "test").sum())  # the refit: train and val rows


def test_unreadable_image_is_skipped_and_reported(ham):
    store, bert, vit, root = ham
    rows = store.samples("ham10000", split="train", split_by="paper")
    first = rows["sample_id"][0].as_py()
    refs = rows["image_ref"].to_pylist()
    refs[0] = str(root / "gone.jpg")
    import pyarrow as pa

    bad = rows.set_column(rows.schema.get_field_index("image_ref"), "image_ref", pa.array(refs))
    store.write_samples("hambad", bad.slice(0, 40))
    test_rows = store.samples("ham10000", split="test", split_by="paper").slice(0, 10)
    store.write_samples("hambad", test_rows)
    res = train_raw(store, "hambad", text_model=bert, image_model=vit, mode="paper", epochs=1, batch_size=64,
                    record=False)
    src = res.source
    assert first in src.skipped and "gone.jpg" in src.skipped[first]
    assert res.runs[0].cost["skipped_images"] == 1


def test_cli_train_raw_fails_fast_with_one_line_when_weights_are_missing(tmp_path):
    from embedstore.cli.main import cli

    from embedstore import Store
    from embedstore.pairs import toy_pairs

    toy_pairs(Store(tmp_path / "s"), "ham10000", n=12)  # the dataset exists: the missing weights are the error
    out = CliRunner().invoke(cli, ["--store", str(tmp_path / "s"), "train-raw", "ham10000",
                                   "--text-model", "hf:nobody/missing-bert", "--image-model", "hf:nobody/missing-vit"])
    assert out.exit_code == 1
    assert "hf:nobody/missing-bert" in out.output and "not available locally" in out.output
    assert len(out.output.strip().splitlines()) == 1
