"""The training loop of one seed: epochs, evaluation, epoch selection, timing.

:func:`fit_seed` trains one head on a :class:`~embedstore.trainers.loader.Source` under a
:class:`~embedstore.trainers.protocol.Protocol`:

* **paper**: the test split is evaluated after every epoch; the final
  metrics are those of the best-accuracy epoch (strict ``>``, first maximum
  wins) and the best-F1 epoch is reported next to it (protocol §3.3).
* **honest**: the validation split is evaluated after every epoch; the best
  validation macro-F1 epoch is kept and training stops after ``patience``
  epochs without improvement. The source is then marked ``selected`` and the
  test split is read and evaluated exactly once.

Timing follows protocol §3.4: train time is the wall clock of the whole
train loop of an epoch (data loading included), inference time the wall
clock of the evaluation pass including metric computation; both are averaged
over epochs. Everything is deterministic for a given seed (model init from
``torch.manual_seed(seed)``, shuffles from a generator seeded with ``seed``).
"""

from __future__ import annotations

import copy
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from embedstore.cpu import torch_threads  # noqa: F401 (its one home; cv, seed_runs and benchmarks import it here)

from .loader import Source
from .metrics import classification_metrics, data_mib, predictions
from .models import BLOCK_ORDER, build_model, count_params, model_mib
from .protocol import Protocol, TaskLoss, alignment_loss


@dataclass(frozen=True)
class HeadSpec:
    """What to train: the head and its loss settings (one seed's config)."""

    fusion: str
    output_size: int
    hidden: tuple[int, ...] | None = None
    hidden_image: tuple[int, ...] | None = None
    block_order: tuple[str, ...] = BLOCK_ORDER
    align_loss_weight: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"fusion": self.fusion, "output_size": self.output_size,
                "hidden": None if self.hidden is None else list(self.hidden),
                "hidden_image": None if self.hidden_image is None else list(self.hidden_image),
                "block_order": list(self.block_order), "align_loss_weight": self.align_loss_weight}


@dataclass
class SeedOutcome:
    """Raw outcome of :func:`fit_seed` (wrapped into a ``RunResult`` by ``embedstore.trainers.train``)."""

    seed: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    selection: dict[str, Any]
    cost: dict[str, Any]
    loss: dict[str, Any]
    model: torch.nn.Module = field(repr=False, default=None)
    spec: HeadSpec | None = None  # the head as refitted, when selection chose its shape (honest mode)


def _forward(model, xi, xt, want_branches: bool):
    if want_branches:
        return model(xi, xt, return_branches=True)
    return model(xi, xt), None, None


def predict(model: torch.nn.Module, source: Source, split: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of ``split`` in eval mode (one pass, no shuffle)."""
    model.eval()
    outs, ys = [], []
    with torch.inference_mode():
        for xi, xt, y in source.batches(split, batch_size, None):
            outs.append(model(xi, xt))
            ys.append(y)
    return torch.cat(outs).numpy(), torch.cat(ys).numpy()


def _train_epoch(model, source, proto: Protocol, loss_fn, opt, gen, align_w: float) -> float:
    model.train()
    total, count = 0.0, 0
    has_bn = any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    for xi, xt, y in source.batches("train", proto.batch_size, gen):
        if has_bn and len(y) < 2:  # BatchNorm cannot train on a single row
            continue
        logits, h_t, h_i = _forward(model, xi, xt, align_w > 0)
        loss = loss_fn(logits, y)
        if align_w > 0:
            loss = loss + align_w * alignment_loss(h_t, h_i)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
    return total / max(count, 1)


def _dropped_batch(n_train: int, batch_size: int, model) -> str | None:
    """The note for a one-row final train batch, which BatchNorm cannot train on (skipped every epoch)."""
    if n_train % batch_size != 1 or not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()):
        return None
    return (f"{n_train} train rows with batch {batch_size}: the final one-row batch is skipped every epoch "
            "(BatchNorm cannot train on one row; the authors' code would stop with an error there)")


def _brief(m: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "roc_auc_ovr": m["roc_auc_ovr"]}


def fit_seed(source: Source, spec: HeadSpec, proto: Protocol, seed: int, *,
             progress: bool = False, desc: str = "") -> SeedOutcome:
    """Train and evaluate one seed; see the module docstring."""
    n_classes = max(len(source.classes), 2)
    torch.manual_seed(seed)
    model = build_model(spec.fusion, image_dim=source.image_dim, text_dim=source.text_dim,
                        output_size=spec.output_size, hidden=spec.hidden, dropout=proto.dropout,
                        block_order=spec.block_order, hidden_image=spec.hidden_image)
    align_w = float(spec.align_loss_weight or 0.0)
    if align_w and spec.fusion != "late":
        from embedstore.errors import InputError

        raise InputError("align_loss_weight acts on the late-fusion branch outputs: use fusion='late'")
    y_train = source.labels("train")
    loss_fn = TaskLoss(proto.mode, spec.output_size, y_train, n_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=proto.lr, weight_decay=proto.weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    eval_split = proto.select_on
    rules = proto.rules
    key = rules.select_metric  # what selects the epoch
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}
    best_f1: dict[str, Any] = {}
    state = None
    bar = None
    if progress:
        from embedstore.progress import progress as progress_bar

        bar = progress_bar(total=proto.epochs, desc=desc or f"seed {seed}", unit="epoch")
    for epoch in range(1, proto.epochs + 1):
        t0 = time.perf_counter()
        train_loss = _train_epoch(model, source, proto, loss_fn, opt, gen, align_w)
        t1 = time.perf_counter()
        logits, y = predict(model, source, eval_split, proto.batch_size)
        m = classification_metrics(y, logits, n_classes)
        t2 = time.perf_counter()
        history.append({"epoch": epoch, "train_loss": train_loss, "train_s": t1 - t0, "infer_s": t2 - t1,
                        "split": eval_split, **_brief(m)})
        if not best or m[key] > best["metrics"][key]:
            best = {"epoch": epoch, "metrics": m}
            if rules.tests_once:
                state = copy.deepcopy(model.state_dict())
        if not best_f1 or m["macro_f1"] > best_f1["metrics"]["macro_f1"]:
            best_f1 = {"epoch": epoch, "metrics": m}
        if bar is not None:
            bar.update(1)
            bar.set_postfix({f"{eval_split}_f1": f"{m['macro_f1']:.3f}", "loss": f"{train_loss:.3f}"})
        if proto.patience is not None and rules.early_stopping and epoch - best["epoch"] >= proto.patience:
            break
    if bar is not None:
        bar.close()
    selection: dict[str, Any] = {"selected_on": eval_split, "selected_epoch": best["epoch"],
                                 "epochs_run": len(history)}
    test_s = None
    if not rules.tests_once:  # the paper's code: the best-on-test epoch is the result
        metrics = best["metrics"]
        selection["best_accuracy"] = {"epoch": best["epoch"], "accuracy": metrics["accuracy"],
                                      "macro_f1": metrics["macro_f1"]}
        selection["best_f1"] = {"epoch": best_f1["epoch"], "accuracy": best_f1["metrics"]["accuracy"],
                                "macro_f1": best_f1["metrics"]["macro_f1"]}
        selection["last"] = _brief(m)
    else:
        model.load_state_dict(state)
        source.mark("selected")
        selection["val"] = _brief(best["metrics"])
        selection["stopped_early"] = len(history) < proto.epochs
        t0 = time.perf_counter()
        logits, y = predict(model, source, "test", proto.batch_size)
        metrics = classification_metrics(y, logits, n_classes)
        test_s = time.perf_counter() - t0
    cost = cost_summary(count_params(model), source, spec.fusion, spec.output_size, proto, history, test_s,
                        model_mib(model))
    if rules.tests_once:
        metrics["test_y"], metrics["test_pred"] = y.tolist(), predictions(logits).tolist()
        metrics["test_logits"] = np.asarray(logits, dtype=np.float64).tolist()  # predict reproduces these
    dropped = _dropped_batch(len(y_train), proto.batch_size, model)
    if dropped:
        selection["dropped_final_batch"] = dropped
    return SeedOutcome(int(seed), metrics, history, selection, cost, loss_fn.describe(), model)


def cost_summary(params: int, source: Source, fusion: str, output_size: int, proto: Protocol,
                 history: Sequence[dict[str, Any]], test_s: float | None, mib: float | None = None) -> dict[str, Any]:
    """Parameters, memory (protocol §3.4), mean train/inference seconds per epoch and row counts of one run."""
    dims = {"image": source.image_dim or 0, "text": source.text_dim or 0}
    used = dims.get(fusion, dims["image"] + dims["text"])
    n = {s: len(source.labels(s)) for s in proto.splits if source.has_split(s)}  # a refit has no val part
    mem = data_mib(n["train"], n.get("test", 0), used, output_size, proto.batch_size)
    if "val" in n:
        mem["val"] = n["val"] * (used + output_size) * 4 / 2**20
    return {
        "params": int(params),
        "model_mib": params * 4 / 2**20 if mib is None else mib,
        "data_mib": mem,
        "train_s_per_epoch": float(np.mean([h["train_s"] for h in history])),
        "infer_s_per_epoch": float(np.mean([h["infer_s"] for h in history])),
        "test_s": test_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": n,
    }
