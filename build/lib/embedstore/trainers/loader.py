"""Training data sources: batches per split and a log of every read.

A :class:`Source` yields ``(x_image, x_text, y)`` torch batches of a split,
shuffled by a generator (or in order), and logs every read and pass in
:attr:`Source.events`, so honest mode can *prove* that the test split is
read once, after epoch selection.

* :class:`ArraySource` serves in-memory arrays (used by
  :func:`embedstore.trainers.train.train_arrays`);
* :class:`embedstore.trainers.store_source.StoreSource` reads a dataset's embeddings
  from the store at pinned table versions (memory or streaming path).

Batches are index slices of an epoch order (:func:`epoch_order`), so any
source with the same rows yields identical batches for a generator state.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch

from embedstore.errors import InputError

Batch = tuple["torch.Tensor | None", "torch.Tensor | None", torch.Tensor]


def encode_labels(values: Sequence[str]) -> list[str]:
    """Sorted class vocabulary (numerically when every label is an integer).

    Examples
    --------
    >>> encode_labels(["10", "2", "2"])
    ['2', '10']
    >>> encode_labels(["nv", "akiec", "mel"])
    ['akiec', 'mel', 'nv']
    """
    uniq = {str(v) for v in values}
    try:
        return sorted(uniq, key=int)
    except ValueError:
        return sorted(uniq)


def label_codes(values: np.ndarray, classes: Sequence[str], where: str) -> np.ndarray:
    """Integer code of each label in ``classes`` (vectorised over the unique values).

    Examples
    --------
    >>> label_codes(np.array(["b", "a", "b"]), ["a", "b"], "y").tolist()
    [1, 0, 1]
    """
    lookup = {c: i for i, c in enumerate(classes)}
    uniq, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
    unknown = [u for u in uniq if u not in lookup]
    if unknown:
        shown = [str(u) for u in unknown[:5]]
        raise InputError(f"{where}: labels {shown} are absent from the training classes {list(classes)}; "
                         "fix the split so every class occurs in train")
    return np.array([lookup[u] for u in uniq], dtype=np.int64)[inverse.reshape(-1)]


class Source:
    """Base of the training data sources: batches per split and an event log.

    ``events`` holds ``(kind, split)`` tuples in order: ``("labels", s)``
    when split ``s``'s labels are read from the store, ``("vectors", s)`` when
    its vectors are materialised in memory, ``("iter", s)`` for each pass over
    it (streaming reads vectors during the pass), and ``("mark", name)`` for
    markers the trainer sets (``seed N``, ``selected``).
    """

    path = "arrays"
    image_dim: int | None = None
    text_dim: int | None = None
    classes: list[str]

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def mark(self, name: str) -> None:
        """Append a ``("mark", name)`` event."""
        self.events.append(("mark", name))

    def reads(self, split: str, kind: str = "iter") -> int:
        """How many ``kind`` events split ``split`` has had."""
        return sum(1 for k, s in self.events if k == kind and s == split)

    def labels(self, split: str) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def has_split(self, split: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def prepare(self, splits: Sequence[str]) -> float:
        """Make ``splits`` ready for fast iteration; returns seconds spent (no-op here)."""
        return 0.0

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Batches ``(x_image, x_text, y)`` of ``split``, shuffled when ``generator`` is given."""
        raise NotImplementedError  # pragma: no cover - interface

    def describe(self) -> dict[str, Any]:
        """JSON-able description stored in the run record."""
        return {"loader": self.path}


def epoch_order(n: int, generator: torch.Generator | None) -> np.ndarray:
    """Row order of one epoch: a permutation from ``generator``, else ``0..n-1``."""
    if generator is None:
        return np.arange(n)
    return torch.randperm(n, generator=generator).numpy()


def _slices(xi, xt, y, order: np.ndarray, batch_size: int) -> Iterator[Batch]:
    idx_all = torch.from_numpy(np.ascontiguousarray(order))
    for start in range(0, len(order), batch_size):
        idx = idx_all[start:start + batch_size]
        yield (None if xi is None else xi[idx], None if xt is None else xt[idx], y[idx])


class ArraySource(Source):
    """In-memory arrays with a split column (numpy or torch).

    Examples
    --------
    >>> src = ArraySource(np.ones((4, 2)), None, np.array(["a", "b", "a", "b"]),
    ...                   np.array(["train", "train", "test", "test"]))
    >>> [tuple(b[2].tolist()) for b in src.batches("train", 8)]
    [(0, 1)]
    >>> src.classes, src.reads("train")
    (['a', 'b'], 1)
    """

    path = "arrays"

    def __init__(self, x_image: Any, x_text: Any, y: Any, split: Any,
                 classes: Sequence[str] | None = None) -> None:
        super().__init__()
        y = np.asarray(y).astype(str)
        split = np.asarray(split).astype(str)
        n = len(y)
        for name, x in (("x_image", x_image), ("x_text", x_text)):
            if x is not None and len(x) != n:
                raise InputError(f"{name} has {len(x)} rows but y has {n}: pass aligned arrays")
        if len(split) != n:
            raise InputError(f"split has {len(split)} rows but y has {n}")
        self.classes = list(classes) if classes is not None else encode_labels(y)
        codes_y = label_codes(y, self.classes, "y")
        self._x = [None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in (x_image, x_text)]
        self.image_dim = None if x_image is None else int(self._x[0].shape[1])
        self.text_dim = None if x_text is None else int(self._x[1].shape[1])
        self._y = torch.from_numpy(codes_y)
        self._rows = {s: np.flatnonzero(split == s) for s in np.unique(split)}

    def has_split(self, split: str) -> bool:
        return split in self._rows and len(self._rows[split]) > 0

    def labels(self, split: str) -> np.ndarray:
        return self._y.numpy()[self._rows[split]]

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        self.events.append(("iter", split))
        rows = self._rows[split]
        order = rows[epoch_order(len(rows), generator)]
        return _slices(self._x[0], self._x[1], self._y, order, batch_size)


