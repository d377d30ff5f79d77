"""Apply stored heads to new samples: :func:`predict` (``embedstore predict``).

A training run keeps its head in the ``heads`` table (:mod:`embedstore.heads`;
on by default for a single split, ``save_heads=False`` switches it off;
cross-validation folds and sweeps keep theirs only with ``save_heads=True``). :func:`predict`

1. loads the run's head (or, with ``ensemble=True``, the heads of every
   seed/fold of its group: mean probability);
2. embeds what is missing with the head's **exact** input models (the
   identities recorded by key; content-hash reuse means photos already
   embedded anywhere in the store cost no forward pass);
3. reads the current (unaligned) vectors through
   :class:`embedstore.snapshot.Snapshot`, applies the run's stored
   train-fitted alignment (:mod:`embedstore.trainers.head_inputs`), scaling and head;
4. writes ``predictions__<dataset>`` in **one** keyed upsert (one commit:
   a killed predict leaves the previous version; identical re-runs write
   nothing, so no new version).

The head's forward needs torch, so this module lives in ``trainers``
(``embedstore`` never imports ``trainers``); ``embedstore.trainers.predict.predict`` is
the API behind the CLI command.

Probabilities follow the decision rule of training
(:func:`embedstore.trainers.metrics.predictions`): one output → sigmoid, classes
``[1-p, p]``, label ``p > 0.5``; several → softmax, argmax.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedstore.errors import InputError, NotFoundError
from embedstore.heads import HeadArtifact, head_id_of, heads_of_run, save_head
from embedstore.sql import eq

from .metrics import probabilities  # the one sigmoid/softmax rule (re-exported here)
from .head_inputs import align_vectors, alignment_of, check_inputs, head_extras, input_dims

PREDICTIONS_PREFIX = "predictions__"
DECISION_RULE = {"1": "sigmoid; label = classes[1] when p > 0.5", "k": "softmax; label = argmax"}


def predictions_table(dataset: str) -> str:
    """``predictions__<dataset>``."""
    return f"{PREDICTIONS_PREFIX}{dataset}"


# -- saving ------------------------------------------------------------------
def head_artifact(out, source, spec, proto, config: dict[str, Any], *, run_id: str, group_id: str,
                  dataset: str) -> HeadArtifact:
    """The artifact of one trained seed: weights, fitted scaling and everything predict needs."""
    tensors: dict[str, np.ndarray] = {}
    if spec.fusion == "linear":
        clf = out.model
        tensors["coef"] = clf.coef_.astype(np.float64)
        tensors["intercept"] = clf.intercept_.astype(np.float64)
    else:
        tensors.update({f"model.{k}": v.detach().cpu().numpy() for k, v in out.model.state_dict().items()})
    scalers = getattr(source, "scalers", {})
    methods = {}
    for m in getattr(source, "tables", {}) or {}:
        s = scalers.get(m)
        methods[m] = s.method if s is not None else "none"
        if s is not None and s.method == "standard":
            tensors[f"scale.{m}.mean"], tensors[f"scale.{m}.scale"] = s.mean_, s.scale_
    cv = config.get("cv") or {}
    index, held = getattr(source, "index", None), getattr(source, "test_sample_ids", None)
    if held is not None:  # honest heads: the test part of their split or fold
        test_ids = held()
    else:
        test_ids = [str(v) for v in index("test").sample_ids] if index is not None and source.has_split("test") \
            and ("labels", "test") in source.events else []
    n_out = int(spec.output_size)
    return HeadArtifact(
        head_id=head_id_of(run_id), run_id=run_id, group_id=group_id, dataset=dataset, seed=int(out.seed),
        fold=None if not cv else f"r{cv.get('repeat', 0)}f{cv.get('fold')}",
        spec={"head": spec.to_dict(), "dropout": proto.dropout, "image_dim": source.image_dim,
              "text_dim": source.text_dim, "model_keys": dict(source.model_keys),
              "alignment_keys": dict(config.get("alignment_keys", {})), "tables": dict(config.get("tables", {})),
              "table_versions": dict(getattr(source, "versions", {}) or {}), "scaling": methods,
              "classes": list(source.classes), "label_column": config.get("label_column", "label"),
              "decision_rule": DECISION_RULE["1" if n_out == 1 else "k"],
              "test_sample_ids": test_ids}, tensors=tensors)


def keep_head(store, out, source, spec, proto, config, run_id, group_id, dataset) -> None:
    """Save one seed's head as ``config["save_heads"]`` says (called by ``embedstore.trainers.train``).

    ``True``: kept; ``False``: not; ``None`` (the default): kept for a single split, not for a
    cross-validation fold (as scikit-learn's ``cross_validate`` keeps fold estimators only when asked).
    """
    keep = config.get("save_heads", True)
    if keep is None:
        keep = not config.get("cv")
    if keep and getattr(source, "model_keys", None):
        art = head_artifact(out, source, spec, proto, config, run_id=run_id, group_id=group_id, dataset=dataset)
        from embedstore.schema import samples_table

        extra, tensors = head_extras(store, dataset, art.spec["model_keys"], art.spec["alignment_keys"],
                                     art.spec["table_versions"].get(samples_table(dataset)))
        art.spec.update(extra)
        art.tensors.update(tensors)
        save_head(store, art)


# -- applying ----------------------------------------------------------------
class LoadedHead:
    """A stored head, ready to map raw (unaligned, unscaled) embeddings to class probabilities.

    ``store`` is needed only for heads saved before the alignment was kept
    in the head (their alignment is read from the store's registry).
    """

    def __init__(self, art: HeadArtifact, store=None) -> None:
        self.art, self.spec, self.store = art, art.spec, store
        self.alignment, self.align_tensors = alignment_of(store, art.spec, art.tensors)
        self.input_dims = input_dims(store, art.spec)
        self.fusion = self.spec["head"]["fusion"]
        self.classes = list(self.spec["classes"])
        self.model = None
        if self.fusion != "linear":
            import torch

            from .models import build_model

            h = self.spec["head"]
            self.model = build_model(self.fusion, image_dim=self.spec["image_dim"], text_dim=self.spec["text_dim"],
                                     output_size=int(h["output_size"]), hidden=h["hidden"],
                                     dropout=float(self.spec["dropout"]), block_order=h["block_order"],
                                     hidden_image=h["hidden_image"])
            state = {k[6:]: torch.from_numpy(np.array(v)) for k, v in art.tensors.items() if k.startswith("model.")}
            self.model.load_state_dict(state)
            self.model.eval()

    def scale(self, modality: str, x: np.ndarray) -> np.ndarray:
        """The train-fitted scaling of ``modality`` applied to raw vectors ``x``."""
        method = self.spec["scaling"].get(modality, "none")
        x = np.asarray(x, dtype=np.float32)
        if method == "l2":
            norm = np.linalg.norm(x, axis=1, keepdims=True)
            return x / np.where(norm > 0, norm, 1.0).astype(np.float32)
        if method == "standard":
            t = self.art.tensors
            return ((x - t[f"scale.{modality}.mean"]) / t[f"scale.{modality}.scale"]).astype(np.float32)
        return x

    def logits(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of raw vectors ``{modality: (n, d)}`` (aligned and scaled here, as in training)."""
        raw = {m: v for m, v in vectors.items() if m in self.spec["model_keys"]}
        aligned = align_vectors(self.store, self.alignment, self.align_tensors, raw)
        xs = {m: self.scale(m, v) for m, v in aligned.items()}
        if self.fusion == "linear":
            x = np.concatenate([xs[m] for m in ("text", "image") if m in xs], axis=1).astype(np.float64)
            return x @ self.art.tensors["coef"].T + self.art.tensors["intercept"]
        import torch

        with torch.inference_mode():
            xi, xt = (torch.from_numpy(xs[m]) if m in xs else None for m in ("image", "text"))
            return self.model(xi, xt).numpy()

    def proba(self, vectors: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` (see the module docstring for the rule)."""
        return probabilities(self.logits(vectors))


@dataclass
class PredictResult:
    """What :func:`predict` did: the predictions, where they were written, forwards made."""

    dataset: str
    run_id: str
    head_ids: list[str]
    classes: list[str]
    sample_ids: list[str]
    labels: list[str]
    proba: np.ndarray = field(repr=False)
    table: str = ""
    version: int | None = None
    written: int = 0
    forward_calls: int = 0
    skipped: dict[str, Any] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (what ``embedstore predict --json`` prints)."""
        counts = {c: self.labels.count(c) for c in self.classes}
        return {"dataset": self.dataset, "run_id": self.run_id, "head_ids": self.head_ids, "table": self.table,
                "version": self.version, "rows": len(self.sample_ids), "written": self.written,
                "forward_calls": self.forward_calls, "predicted_counts": counts, "skipped": self.skipped,
                "input_versions": self.input_versions}

    def to_arrow(self):
        """One row per sample: ``sample_id, predicted_label, probabilities, classes, run_id, head_id, input_versions``."""
        import pyarrow as pa

        n = len(self.sample_ids)
        head = self.head_ids[0] if len(self.head_ids) == 1 else "ensemble:" + ",".join(self.head_ids)
        return pa.table({
            "prediction_id": [f"{head}|{s}" for s in self.sample_ids], "sample_id": self.sample_ids,
            "predicted_label": self.labels,
            "probabilities": pa.array([list(map(float, r)) for r in self.proba], pa.list_(pa.float64())),
            "classes": pa.array([self.classes] * n, pa.list_(pa.string())), "run_id": [self.run_id] * n,
            "head_id": [head] * n, "input_versions": [json.dumps(self.input_versions, sort_keys=True)] * n})


def _embed_missing(store, dataset: str, spec: dict[str, Any], progress: bool) -> int:
    """Extract the head's inputs for samples that lack them; returns the forward calls made."""
    from embedstore.extract import extract
    from embedstore.snapshot import Snapshot

    calls = 0
    for m, key in spec["model_keys"].items():
        try:
            _, _, sel = Snapshot(store, dataset, **{f"{m}_model": key}).current()
            missing = sel.skipped
        except NotFoundError:
            missing = -1
        if missing:
            ident = store.model(key, m)
            extractor = _exact_extractor(store, dataset, ident, m)
            rep = extract(store, dataset, ident.model_id, modality=m, progress=progress, extractor=extractor)
            calls += rep.forward_calls
    return calls


def _exact_extractor(store, dataset: str, ident, modality: str):
    """The extractor of the head's exact ``modality`` model; a one-line error when it cannot be had here."""
    from embedstore.errors import EmbedstoreError
    from embedstore.extractors import load_extractor
    from embedstore.schema import parse_embeddings_table

    quantize = ident.dtype if ident.dtype in ("bf16", "8bit") else None
    try:
        ext = load_extractor(ident.model_id, quantize=quantize, pooling=ident.pooling)
        why = None if ext.identity.key == ident.key else f"loading it here gives model_key {ext.identity.key}"
    except (EmbedstoreError, OSError, ValueError, ImportError) as exc:
        ext, why = None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if why is None:
        return ext
    others = sorted({store.model(p[1], modality).model_id for t in store.embedding_tables(modality=modality)
                     if (p := parse_embeddings_table(t)) and p[1] != ident.key
                     and store.open_table(t).count_rows(eq("dataset", dataset))})
    where = f"dataset '{dataset}' is embedded by {', '.join(others)}, not" if others else f"dataset '{dataset}' lacks"
    raise InputError(f"{where} the head's {modality} model {ident.model_id} ({ident.key}), which cannot be "
                     f"run here ({why}): extract '{dataset}' with that exact model, or train a head on "
                     f"{', '.join(others) or 'the models it has'}")


def predict(store, dataset: str, run_id: str, *, ensemble: bool = False, out: str | None = None,
            write: bool = True, progress: bool = False) -> PredictResult:
    """Predict every sample of ``dataset`` with the head(s) stored for ``run_id``.

    Parameters
    ----------
    store : embedstore.Store
    dataset : str
        Any ingested dataset (labels not needed).
    run_id : str
        A run trained with heads kept (the default), or a group id (the
        ensemble of the group's runs, as ``ensemble=True``).
    ensemble : bool
        Average the probabilities of every seed/fold of the run's group.
    out : str, optional
        Also write the predictions to ``.csv`` or ``.parquet``.
    write : bool
        Write the ``predictions__<dataset>`` table.
    progress : bool

    Returns
    -------
    PredictResult

    Examples
    --------
    >>> res = predict(store, "clinic2", "run-...")  # doctest: +SKIP
    >>> res.labels[:3], res.proba.sum(axis=1)[:3]  # doctest: +SKIP
    """
    from embedstore.snapshot import Snapshot

    from embedstore.runs import what_id

    store.require_dataset(dataset)
    kind, recs = what_id(store, run_id)
    if kind == "group":  # a group stands for the ensemble of its runs
        run_id, ensemble = recs[0].run_id, True
    arts = heads_of_run(store, run_id, group=ensemble)
    heads = [LoadedHead(a, store) for a in arts]
    spec = heads[0].spec
    if any(h.spec["model_keys"] != spec["model_keys"] for h in heads):
        raise InputError(f"the heads of run '{run_id}' read different models: predict with ensemble=False")
    check_inputs(store, dataset, spec, run_id)
    calls = _embed_missing(store, dataset, spec, progress)
    snap = Snapshot(store, dataset, **{f"{m}_model": k for m, k in spec["model_keys"].items()})
    rows, vectors, sel = snap.current()
    if rows.num_rows == 0:
        raise NotFoundError(f"dataset '{dataset}' has no sample with current {sorted(spec['model_keys'])} vectors "
                            f"of the run's models: run 'embedstore extract {dataset}' with them")
    proba = np.mean([h.proba(vectors) for h in heads], axis=0)
    classes = heads[0].classes
    labels = [classes[i] for i in proba.argmax(axis=1)]
    res = PredictResult(dataset, run_id, [a.head_id for a in arts], classes, rows["sample_id"].to_pylist(), labels,
                        proba, forward_calls=calls, skipped=sel.report() if sel.skipped else {},
                        input_versions=dict(snap.versions))
    if write:
        res.table = predictions_table(dataset)
        wr = store.upsert(res.table, res.to_arrow(), key="prediction_id", skip_unchanged=True)
        res.version, res.written = wr.version, wr.inserted + wr.updated
    if out:
        _write_out(res, out)
    return res


def _write_out(res: PredictResult, out: str) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    tbl = res.to_arrow()
    if out.endswith(".parquet"):
        pq.write_table(tbl, out)
    elif out.endswith(".csv"):
        import pyarrow as pa

        flat = tbl.drop(["probabilities", "classes"])
        for j, c in enumerate(res.classes):
            flat = flat.append_column(f"p_{c}", pa.array(res.proba[:, j]))
        pcsv.write_csv(flat, out)
    else:
        raise InputError(f"out={out}: use a .csv or .parquet file name")
