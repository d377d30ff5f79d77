"""Synthetic datasets with a known signal, written to a real store.

Used by tests and benchmarks to exercise the trainers before (or without)
real embeddings: :func:`write_synthetic` writes a samples table and image and
text embeddings through the store's ordinary write path, for two registered
pseudo-models (``synthetic:image-<d>`` and ``synthetic:text-<d>``).

Each class ``c`` has a random mean direction per modality; a sample's vector
is ``signal · mean_c + N(0, 1)``. With ``signal`` around 1 and a few hundred
dimensions the classes are easily separable; ``shuffle_labels=True`` permutes
the labels after the vectors are drawn, so nothing is learnable.

Examples
--------
>>> import tempfile
>>> from embedstore import Store
>>> s = Store(tempfile.mkdtemp() + "/s")
>>> info = write_synthetic(s, "toy", n=40, image_dim=8, text_dim=6, n_classes=2)
>>> sorted(info)
['image_model', 'samples_version', 'text_model']
>>> s.samples("toy").num_rows
40
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa

from embedstore.identity import ModelIdentity


def synthetic_model(modality: str, dim: int) -> ModelIdentity:
    """The pseudo-model identity of synthetic ``modality`` vectors of width ``dim``."""
    return ModelIdentity(f"synthetic:{modality}-{int(dim)}", "synthetic", (modality,), {modality: int(dim)},
                         pooling="synthetic")


def _splits(n: int, rng: np.random.Generator, test_frac: float) -> tuple[np.ndarray, np.ndarray]:
    u = rng.random(n)
    paper = np.where(u < test_frac, "test", "train")
    grouped = np.where(u < test_frac, "test", np.where(u < 2 * test_frac, "val", "train"))
    return paper, grouped


def write_synthetic(store, dataset: str, *, n: int = 400, image_dim: int = 32, text_dim: int = 48,
                    n_classes: int = 2, signal: float = 1.0, shuffle_labels: bool = False, seed: int = 0,
                    test_frac: float = 0.2, n_test: int | None = None, prefix: str = "s",
                    group_size: int = 1) -> dict[str, Any]:
    """Write a synthetic dataset (samples + image and text embeddings) to ``store``.

    Parameters
    ----------
    n : int
        Number of samples.
    image_dim, text_dim : int
    n_classes : int
    signal : float
        Scale of the class means (0 = no signal).
    shuffle_labels : bool
        Permute the labels after drawing the vectors (no learnable signal).
    test_frac : float
        Fraction in test (and in val for the ``grouped`` split).
    n_test : int, optional
        Exact number of ``paper`` test rows (the first rows after shuffling);
        overrides ``test_frac`` for ``split_paper``.
    group_size : int
        Consecutive rows sharing a ``group_id`` (a "patient"; 1 = each row its own).

    Returns
    -------
    dict
        ``image_model``, ``text_model`` (model keys) and ``samples_version``.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    y[:n_classes] = np.arange(n_classes)  # every class occurs
    ids = np.array([f"{prefix}{i:06d}" for i in range(n)])
    vectors = {}
    for modality, dim in (("image", image_dim), ("text", text_dim)):
        means = rng.standard_normal((n_classes, dim)).astype(np.float32)
        vectors[modality] = (signal * means[y] + rng.standard_normal((n, dim), dtype=np.float32)).astype(np.float32)
    if shuffle_labels:
        y = rng.permutation(y)
    paper, grouped = _splits(n, rng, test_frac)
    if n_test is not None:
        paper = np.where(np.arange(n) < n_test, "test", "train")
    if group_size > 1:  # one group, one grouped split (the store refuses a group in two splits)
        grouped = grouped[(np.arange(n) // group_size) * group_size]
    text = np.array([f"synthetic sample {i}" for i in ids])
    sha = {m: [hashlib.sha256(f"{m}:{dataset}:{i}".encode()).hexdigest() for i in ids] for m in ("image", "text")}
    rows = pa.table({
        "sample_id": ids, "text": text, "text_sha256": sha["text"], "prompt_name": ["synthetic"] * n,
        "prompt_template": ["synthetic sample {id}"] * n, "image_ref": [f"synthetic://{i}" for i in ids],
        "image_sha256": sha["image"], "label": y.astype(str), "split_paper": paper, "split_grouped": grouped,
        "group_id": ids if group_size <= 1 else np.array([f"g{i // group_size:06d}" for i in range(n)]),
    })
    version = store.write_samples(dataset, rows).version
    out = {"samples_version": version}
    for modality, dim in (("image", image_dim), ("text", text_dim)):
        ident = synthetic_model(modality, dim)
        store.write_embeddings(dataset, ident, modality, list(ids), vectors[modality], sha[modality])
        out[f"{modality}_model"] = ident.key
    return out
