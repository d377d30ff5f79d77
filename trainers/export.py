"""Export a stored head to ONNX for deployment (``embedstore export-head``).

The exported graph takes the **raw** embeddings (``image_embedding`` /
``text_embedding``, float32, as the input models produce them) and returns
``probabilities`` (``(n, n_classes)``): the run's train-fitted alignment
(gap shift λ, see :mod:`embedstore.trainers.head_inputs`) and scaling are folded into
the graph, so a clinic needs only onnxruntime and the input
models. A JSON sidecar next to it names the input model ids and keys, the
labels and the decision rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.errors import InputError
from embedstore.heads import heads_of_run

from .head_inputs import export_buffers, torch_align
from .predict import LoadedHead


def _module(head: LoadedHead):
    import torch
    from torch import nn

    def const(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(head.art.tensors[name], dtype=np.float32))

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.modalities = [m for m in ("image", "text") if m in head.spec["model_keys"]]
            self.methods = {m: head.spec["scaling"].get(m, "none") for m in self.modalities}
            self.align = {m: head.alignment.get(m) for m in self.modalities}
            self.align_names: dict[str, list[str]] = {}
            for m, consts in export_buffers(head.alignment, head.align_tensors, head.input_dims).items():
                for name, value in consts.items():
                    self.register_buffer(f"{m}_align_{name}", torch.from_numpy(value))
                self.align_names[m] = list(consts)
            for m in self.modalities:
                if self.methods[m] == "standard":
                    self.register_buffer(f"{m}_mean", const(f"scale.{m}.mean"))
                    self.register_buffer(f"{m}_scale", const(f"scale.{m}.scale"))
            self.binary = len(head.classes) <= 2 and int(head.spec["head"]["output_size"]) == 1
            if head.fusion == "linear":
                coef = const("coef")
                self.binary = coef.shape[0] == 1
                self.linear = nn.Linear(coef.shape[1], coef.shape[0])
                self.linear.weight.data, self.linear.bias.data = coef, const("intercept")
            else:
                self.head = head.model

        def scale(self, m: str, x):
            if self.methods[m] == "standard":
                return (x - getattr(self, f"{m}_mean")) / getattr(self, f"{m}_scale")
            if self.methods[m] == "l2":
                norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
                return x / torch.where(norm > 0, norm, torch.ones_like(norm))
            return x

        def aligned(self, m: str, x):
            bufs = {n: getattr(self, f"{m}_align_{n}") for n in self.align_names.get(m, [])}
            return torch_align(x, m, self.align[m], bufs)

        def forward(self, *inputs):
            xs = {m: self.scale(m, self.aligned(m, x)) for m, x in zip(self.modalities, inputs)}
            if head.fusion == "linear":
                z = self.linear(torch.cat([xs[m] for m in ("text", "image") if m in xs], dim=1))
            else:
                z = self.head(xs.get("image"), xs.get("text"))
            if self.binary:
                p = torch.sigmoid(z)
                return torch.cat([1 - p, p], dim=1)
            return torch.softmax(z, dim=1)

    return Exported().eval()


def export_head(store, run_id: str, out: str | Path, *, format: str = "onnx") -> dict[str, Any]:
    """Write run ``run_id``'s head as ONNX at ``out`` and a sidecar ``<out>.json``; returns the sidecar.

    Examples
    --------
    >>> side = export_head(store, "run-...", "head.onnx")  # doctest: +SKIP
    >>> side["inputs"], side["classes"]  # doctest: +SKIP
    """
    import torch

    if format != "onnx":
        raise InputError(f"format='{format}': only onnx is supported")
    art = heads_of_run(store, run_id)[0]
    head = LoadedHead(art, store)
    module = _module(head)
    names = [f"{m}_embedding" for m in module.modalities]
    dims = head.input_dims
    example = tuple(torch.zeros(2, int(dims[m])) for m in module.modalities)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, example, str(out), input_names=names, output_names=["probabilities"],
                      dynamic_axes={**{n: {0: "batch"} for n in names}, "probabilities": {0: "batch"}},
                      opset_version=17, dynamo=False)
    models = {m: store.model(k, m) for m, k in head.spec["model_keys"].items()}
    side = {"run_id": run_id, "head_id": art.head_id, "format": "onnx", "inputs": names,
            "input_dims": {f"{m}_embedding": int(dims[m]) for m in module.modalities},
            "input_models": {m: {"model_id": i.model_id, "model_key": i.key} for m, i in models.items()},
            "scaling": head.spec["scaling"], "scaling_folded_in": True,
            "alignment": {m: {k: a[k] for k in ("alignment_key", "method", "lam", "match", "dim")}
                          for m, a in head.alignment.items()}, "alignment_folded_in": True, "classes": head.classes,
            "decision_rule": "label = classes[argmax(probabilities)]", "output": "probabilities",
            "fusion": head.fusion}
    Path(str(out) + ".json").write_text(json.dumps(side, indent=2))
    return side
