"""Paper presets: heads and parameter counts of protocol §8, sweep settings of §5.3, warnings, notes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from embedstore import Store
from embedstore.datasets.prompts import TEMPLATES
from embedstore.trainers.models import build_model, count_params
from embedstore.trainers.presets import embedding_family, paper_head, sweep_preset
from embedstore.trainers.synthetic_vectors import write_synthetic
from embedstore.trainers.train import train, train_arrays


@pytest.mark.parametrize("kind, early, late", [("brset", 623_105, 311_809), ("ham10000", 623_879, 312_583),
                                               ("satellitebench", 623_234, 311_938)])
def test_paper_heads_have_the_protocol_parameter_counts(kind, early, late):
    out = paper_head(kind)["output_size"]
    dims = {"image_dim": 768, "text_dim": 4096, "output_size": out}
    assert count_params(build_model("early", **dims)) == early
    assert count_params(build_model("late", **dims)) == late


def test_paper_mode_on_satellitebench_trains_two_logits_and_warns_on_a_non_paper_prompt(tmp_path):
    store = Store(tmp_path / "store")
    info = write_synthetic(store, "sat", n=120, image_dim=6, text_dim=5, signal=1.0, seed=1)
    rows = store.read("samples__sat")
    template = TEMPLATES["satellitebench"]["default"]
    rows = rows.set_column(rows.schema.get_field_index("prompt_template"), "prompt_template",
                           pa.array([template] * rows.num_rows))
    rows = rows.set_column(rows.schema.get_field_index("prompt_name"), "prompt_name",
                           pa.array(["default"] * rows.num_rows))
    store.write_samples("sat", rows)
    with pytest.warns(UserWarning, match="prompt 'default'"):
        res = train(store, "sat", image_model=info["image_model"], text_model=info["text_model"], mode="paper",
                    epochs=2, record=False)
    preset = res.config["paper_preset"]
    assert preset["kind"] == "satellitebench" and preset["applied"] == {"output_size": 2}
    assert any("rgb" in w for w in preset["warnings"])
    assert res.config["head"]["output_size"] == 2
    assert res.runs[0].cost["params"] == (6 + 5) * 128 + 128 + 256 + 129 * 2


def test_sweep_presets_follow_protocol_5_3():
    assert embedding_family("hf:facebook/dinov2-base", "hf:meta-llama/Llama-2-7b-chat-hf") == "dinov2+llama"
    assert sweep_preset("brset", "dinov2+llama") == {"epochs": 50, "lr": 3e-4, "batch_size": 64,
                                                     "inferred": ["epochs", "lr"], "source": "protocol §5.3"}
    assert sweep_preset("satellitebench", "clip")["lr"] == 1e-3
    assert sweep_preset(None, None)["inferred"] == ["epochs", "lr"]


def test_a_one_row_final_batch_is_noted_in_the_run():
    rng = np.random.default_rng(0)
    n_train = 65
    y = np.array(["a", "b"] * 50)
    split = np.array(["train"] * n_train + ["test"] * (100 - n_train))
    res = train_arrays(rng.standard_normal((100, 3)), None, y, split, fusion="image", mode="paper", epochs=1)
    assert "65 train rows with batch 64" in res.runs[0].selection["dropped_final_batch"]
    ok = train_arrays(rng.standard_normal((100, 3)), None, y, np.array(["train"] * 64 + ["test"] * 36),
                      fusion="image", mode="paper", epochs=1)
    assert "dropped_final_batch" not in ok.runs[0].selection


def test_satellite_paper255_divides_by_255_and_saturates(tmp_path):
    import tifffile

    from embedstore.images import load_image

    arr = np.zeros((8, 8, 4), dtype=np.uint16)
    arr[..., 1] = 100
    arr[..., 2] = 1000
    path = tmp_path / "x.tiff"
    tifffile.imwrite(path, arr)
    img = np.asarray(load_image(f"{path}#bands=1,2,3&div=255"))
    assert img[0, 0].tolist() == [100, 255, 0]
    by_max = np.asarray(load_image(f"{path}#bands=1,2,3"))
    assert by_max[0, 0].tolist() == [25, 255, 0]                 # the per-image maximum (truncated)
