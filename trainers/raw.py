"""Raw-data fusion baseline: BERT + ViT backbones under the same heads (protocol §4).

The paper's raw baseline feeds raw images and texts through two backbones
and a fusion head (backbones: :mod:`embedstore.trainers.raw_models`):

* text: a BERT-family encoder (``hf:bert-base-uncased``), ``max_length`` 50
  (padding and truncation), the CLS vector of ``last_hidden_state``, then
  Dropout(0.2);
* image: a ViT (``hf:google/vit-base-patch16-224-in21k``), ``pooler_output``,
  after a squash resize to the model's input size and ImageNet normalisation
  (as the paper did; ``image_norm="model"`` uses the checkpoint's mean/std),
  then Dropout(0.2);
* the head, losses, protocols, metrics and run records are exactly those of
  the embedding trainers (:mod:`embedstore.trainers.train`); runs are recorded with
  ``kind="raw"``, and their cost adds the backbones' memory and the raw
  input memory (:func:`~embedstore.trainers.raw_models.raw_data_mib`).

Backbone modes:

* ``frozen`` (the paper's code): the backbones run without gradients on every
  batch of every epoch, so the per-epoch cost is the paper's cost. In paper
  mode they stay in train mode while training, as in the paper's code
  (BERT's internal dropout is active).
* ``frozen`` with ``cache_features=True``: the backbone features are computed
  once (eval mode, no feature dropout) and the head is trained on them with
  :func:`embedstore.trainers.train.train_arrays`. **This is exactly the embedding
  method** (extract once, train a small head on the vectors): the features are
  embeddings that were simply not stored.
* ``finetune`` (what the paper's text claims): backbones and head are trained
  together (AdamW, the protocol's lr and weight decay), paper mode only.

Images and texts come from the dataset's samples table (``image_ref`` and
``text``, written by ``embedstore ingest``) at a pinned version. An image
that cannot be read is skipped (its row is dropped from the batch) and
reported in the run's loader description.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from embedstore.errors import InputError, missing_dataset
from embedstore.modes import mode_rules
from embedstore.prefetch import prefetch
from embedstore.runs import get_run, record_run
from embedstore.schema import samples_table

from .loader import Source, encode_labels, epoch_order, label_codes
from .raw_models import (BACKBONE_MODES, DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, FEATURE_DROPOUT, MAX_LENGTH,
                         Backbones, load_backbones, raw_data_mib)
from .options import HeadOptions, grouped
from .seed_runs import TrainResult, check_splits, protocol_from, run_seeds, seeds_from
from .train import train_arrays


class RawSource(Source):
    """Batches of backbone features computed from raw images and texts, per step.

    A :class:`~embedstore.trainers.loader.Source` for :func:`embedstore.trainers.fit_loop.fit_seed`:
    every batch decodes its images (in a background thread), tokenises its
    texts, runs both backbones and yields ``(image feature, text feature, y)``.
    Batches requested with gradients enabled are training batches (feature
    dropout; backbones in train mode in paper mode or when fine-tuning);
    batches requested under ``torch.inference_mode`` are evaluation batches.

    With ``backbone="finetune"`` the features keep their graph: the consumer
    back-propagates each training batch before asking for the next one (as
    the engine does), and the source then steps its own AdamW over the
    backbone parameters.
    """

    path = "raw"

    def __init__(self, store, dataset: str, backbones: Backbones, *, backbone: str = "frozen",
                 split_by: str | None = None, version: int | str | None = None,
                 setup_splits: Sequence[str] = ("train",), label_column: str = "label",
                 train_mode: bool = False, bf16: bool = False, feature_dropout: float = FEATURE_DROPOUT,
                 max_batches: int | None = None, lr: float = 1e-3, weight_decay: float = 0.01,
                 prefetch: int = 2, keep_initial: bool = True, progress: bool = False) -> None:
        super().__init__()
        if backbone not in BACKBONE_MODES:
            raise InputError(f"unknown backbone mode {backbone!r}: use frozen or finetune")
        if max_batches is not None and int(max_batches) < 1:
            raise InputError(f"max_batches={max_batches}: use a positive number of batches")
        table = samples_table(dataset)
        if not store.has_table(table):
            raise missing_dataset(store, dataset)
        self.dataset, self.backbones, self.backbone = dataset, backbones, backbone
        self.split_column = store.split_column(dataset, split_by)
        self.label_column = label_column
        self.versions = {table: int(store.open_table(table, version).version)}
        cols = ["sample_id", "text", "image_ref", label_column, self.split_column]
        data = store.read(table, version=self.versions[table], columns=cols)
        self._ids = np.asarray(data["sample_id"].to_pylist(), dtype=object)
        self._texts = ["" if t is None else str(t) for t in data["text"].to_pylist()]
        self._refs = data["image_ref"].to_pylist()
        labels = np.asarray(data[label_column].to_pylist(), dtype=object).astype(str)
        split = np.asarray(data[self.split_column].to_pylist(), dtype=object).astype(str)
        self._rows = {s: np.flatnonzero(split == s) for s in np.unique(split)}
        setup = [s for s in setup_splits if s in self._rows]
        self.classes = encode_labels(np.concatenate([labels[self._rows[s]] for s in setup]) if setup else [])
        known = np.isin(labels, self.classes)
        self._y = np.full(len(labels), -1, dtype=np.int64)
        self._y[known] = label_codes(labels[known], self.classes, f"dataset '{dataset}'")
        self.image_dim, self.text_dim = backbones.image_dim, backbones.text_dim
        self.train_mode, self.bf16, self.p = bool(train_mode), bool(bf16), float(feature_dropout)
        self.max_batches = None if max_batches is None else int(max_batches)
        self.prefetch = max(1, int(prefetch))
        self.progress = bool(progress)
        self.skipped: dict[str, str] = {}
        self._opt = None
        self._initial = None
        self._seeded = False
        finetune = backbone == "finetune"
        backbones.set_trainable(finetune)
        if finetune:
            params = [p for m in backbones.modules() for p in m.parameters()]
            self._opt_args = dict(lr=lr, weight_decay=weight_decay)
            self._opt = torch.optim.AdamW(params, **self._opt_args)
            if keep_initial:  # to restart every seed from the same weights (costs one copy of them)
                self._initial = [copy.deepcopy(m.state_dict()) for m in backbones.modules()]

    # -- Source interface ------------------------------------------------
    def has_split(self, split: str) -> bool:
        return split in self._rows and len(self._rows[split]) > 0

    def labels(self, split: str) -> np.ndarray:
        y = self._y[self._rows[split]]
        if (y < 0).any():
            bad = sorted(set(np.asarray(self._ids[self._rows[split]][y < 0][:3]).tolist()))
            raise InputError(f"dataset '{self.dataset}' split '{split}': samples {bad} have labels absent from "
                             f"the training classes {self.classes}; fix the split so every class occurs in train")
        return y

    def mark(self, name: str) -> None:
        super().mark(name)
        if name.startswith("seed ") and self._initial is not None:
            if self._seeded:  # each seed fine-tunes from the same starting weights
                for m, state in zip(self.backbones.modules(), self._initial):
                    m.load_state_dict(state)
                self._opt = torch.optim.AdamW([p for m in self.backbones.modules() for p in m.parameters()],
                                              **self._opt_args)
            self._seeded = True

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator:
        self.events.append(("iter", split))
        rows = self._rows[split]
        order = rows[epoch_order(len(rows), generator)]
        chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
        if self.max_batches is not None:
            chunks = chunks[:self.max_batches]
        return self._run(chunks, split)

    def describe(self) -> dict[str, Any]:
        return {"loader": self.path, "split_column": self.split_column, "backbone": self.backbone,
                "bf16": self.bf16, "max_batches": self.max_batches, "feature_dropout": self.p,
                "backbone_train_mode": self.train_mode, "skipped_images": dict(list(self.skipped.items())[:20]),
                "skipped_count": len(self.skipped), **self.backbones.info}

    # -- batches -----------------------------------------------------------
    def prepare(self, rows: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Decode, resize and normalise the images of ``rows`` and tokenise their texts."""
        from embedstore.images import load_image

        images, keep = [], []
        for r in rows:
            try:
                images.append(load_image(self._refs[r]))
                keep.append(r)
            except (InputError, OSError) as exc:
                self.skipped[str(self._ids[r])] = str(exc)
        keep = np.asarray(keep, dtype=np.int64)
        return (self.backbones.preprocess(images), self.backbones.tokenize([self._texts[r] for r in keep]),
                torch.from_numpy(self._y[keep]))

    def _prepared(self, chunks: list[np.ndarray]) -> Iterator:
        """``prepare`` each chunk in a background thread, ``prefetch`` chunks ahead."""
        return prefetch((self.prepare(rows) for rows in chunks), self.prefetch, name="embedstore-raw-decode")

    def _run(self, chunks: list[np.ndarray], split: str) -> Iterator:
        finetune = self._opt is not None
        batches = self._prepared(chunks)
        if self.progress:
            from embedstore.progress import progress as progress_bar

            batches = progress_bar(batches, total=len(chunks), desc=f"raw {split} batches", unit="batch")
        for pixels, tokens, y in batches:
            if len(y) == 0:
                continue
            training = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
            self.backbones.train(training and (finetune or self.train_mode))
            cast = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
            with torch.set_grad_enabled(training and finetune), cast:
                fi, ft = self.backbones.features(pixels, tokens)
            fi, ft = fi.float(), ft.float()
            if training and self.p > 0:
                fi, ft = F.dropout(fi, self.p, True), F.dropout(ft, self.p, True)
            yield fi, ft, y
            if training and finetune:  # the consumer has back-propagated this batch
                self._opt.step()
                self._opt.zero_grad(set_to_none=True)

    def features(self, split: str, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Eval-mode features and labels of every row of ``split`` (the cache of ``cache_features``)."""
        xi, xt, ys = [], [], []
        with torch.inference_mode():
            for fi, ft, y in self.batches(split, batch_size, None):
                xi.append(fi.numpy())
                xt.append(ft.numpy())
                ys.append(y.numpy())
        if not ys:
            raise InputError(f"dataset '{self.dataset}' split '{split}': no readable sample")
        return np.concatenate(xi), np.concatenate(xt), np.concatenate(ys)


def train_raw(store, dataset: str, *, text_model: str = DEFAULT_TEXT_MODEL, image_model: str = DEFAULT_IMAGE_MODEL,
              fusion: str = "early", backbone: str = "frozen", cache_features: bool = False, mode: str = "honest",
              split_by: str | None = None, epochs: int | None = None, seeds: int | Sequence[int] = 1,
              hidden: Sequence[int] | None = None, dropout: float | None = None, batch_size: int = 64,
              lr: float | None = None, bf16: bool = False, max_batches: int | None = None,
              max_length: int = MAX_LENGTH, image_norm: str = "imagenet", version: int | str | None = None,
              backbones: Backbones | None = None, record: bool = True, progress: bool = False,
              seed: int = 0, weight_decay: float | None = None, patience: int | None = None,
              label_column: str = "label", group_id: str | None = None, feature_dropout: float = FEATURE_DROPOUT,
              output_size: int | None = None, hidden_image: Sequence[int] | None = None,
              block_order: Sequence[str] | None = None, head: HeadOptions | None = None) -> TrainResult:
    """Train the raw-data baseline (BERT + ViT + fusion head) on a dataset's samples.

    Parameters
    ----------
    store : embedstore.Store
    dataset : str
        A dataset ingested with ``embedstore ingest`` (its samples table holds
        ``image_ref`` and ``text``).
    text_model, image_model : str
        ``hf:ORG/NAME`` or a saved transformers model directory (offline, a
        missing hub model fails at once). Ignored when ``backbones`` is given.
    fusion : {"early", "late"}
    backbone : {"frozen", "finetune"}
        ``frozen`` is the paper's code; ``finetune`` is what its text claims
        (paper mode only: honest epoch selection would need backbone snapshots).
    cache_features : bool
        Frozen only: compute the features once and train the head on them,
        which is exactly the embedding method.
    mode, split_by, epochs, seeds, seed, hidden, dropout, batch_size, lr, weight_decay, patience :
        As in :func:`embedstore.trainers.train.train` (``dropout`` is the head's).
    output_size, hidden_image, block_order, head, label_column, group_id :
        As in :func:`embedstore.trainers.train.train`.
    feature_dropout : float
        Dropout on the backbone features (the paper's 0.2).
    bf16 : bool
        Run the backbones under ``torch.autocast("cpu", bfloat16)``.
    max_batches : int, optional
        At most this many batches per pass over a split (smoke tests, timing).
    max_length : int
        Text truncation/padding length (50, the paper's).
    image_norm : {"imagenet", "model"}
    version : int or str, optional
        Samples-table version or tag to read (latest by default).
    backbones : Backbones, optional
        Already loaded backbones (e.g. :func:`~embedstore.trainers.raw_models.random_backbones`).
    record : bool
        Write each seed to the ``runs`` table with ``kind="raw"``.

    Returns
    -------
    TrainResult
        Each run's ``cost`` adds ``backbone_params``, ``model_mib_total`` (all
        parameters, as the paper counted) and ``raw_data_mib``.

    Examples
    --------
    >>> res = train_raw(store, "ham10000", fusion="early", mode="paper", cache_features=True)  # doctest: +SKIP
    >>> res.runs[0].cost["model_mib_total"]  # doctest: +SKIP
    """
    if fusion not in ("early", "late"):
        raise InputError(f"raw baseline fusion {fusion!r}: use early or late (it needs both modalities)")
    if backbone not in BACKBONE_MODES:
        raise InputError(f"unknown backbone mode {backbone!r}: use frozen or finetune")
    if cache_features and backbone != "frozen":
        raise InputError("cache_features=True needs frozen backbones: fine-tuned features change every step")
    rules = mode_rules(mode)
    if backbone == "finetune" and rules.tests_once:
        raise InputError("backbone='finetune' runs in mode='paper' only: honest-mode epoch selection would "
                         "need a snapshot of the backbones at every epoch")
    head = grouped(HeadOptions, head, hidden=hidden, hidden_image=hidden_image, output_size=output_size,
                   block_order=block_order)
    proto = protocol_from(fusion, mode, epochs, dropout, batch_size, lr, weight_decay, patience)
    store.require_dataset(dataset)  # before loading models: a misspelled dataset is named as such
    bb = backbones or load_backbones(text_model, image_model, max_length=max_length, image_norm=image_norm)
    split_by = split_by if split_by is not None else rules.default_split
    seed_list = seeds_from(seeds, int(seed))
    source = RawSource(store, dataset, bb, backbone=backbone, split_by=split_by, version=version,
                       setup_splits=proto.setup_splits(),
                       label_column=label_column, train_mode=not rules.tests_once, bf16=bf16,
                       feature_dropout=feature_dropout, max_batches=max_batches,
                       lr=proto.lr, weight_decay=proto.weight_decay,
                       keep_initial=backbone == "finetune" and len(seed_list) > 1, progress=progress)
    check_splits(source, proto, f"dataset '{dataset}' split column {source.split_column}")
    raw_cfg = {"backbone": backbone, "cache_features": cache_features, "bf16": bf16, "max_batches": max_batches,
               "samples_version": source.versions, **bb.info}
    if cache_features:
        result = _train_cached(source, proto, fusion, head, seed_list, group_id, store, dataset, record,
                               progress, raw_cfg)
    else:
        spec = head.spec(fusion, len(source.classes))
        config = {"protocol": proto.to_dict(), "head": spec.to_dict(), "split_column": source.split_column,
                  "label_column": source.label_column, "classes": source.classes, "loader": source.path,
                  "raw": raw_cfg}
        result = run_seeds(source, spec, proto, seed_list, dataset=dataset, config=config, store=store,
                            record=record, progress=progress, group_id=group_id)
    result.source = source
    _add_raw_cost(result, source, proto.batch_size)
    if record:
        for run in result.runs:
            _mark_raw(store, run, source)
    return result


def _train_cached(source: RawSource, proto, fusion: str, head: HeadOptions, seeds: list[int], group_id, store,
                  dataset: str, record: bool, progress: bool, raw_cfg: dict[str, Any]):
    parts = {s: source.features(s, proto.batch_size) for s in proto.splits}
    xi = np.concatenate([p[0] for p in parts.values()])
    xt = np.concatenate([p[1] for p in parts.values()])
    y = np.asarray(source.classes, dtype=object)[np.concatenate([p[2] for p in parts.values()])]
    split = np.concatenate([[s] * len(p[2]) for s, p in parts.items()])
    result = train_arrays(xi, xt, y, split, fusion=fusion, mode=proto.mode, epochs=proto.epochs, seeds=seeds,
                          head=head, dropout=proto.dropout, batch_size=proto.batch_size, lr=proto.lr,
                          weight_decay=proto.weight_decay, patience=proto.patience, classes=source.classes,
                          store=store, dataset=dataset, record=record, progress=progress, group_id=group_id,
                          provenance={"raw": raw_cfg, "split_column": source.split_column})
    for run in result.runs:
        run.table_versions = dict(source.versions)
    return result


def _add_raw_cost(result: TrainResult, source: RawSource, batch_size: int) -> None:
    backbone_params = sum(p.numel() for m in source.backbones.modules() for p in m.parameters())
    pixels = int(source.backbones.preprocess.size)
    label_width = int(result.config["head"]["output_size"])
    for run in result.runs:
        rows = run.cost.get("rows", {})
        head_params = int(run.cost["params"])
        run.cost.update({
            "backbone_params": int(backbone_params),
            "model_mib_total": (backbone_params + head_params) * 4 / 2**20,
            "raw_data_mib": raw_data_mib(rows.get("train", 0), rows.get("test", 0), image_size=pixels,
                                         label_width=label_width, max_length=source.backbones.max_length,
                                         batch_size=batch_size),
            "skipped_images": len(source.skipped)})


def _mark_raw(store, run, source: RawSource) -> None:
    """Re-record a seed as ``kind="raw"`` with the samples-table version and the raw cost."""
    if not run.run_id:
        return
    rec = get_run(store, run.run_id)
    rec.kind = "raw"
    rec.table_versions = dict(source.versions)
    rec.loader = source.path
    rec.split = rec.split or source.split_column
    rec.metrics = {**rec.metrics, "cost": run.cost, "loader": source.describe()}
    record_run(store, rec)
