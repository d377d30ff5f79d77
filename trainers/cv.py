"""Grouped, stratified k-fold cross-validation in honest mode (``train --cv K``).

One split of 20 % test rows cannot separate settings that differ by less
than a few points of macro-F1. Cross-validation uses every labelled row as
test exactly once per repeat:

1. :func:`grouped_folds` assigns each row to one of ``K`` folds with
   :class:`sklearn.model_selection.StratifiedGroupKFold` (shuffled with the
   split seed): **no group (patient, lesion, municipality) is in two folds**,
   and each fold's label mix is as close to the whole as the groups allow.
2. For fold ``f`` the other folds are the training part; :func:`fold_parts`
   holds out a grouped, stratified **validation** part of them
   (``val_fraction``) that selects the epoch (MLP heads) or ``C`` (linear
   probe). Fold ``f`` is the test part, read once after selection: the
   source's event log shows no ``("vectors", "test")`` before the
   ``("mark", "selected")`` of its run.
3. Input scaling (:mod:`embedstore.trainers.scaling`) is fitted on each fold's
   training part only.
4. ``repeats`` re-draws the folds with split seeds ``cv_seed, cv_seed+1, ...``;
   model seeds vary inside each fold. Results are mean ± sd over
   folds × split seeds × model seeds, every run is recorded with its fold
   assignment (``config["cv"]``) and its test predictions, so two settings
   run with the same ``K``/split seeds are compared on the same folds
   (:mod:`embedstore.compare`).

Examples
--------
>>> y = np.array(["a", "b"] * 20)
>>> groups = np.arange(40) // 2                     # pairs of rows share a group
>>> folds = grouped_folds(y, groups, k=5, seed=0)
>>> sorted(np.bincount(folds).tolist()), all(len(set(folds[groups == g])) == 1 for g in range(20))
([8, 8, 8, 8, 8], True)
>>> parts = fold_parts(y, groups, folds, 0, val_fraction=0.25, seed=0)
>>> [len(parts[s]) for s in ("train", "val", "test")]
[24, 8, 8]
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from embedstore.errors import InputError

from .loader import Batch, Source, _slices, epoch_order

PARTS = ("train", "val", "test")

#: ``cv="auto"`` cross-validates (grouped 5-fold) datasets of at most this many labelled samples. Below it a
#: single split's test part (20 %) holds at most 1,000 rows, and one split's macro-F1 moves by ±0.03 to ±0.07
#: with the draw of those rows (95 % bootstrap half-width: 0.06 at 200 test rows on dev1000,
#: benchmarks/results/honest.md): more than the differences between heads. Above it one split is precise
#: enough and K-fold would cost K times the training.
AUTO_CV_MAX_SAMPLES = 5000
#: Folds of ``cv="auto"``.
AUTO_CV_K = 5


def auto_cv(n_samples: int, mode: str, split_by: str | None) -> int | None:
    """What ``cv="auto"`` means for a dataset of ``n_samples`` labelled samples: ``5`` (grouped 5-fold) or ``None``.

    Honest mode on a dataset of at most :data:`AUTO_CV_MAX_SAMPLES` samples, when no split is named,
    cross-validates; a named split (``split_by=``), paper mode or a larger dataset uses the single split.

    Examples
    --------
    >>> auto_cv(1000, "honest", None), auto_cv(1000, "honest", "grouped"), auto_cv(20000, "honest", None)
    (5, None, None)
    """
    if mode != "honest" or split_by is not None or n_samples > AUTO_CV_MAX_SAMPLES:
        return None
    return AUTO_CV_K


def grouped_folds(y: Sequence, groups: Sequence, k: int, seed: int) -> np.ndarray:
    """Fold number (``0..k-1``) per row: grouped, stratified on ``y``, shuffled by ``seed``."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y).astype(str)
    groups = np.asarray(groups).astype(str)
    n_groups = len(np.unique(groups))
    if k < 2 or k > n_groups:
        raise InputError(f"cv={k}: use 2 <= K <= the number of groups ({n_groups})")
    folds = np.full(len(y), -1, dtype=np.int64)
    with warnings.catch_warnings():  # "least populated class has fewer members than n_splits": still grouped
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, test) in enumerate(StratifiedGroupKFold(k, shuffle=True, random_state=seed)
                                      .split(np.zeros(len(y)), y, groups)):
            folds[test] = f
    return folds


def fold_parts(y: Sequence, groups: Sequence, folds: np.ndarray, fold: int, *, val_fraction: float,
               seed: int) -> dict[str, np.ndarray]:
    """Row indices of fold ``fold``'s train / val / test parts (val grouped and stratified, from train)."""
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    if not 0.0 < val_fraction < 0.5:
        raise InputError(f"val_fraction {val_fraction}: use a fraction in (0, 0.5), e.g. 0.2")
    y = np.asarray(y).astype(str)
    groups = np.asarray(groups).astype(str)
    test = np.flatnonzero(folds == fold)
    rest = np.flatnonzero(folds != fold)
    n_inner = max(2, int(round(1.0 / val_fraction)))
    if len(np.unique(groups[rest])) < n_inner:
        raise InputError(f"fold {fold}: {len(np.unique(groups[rest]))} training groups cannot hold out a "
                         f"validation part of {val_fraction}: use fewer folds or more data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        inner = StratifiedGroupKFold(n_inner, shuffle=True, random_state=seed + 1000 * (fold + 1))
        fit_idx, val_idx = next(inner.split(np.zeros(len(rest)), y[rest], groups[rest]))
    return {"train": rest[fit_idx], "val": rest[val_idx], "test": test}


class FoldSource(Source):
    """All labelled rows of a dataset, served as the train/val/test parts of the current fold.

    Vectors of a part are read (``read(rows)``) the first time the part is
    used in a fold and logged as ``("vectors", part)``, so the event log
    shows when each fold's test rows were first touched.

    Parameters
    ----------
    y : ndarray of int
        Label codes of all rows.
    groups : ndarray
        Group id per row.
    classes : list of str
    read : callable
        ``read(rows) -> (x_image, x_text)`` torch tensors (or ``None``) of those rows.
    sample_ids : ndarray
        Sample id per row (recorded with each fold).
    image_dim, text_dim : int or None
    base : Source, optional
        The source the rows come from (its versions, model keys and
        description are reported).
    """

    def __init__(self, y: np.ndarray, groups: np.ndarray, classes: list[str],
                 read: Callable[[np.ndarray], tuple[Any, Any]], sample_ids: np.ndarray,
                 image_dim: int | None, text_dim: int | None, base: Source | None = None) -> None:
        super().__init__()
        self.y, self.groups, self.classes, self._read = np.asarray(y), np.asarray(groups), classes, read
        self.sample_ids = np.asarray(sample_ids, dtype=object)
        self.image_dim, self.text_dim, self.base = image_dim, text_dim, base
        self.path = getattr(base, "path", "arrays")
        if base is not None:
            self.events = base.events
            self.versions = dict(getattr(base, "versions", {}) or {})
            self.model_keys = dict(getattr(base, "model_keys", {}) or {})
        self._parts: dict[str, np.ndarray] = {}
        self._mem: dict[str, Batch] = {}

    def __getattr__(self, name: str) -> Any:  # tables, split_column, skipped... of the source the rows come from
        base = self.__dict__.get("base")
        if base is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(base, name)

    def set_fold(self, parts: dict[str, np.ndarray]) -> None:
        """Serve ``parts`` (``{"train"|"val"|"test": rows}``) from now on; drops the previous fold's vectors."""
        self._parts, self._mem = dict(parts), {}

    def has_split(self, split: str) -> bool:
        return len(self._parts.get(split, ())) > 0

    def labels(self, split: str) -> np.ndarray:
        return self.y[self._parts[split]]

    def batches(self, split: str, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        rows = self._parts[split]
        if split not in self._mem:
            self.events.append(("vectors", split))
            xi, xt = self._read(rows)
            self._mem[split] = (xi, xt, torch.from_numpy(self.y[rows]))
        self.events.append(("iter", split))
        xi, xt, y = self._mem[split]
        return _slices(xi, xt, y, epoch_order(len(rows), generator), batch_size)

    def describe(self) -> dict[str, Any]:
        out = self.base.describe() if self.base is not None else {"loader": self.path}
        return {**out, "cv_rows": {p: int(len(r)) for p, r in self._parts.items()}}

    def assignment(self) -> dict[str, list[str]]:
        """Sample ids of the current fold's val and test parts (train = the rest)."""
        return {p: [str(s) for s in self.sample_ids[self._parts[p]]] for p in ("val", "test") if p in self._parts}

    def test_sample_ids(self) -> list[str]:
        """Sample ids of the current test part (kept with a stored head: the rows it never trained on)."""
        return [str(s) for s in self.sample_ids[self._parts.get("test", np.zeros(0, dtype=np.int64))]]

    def arrays(self, rows: np.ndarray, part: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Raw float32 vectors ``(image, text)`` of ``rows`` for the independent baseline (logged as "baseline")."""
        self.events.append(("baseline", part))
        return tuple(None if x is None else np.asarray(x, dtype=np.float32) for x in self._read(np.asarray(rows)))


def array_folds(x_image: Any, x_text: Any, y: np.ndarray, groups: Sequence, classes: list[str],
                sample_ids: Sequence | None = None) -> FoldSource:
    """A :class:`FoldSource` over in-memory arrays."""
    xs = [None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in (x_image, x_text)]
    ids = np.asarray(sample_ids if sample_ids is not None else np.arange(len(y)).astype(str), dtype=object)

    def read(rows: np.ndarray):
        idx = torch.from_numpy(np.asarray(rows))
        return tuple(None if x is None else x[idx] for x in xs)

    return FoldSource(y, np.asarray(groups).astype(str), classes, read, ids,
                      None if xs[0] is None else int(xs[0].shape[1]),
                      None if xs[1] is None else int(xs[1].shape[1]))


def store_folds(source) -> FoldSource:
    """A :class:`FoldSource` over every labelled row (all splits) of a ``StoreSource``, grouped by ``group_id``
    (each sample its own group when the dataset has none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .store_source import SplitIndex

    present = [s for s in PARTS if source.has_split(s)]
    ixs = [source.index(s) for s in present]
    ids = np.concatenate([ix.sample_ids for ix in ixs])
    full = SplitIndex(ids, np.concatenate([ix.y for ix in ixs]),
                      {m: np.concatenate([ix.positions[m] for ix in ixs]) for m in source.tables})
    if "group_id" in source.snapshot.sample_columns:
        samples = source.snapshot.samples(["sample_id", "group_id"])
        where = pc.index_in(pa.array(ids.tolist(), pa.string()), value_set=samples["sample_id"])
        groups = samples["group_id"].take(where).to_numpy(zero_copy_only=False).astype(object)
        groups = np.where(pd_isnull(groups), ids, groups).astype(str)
    else:  # no group column: every sample is its own group
        groups = ids.astype(str)
    every: list = []

    def read(rows: np.ndarray):  # one read of every row from the store, then in-memory takes (folds, inner parts)
        if not every:
            every.append(source._vectors(full, np.arange(len(ids))))
        idx = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return tuple(None if x is None else x[idx] for x in every[0])

    return FoldSource(full.y, groups, source.classes, read, ids, source.image_dim, source.text_dim, base=source)


def pd_isnull(values: np.ndarray) -> np.ndarray:
    """``True`` where a group id is missing (the row is then its own group)."""
    return np.array([v is None or v == "" for v in values], dtype=bool)


def run_cv(folds: FoldSource, spec, proto, seeds: list[int], *, k: int, repeats: int, cv_seed: int,
           val_fraction: float, dataset: str, config: dict[str, Any], store=None, record: bool,
           progress: bool, group_id: str | None, select=None, baseline: bool = True):
    """Train ``spec`` on every fold of ``repeats`` grouped ``k``-fold splits; one recorded run per fold × seed.

    Honest heads are selected on each fold's training rows and refitted on
    all of them (:mod:`embedstore.trainers.select`; ``select`` is a
    :class:`~embedstore.trainers.options.SelectOptions`); with ``baseline``
    every run also carries the independent scikit-learn baseline of its fold
    (:mod:`embedstore.trainers.baseline`). Returns a
    :class:`embedstore.trainers.train.TrainResult` whose mean / sd are over
    all folds × split seeds × model seeds; each run's ``cv`` holds its fold,
    split seed and fold assignment (val and test sample ids).
    """
    from embedstore.runs import new_run_id

    from .environment import capture
    from .fit_loop import torch_threads
    from .options import SelectOptions
    from .seed_runs import TrainResult, summarize_runs
    from .select import honest_seeds

    if repeats < 1:
        raise InputError(f"repeats={repeats}: use 1 or more cross-validation repeats")
    select = select or SelectOptions()
    group_id = group_id or new_run_id().replace("run-", "grp-", 1)
    runs = []
    with torch_threads(config.get("threads")):
        env = capture()
        for split_seed in range(cv_seed, cv_seed + repeats):
            assign = grouped_folds(folds.y, folds.groups, k, split_seed)
            for fold in range(k):
                parts = fold_parts(folds.y, folds.groups, assign, fold, val_fraction=val_fraction, seed=split_seed)
                folds.set_fold(parts)
                folds.mark(f"cv split {split_seed} fold {fold}")
                fit = {"train": np.sort(np.concatenate([parts["train"], parts["val"]])), "val": parts["val"],
                       "test": parts["test"]}
                cv = {"k": k, "repeats": repeats, "split_seed": split_seed, "fold": fold,
                      "val_fraction": val_fraction, "rows": {p: len(r) for p, r in fit.items()},
                      **folds.assignment()}
                runs += honest_seeds(folds, fit, spec, proto, seeds, select=select,
                                     inner_seed=1000 * split_seed + fold, config={**config, "cv": cv}, env=env,
                                     dataset=dataset, group_id=group_id, store=store if record else None,
                                     progress=progress, baseline=baseline,
                                     desc=f"{dataset} {spec.fusion} split {split_seed} fold {fold}")[0]
    config = {**config, "cv": {"k": k, "repeats": repeats, "cv_seed": cv_seed, "val_fraction": val_fraction}}
    return summarize_runs(TrainResult(dataset, spec.fusion, proto.mode, runs, group_id, config, source=folds))


def split_parts(folds: FoldSource, split: Sequence[str]) -> dict[str, np.ndarray]:
    """The honest parts of a fixed split: ``train`` = its train and val rows, ``val``, ``test``.

    ``split`` holds each row's split name (``train`` / ``val`` / ``test``).
    """
    split = np.asarray(split).astype(str)
    return {"train": np.flatnonzero((split == "train") | (split == "val")), "val": np.flatnonzero(split == "val"),
            "test": np.flatnonzero(split == "test")}


def array_split(source, groups: Sequence | None = None) -> tuple[FoldSource, dict[str, np.ndarray]]:
    """A :class:`FoldSource` over an ``ArraySource``'s rows and its split's honest parts (:func:`split_parts`).

    ``groups`` (one id per row) keep the inner selection folds grouped; default each row its own group.
    """
    n = len(source._y)
    names = np.full(n, "", dtype=object)
    for name, rows in source._rows.items():
        names[rows] = name
    xs = [None if x is None else x.numpy() for x in source._x]
    folds = array_folds(xs[0], xs[1], source._y.numpy(), np.arange(n) if groups is None else groups,
                        source.classes)
    return folds, split_parts(folds, names.astype(str))


def store_split(source) -> tuple[FoldSource, dict[str, np.ndarray]]:
    """A :class:`FoldSource` over a ``StoreSource``'s split and the split's honest parts (:func:`split_parts`)."""
    folds = store_folds(source)
    names = np.concatenate([[s] * len(source.index(s).y) for s in PARTS if source.has_split(s)])
    return folds, split_parts(folds, names)
