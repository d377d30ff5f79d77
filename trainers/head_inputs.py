"""What a stored head needs from its inputs: the run's alignment, and the checks before predicting.

A head trained on aligned vectors (``--alignment-key``: a gap shift λ, or a
mapped method of :mod:`embedstore.transforms`, fitted on the training rows)
must see new samples through the **same** train-fitted transform.
:func:`head_extras` records it in the head at save time: the method, λ,
width matching and target width in the spec (``spec["alignment"]``), the
gap vector as the tensor ``align.<modality>.gap``. :func:`align_vectors`
applies it to raw vectors (NumPy, what ``predict`` does) and
:func:`torch_align` is the same arithmetic in torch, which
``export-head`` folds into the ONNX graph (its inputs stay the raw
embeddings). Heads saved before this record read the alignment from the
store's registry instead.

The gap shift of one modality is independent of the other
(:class:`embedstore.alignment.GapShift`): L2-normalise, resample to the
aligned width when ``match="interp"``, add ``∓(λ/2)·gap`` (image ``-``,
text ``+``), L2-normalise. Mapped methods (centre, whiten, CCA...) apply
their pickled transformer from the ``transforms`` table to both modalities.

:func:`check_inputs` refuses, in one line naming the fix, a dataset the
head cannot read: a modality the head needs that the dataset lacks, or a
text prompt using metadata fields the head never saw in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstore.errors import InputError
from embedstore.keys import NO_ALIGNMENT


# -- saving --------------------------------------------------------------
def alignment_record(store, alignment_keys: dict[str, str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(spec["alignment"], tensors)`` of the alignments a head read (empty when unaligned)."""
    spec: dict[str, Any] = {}
    tensors: dict[str, np.ndarray] = {}
    for m, key in alignment_keys.items():
        if key == NO_ALIGNMENT:
            continue
        rec = store.alignment(key)
        s = rec.settings
        spec[m] = {"alignment_key": key, "method": rec.method, "lam": float(s.get("lam", 0.0)),
                   "match": s.get("match"), "dim": int(s["dim"]), "noise_std": float(s.get("noise_std", 0.0))}
        tensors[f"align.{m}.gap"] = np.asarray(rec.gap, dtype=np.float64)
    return spec, tensors


def head_extras(store, dataset: str, model_keys: dict[str, str], alignment_keys: dict[str, str],
                samples_version: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Spec entries and tensors :func:`embedstore.trainers.predict.keep_head` adds: alignment, raw input dims, prompt."""
    align, tensors = alignment_record(store, alignment_keys)
    dims = {m: store.model(k, m).dim(m) for m, k in model_keys.items()}
    extra: dict[str, Any] = {"alignment": align, "input_dims": dims}
    if "text" in model_keys:
        rows = store.samples(dataset, version=samples_version, columns=["prompt_name", "prompt_template"])
        if rows.num_rows:
            extra["prompt"] = {"name": rows["prompt_name"][0].as_py(), "template": rows["prompt_template"][0].as_py()}
    return extra, tensors


def alignment_of(store, spec: dict[str, Any], tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """The head's alignment ``(per-modality settings, tensors)``: its own record, else the store's registry."""
    keys = {m: k for m, k in spec.get("alignment_keys", {}).items() if k != NO_ALIGNMENT and m in spec["model_keys"]}
    if not keys:
        return {}, {}
    if "alignment" in spec:
        return spec["alignment"], tensors
    if store is None:
        raise InputError("this head predates stored alignments: load it with its store")
    return alignment_record(store, keys)


def input_dims(store, spec: dict[str, Any]) -> dict[str, int]:
    """Raw widths of the head's input models (what the extractors output; aligned widths may differ)."""
    if "input_dims" in spec:
        return {m: int(d) for m, d in spec["input_dims"].items()}
    if store is not None:
        return {m: store.model(k, m).dim(m) for m, k in spec["model_keys"].items()}
    return {m: int(spec[f"{m}_dim"]) for m in spec["model_keys"]}


# -- applying (NumPy) ------------------------------------------------------
def _shift(m: str, x: np.ndarray, a: dict[str, Any], gap: np.ndarray) -> np.ndarray:
    from embedstore.alignment import interp_rows, l2_normalize, shift_along_gap

    x = l2_normalize(x)
    if x.shape[1] != a["dim"]:
        x = interp_rows(x, a["dim"])
    return shift_along_gap(x, m, a["lam"], gap)


def align_vectors(store, align: dict[str, Any], tensors: dict[str, np.ndarray],
                  vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Raw ``{modality: (n, d)}`` vectors through the head's train-fitted alignment."""
    if not align:
        return vectors
    out = dict(vectors)
    for m, a in align.items():
        if a["noise_std"] > 0:
            raise InputError(f"alignment {a['alignment_key']} adds seeded noise (noise_std {a['noise_std']}), "
                             "which cannot be re-applied to new rows: train the head on an alignment without noise")
    mapped = [m for m, a in align.items() if a["method"] != "gapshift"]
    if mapped:
        from embedstore.transform_align import load_transform

        key = align[mapped[0]]["alignment_key"]
        if set(vectors) != {"image", "text"} or any(align.get(m, {}).get("alignment_key") != key for m in vectors):
            raise InputError(f"the head reads {', '.join(sorted(align))} through the paired transform {key}, which "
                             "needs both modalities under one alignment: predict with a head trained on both")
        img, txt = load_transform(store, key).transform(vectors["image"], vectors["text"])
        return {"image": img, "text": txt}
    for m, a in align.items():
        out[m] = _shift(m, vectors[m], a, tensors[f"align.{m}.gap"])
    return out


# -- applying (torch, folded into the ONNX export) -------------------------
def interp_matrix(d_in: int, width: int) -> np.ndarray:
    """``W`` (d_in, width) with ``x @ W == interp_rows(x, width)`` (see :func:`embedstore.alignment.interp_rows`)."""
    from embedstore.alignment import interp_rows

    return interp_rows(np.eye(d_in), width)


def torch_align(x, m: str, a: dict[str, Any] | None, buffers: dict[str, Any]):
    """The gap shift of :func:`align_vectors` on a torch tensor (``buffers``: ``gap`` and optional ``interp``)."""
    import torch

    from embedstore.alignment import GAP_SIGN

    if not a:
        return x

    def l2(v):
        norm = torch.linalg.vector_norm(v, dim=1, keepdim=True)
        return v / torch.where(norm == 0, torch.ones_like(norm), norm)

    x = l2(x)
    if "interp" in buffers:
        x = x @ buffers["interp"]
    return l2(x + GAP_SIGN[m] * 0.5 * a["lam"] * buffers["gap"])


def export_buffers(align: dict[str, Any], tensors: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, dict]:
    """Per-modality float32 constants of :func:`torch_align`; refuses what ONNX export cannot fold in."""
    out: dict[str, dict] = {}
    for m, a in align.items():
        if a["method"] != "gapshift" or a["noise_std"] > 0:
            raise InputError(f"export-head folds in the gap shift only; this head reads {m} vectors of the "
                             f"'{a['method']}' alignment {a['alignment_key']}: apply it with 'embedstore predict'")
        b = {"gap": np.asarray(tensors[f"align.{m}.gap"], dtype=np.float32)}
        if dims[m] != a["dim"]:
            b["interp"] = interp_matrix(dims[m], a["dim"]).astype(np.float32)
        out[m] = b
    return out


# -- checks before predicting ------------------------------------------------
def check_inputs(store, dataset: str, spec: dict[str, Any], run_id: str) -> None:
    """One-line errors for a dataset the head cannot read (missing modality, unseen prompt fields)."""
    from embedstore.datasets.prompts import PromptTemplate
    from embedstore.modalities import dataset_modalities, describe

    have = dataset_modalities(store, dataset)
    needs = [m for m in ("image", "text") if m in spec["model_keys"]]
    lacking = [m for m in needs if m not in have]
    if lacking:
        raise InputError(f"dataset '{dataset}' has no {' or '.join(lacking)} ({describe(have)}) but run '{run_id}''s "
                         f"{spec['head']['fusion']} head reads {' and '.join(needs)}: predict it with a run trained "
                         f"on {' and '.join(have)} only (fusion='{have[0]}' or 'linear')")
    prompt = spec.get("prompt")
    if "text" not in needs or not prompt:
        return
    rows = store.samples(dataset, columns=["prompt_name", "prompt_template"])
    if not rows.num_rows or str(rows["prompt_name"][0].as_py() or "").startswith("column:"):
        return  # text given as is (a column), not rendered from metadata fields
    template = rows["prompt_template"][0].as_py() or ""
    column = str(prompt.get("name") or "").startswith("column:")
    seen = set() if column else set(PromptTemplate("train", prompt["template"]).fields)
    unseen = [f for f in PromptTemplate(dataset, template).fields if f not in seen]
    if unseen:
        fix = ("put the text in a column and re-ingest with text_column=COLUMN" if column else
               f"re-ingest it with text_template='{prompt['template']}'")
        raise InputError(f"dataset '{dataset}' renders its text with metadata field(s) {unseen} the head never saw "
                         f"(trained on {prompt['name']} '{prompt['template']}'): {fix}")
