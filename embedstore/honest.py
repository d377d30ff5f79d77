"""Honest mode's rule for alignments: fitted on the training rows of the split it trains on.

A run in ``honest`` mode that reads aligned vectors is accepted only when
each alignment (:func:`check_honest_alignments`)

* belongs to the dataset trained on,
* was fitted with ``fit_on="train"`` (``"all"`` includes the test rows: the
  paper's choice, allowed in ``paper`` mode only),
* on the training rows of the *same* split column, and
* on the same source rows: its ``source_fingerprint`` equals the
  fingerprint of the current unaligned pairs (a re-ingest that moved rows
  between splits, or new vectors, changes it).

The settings that matter to a reader (λ, method, ``fit_on``, split, noise,
width) are copied into the run record by the trainer
(:func:`alignment_summary`), so no registry join is needed to read a run.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError
from .keys import NO_ALIGNMENT

#: Alignment settings copied into each run record.
SUMMARY_FIELDS = ("method", "lam", "fit_on", "split_column", "noise_std", "seed", "match", "dim", "n_fit_rows",
                  "n_components")


def alignment_summary(store, alignment_key: str) -> dict[str, Any]:
    """The settings of a registered alignment that a run record carries.

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.alignment import align
    >>> from embedstore.pairs import toy_pairs
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> img, txt = toy_pairs(s, "toy", n=20)
    >>> key = align(s, "toy", image_model=img, text_model=txt, lam=0.5, match="interp").alignment_key
    >>> summary = alignment_summary(s, key)
    >>> (summary["lam"], summary["fit_on"], summary["split_column"])
    (0.5, 'train', 'split_paper')
    """
    rec = store.alignment(alignment_key)
    return {"alignment_key": alignment_key, **{k: rec.settings.get(k) for k in SUMMARY_FIELDS},
            "method": rec.method}


def check_honest_alignments(store, dataset: str, split_column: str,
                            alignment_keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Raise :class:`InputError` unless every alignment was fitted on this split's training rows.

    Parameters
    ----------
    store : Store
    dataset : str
    split_column : str
        The ``split_<name>`` column the run trains on.
    alignment_keys : dict
        ``{modality: alignment_key}`` of the vectors the run reads.

    Returns
    -------
    dict
        ``{modality: alignment_summary}`` of the aligned modalities.
    """
    out: dict[str, dict[str, Any]] = {}
    checked: set[str] = set()
    for modality, key in alignment_keys.items():
        if key == NO_ALIGNMENT:
            continue
        out[modality] = alignment_summary(store, key)
        if key in checked:
            continue
        checked.add(key)
        s = store.alignment(key).settings
        where = f"honest mode refuses alignment '{key}'"
        fix = (f"re-align with fit_on='train' on {split_column} (embedstore.align(..., fit_on='train', "
               f"split_by='{split_column[len('split_'):]}')), or train with mode='paper'")
        if s.get("dataset") not in (None, dataset):
            raise InputError(f"{where}: it was fitted on dataset '{s['dataset']}', not '{dataset}'; {fix}")
        if s.get("fit_on") != "train":
            raise InputError(f"{where}: it was fitted with fit_on='{s.get('fit_on')}' (split "
                             f"{s.get('split_column') or 'none'}), so the test rows shaped it; {fix}")
        if s.get("split_column") != split_column:
            raise InputError(f"{where}: it was fitted with fit_on='train' on {s.get('split_column')}, but this "
                             f"run trains on {split_column} (that alignment saw some of its test rows); {fix}")
        _check_same_source(store, dataset, key, s, where, fix)
    return out


def _check_same_source(store, dataset: str, key: str, settings: dict[str, Any], where: str, fix: str) -> None:
    from .alignment_store import source_fingerprint
    from .pairs import paired_sources

    src = paired_sources(store, dataset, settings["image_model_key"], settings["text_model_key"],
                         split_by=settings["split_column"])
    if source_fingerprint(src, "train") != settings.get("source_fingerprint"):
        raise InputError(f"{where}: it was fitted on other source rows than the current ones (fingerprint "
                         f"{settings.get('source_fingerprint')} != {source_fingerprint(src, 'train')}: samples, "
                         f"splits or vectors changed since); {fix}")
