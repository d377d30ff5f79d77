"""What a training call refuses before anything is registered or written: labels that cannot give an honest score.

:func:`check_labels` runs on the labels (and groups, and splits) of the rows
a call would train and test on: rows with a current vector in every
modality; :func:`store_labels` reads them from the samples table without
touching the source's vectors, so no test row is "seen". It refuses, in one
line that names the classes and a fix that works:

* **fewer than two classes**: a classifier of one class scores nothing (it
  once "recorded" a macro-F1 of 0.45 and predicted a class that does not
  exist);
* **honest single split**: a training class with no validation or no test
  rows (the epoch would be selected, or the score computed, without it; the
  70/10/20 grouped split gives a class of five or fewer samples no
  validation row);
* **cross-validation**: folds that cannot hold every class in each fold's
  training and test parts, or cannot hold out a validation part (a class
  with fewer groups than folds; sklearn's "n_splits cannot be greater than
  the number of members in each class").

The fix offered is checked, not guessed: :func:`working_cv` builds the same
folds the training would (:func:`~embedstore.trainers.cv.grouped_folds`,
:func:`~embedstore.trainers.cv.fold_parts`, labels and groups only) for ``K``
from 5 down to 2 and validation fractions from the call's up to 0.45, and
names the first that holds every class in every part; when none does, the
classes are too small for any held-out score and the fix is to merge them or
add samples. Paper mode reproduces the authors' code and is only refused for
fewer than two classes.

Examples
--------
>>> y = np.array(["a", "b"] * 20)
>>> check_labels(y, np.array(["train"] * 28 + ["val"] * 4 + ["test"] * 8), np.arange(40), mode="honest",
...              where="dataset 'toy'")
>>> check_labels(np.array(["a"] * 8), np.array(["train"] * 8), np.arange(8), mode="honest", where="dataset 'toy'")
Traceback (most recent call last):
...
embedstore.errors.InputError: dataset 'toy' has one class in its training rows ('a', 8 rows): a classifier needs at least two; label rows of a second class, or train on a dataset that has them
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from embedstore.errors import InputError

#: Folds tried first when a fix is searched (the usual 5-fold CV), then fewer.
MAX_SUGGESTED_FOLDS = 5
#: Validation fractions tried after the call's own (``fold_parts`` needs < 0.5).
FRACTIONS = (0.2, 0.25, 0.34, 0.45)


def _shown(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def store_labels(source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(labels, splits, groups)`` of a StoreSource's labelled rows with current vectors (no vector is read).

    Reads the samples table's label, split, group and hash columns once, so it
    logs nothing on the source. A row without a group is its own group.
    """
    from embedstore.vectors import HASH_COLUMN

    snap = source.snapshot
    names = snap._ds[snap.samples_table].schema.names
    cols = ["sample_id", source.label_column, source.split_column, *(HASH_COLUMN[m] for m in source.tables)]
    cols += ["group_id"] if "group_id" in names else []
    rows = snap.samples(list(dict.fromkeys(cols)))
    keep = snap.select(rows).keep & rows[source.label_column].is_valid().to_numpy(zero_copy_only=False)
    rows = rows.take(np.flatnonzero(keep))
    ids = np.asarray(rows["sample_id"].to_pylist(), dtype=object)
    groups = ids
    if "group_id" in names:
        raw = np.asarray(rows["group_id"].to_pylist(), dtype=object)
        groups = np.where(np.array([g is None for g in raw], dtype=bool), ids, raw)
    return (np.asarray(rows[source.label_column].to_pylist(), dtype=object).astype(str),
            np.asarray(rows[source.split_column].to_pylist(), dtype=object).astype(str), groups.astype(str))


def _count(y: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(y, return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def _group_counts(y: np.ndarray, groups: np.ndarray) -> dict[str, int]:
    return {c: len(np.unique(groups[y == c])) for c in np.unique(y).tolist()}


def folds_hold_every_class(y: np.ndarray, groups: np.ndarray, k: int, val_fraction: float,
                           seeds: Sequence[int]) -> str | None:
    """``None`` when the CV folds of ``seeds`` hold every class in every fold's train and test part and a
    validation part; else what fails, in words (built as the training builds them, labels and groups only)."""
    from .cv import fold_parts, grouped_folds

    classes = np.unique(y)
    for seed in seeds:
        try:
            assign = grouped_folds(y, groups, k, seed)
            for fold in range(k):
                parts = fold_parts(y, groups, assign, fold, val_fraction=val_fraction, seed=seed)
                if not len(parts["val"]):
                    return f"fold {fold} has no validation rows"
                for part in ("train", "test"):
                    absent = sorted(set(classes.tolist()) - set(y[parts[part]].tolist()))
                    if absent:
                        return f"fold {fold}'s {part} part holds no {_shown([repr(c) for c in absent])}"
        except (InputError, ValueError) as exc:  # sklearn: "n_splits=5 cannot be greater than the number of..."
            return str(exc).split(";")[0]
    return None


def working_cv(y: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2, seed: int = 0
               ) -> tuple[int, float] | None:
    """The first ``(K, val_fraction)`` whose folds hold every class (K from 5 down to 2), or ``None``."""
    fewest = min(_group_counts(y, groups).values())
    fractions = sorted({float(val_fraction), *FRACTIONS})
    for vf in [f for f in fractions if f >= val_fraction] or fractions:
        for k in range(min(MAX_SUGGESTED_FOLDS, fewest), 1, -1):
            if folds_hold_every_class(y, groups, k, vf, [seed]) is None:
                return k, vf
    return None


def _fix(y: np.ndarray, groups: np.ndarray, val_fraction: float) -> str:
    found = working_cv(y, groups, val_fraction)
    if found is None:
        small = sorted(_group_counts(y, groups).items(), key=lambda kv: kv[1])[:5]
        return ("no K-fold split holds out validation and test rows of every class: merge the small classes "
                f"({', '.join(f'{c!r} {n}' for c, n in small)} groups) or add samples")
    k, vf = found
    return f"use cross-validation with cv={k}" + (f" and val_fraction={vf:g}" if vf != 0.2 else "") + \
        " (every row is tested once)"


def check_labels(y: Sequence[Any], split: Sequence[str] | None, groups: Sequence[Any] | None, *, mode: str,
                 where: str, cv: int | None = None, repeats: int = 1, cv_seed: int = 0, val_fraction: float = 0.2,
                 splits: Sequence[str] = ("train", "val", "test"), computed_split: bool = True) -> None:
    """Refuse labels that cannot give an honest score (see the module docstring).

    Parameters
    ----------
    y, split, groups : sequence
        Label, split value and group of every labelled row with current
        vectors (``split`` is ignored under ``cv``; ``groups`` default: a row
        is its own group).
    mode : {"honest", "paper"}
    where : str
        How the data is named, e.g. ``"dataset 'ham' split column split_grouped"``.
    cv, repeats, cv_seed, val_fraction
        The cross-validation of the call (``cv=None``: the fixed split).
    splits : sequence of str
        Splits the protocol needs (train first).
    computed_split : bool
        The split was drawn per class by embedstore (``split_grouped``), so an
        empty val/test split means classes too small for it; ``False`` for a
        split column that may lack a split by design (the caller's own split
        hint speaks then).
    """
    y = np.asarray(y, dtype=object).astype(str)
    groups = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups, dtype=object).astype(str)
    split = np.full(len(y), "train") if cv is not None or split is None else np.asarray(split, dtype=object).astype(str)
    train = _count(y[split == "train"])
    if not train:
        return  # no labelled training rows: the caller's own message (e.g. a predict-only dataset)
    if len(train) < 2:
        (only, n), = train.items()
        raise InputError(f"{where} has one class in its training rows ({only!r}, {n} rows): a classifier needs at "
                         "least two; label rows of a second class, or train on a dataset that has them")
    if mode != "honest":
        return
    if cv is not None:
        failure = folds_hold_every_class(y, groups, cv, val_fraction, range(cv_seed, cv_seed + repeats))
        if failure:
            per = _group_counts(y, groups)
            small = [f"{c!r} ({per[c]} group{'s' if per[c] != 1 else ''})" for c in sorted(per, key=per.get)]
            raise InputError(f"{where}: cv={cv} folds with val_fraction={val_fraction:g} cannot test every class "
                             f"({failure}; smallest classes {_shown(small, 3)}); {_fix(y, groups, val_fraction)}")
        return
    held = [s for s in splits if s != "train"]
    counts = {s: _count(y[split == s]) for s in splits}
    if any(not counts[s] for s in held) and not computed_split:
        return  # a split column without val/test rows by design (e.g. paper's 80/20): the caller's split hint
    lacking = [c for c in train if any(counts[s].get(c, 0) == 0 for s in held)]
    if lacking:
        per = "; ".join(f"{c!r}: " + ", ".join(f"{counts[s].get(c, 0)} {s}" for s in splits)
                        for c in lacking[:5]) + ("; ..." if len(lacking) > 5 else "")
        raise InputError(f"{where}: class(es) {_shown([repr(c) for c in lacking])} have no {'/'.join(held)} rows "
                         f"({per}), so the {'epoch would be selected and the ' if 'val' in held else ''}score "
                         f"computed without them; {_fix(y, groups, val_fraction)}")
