"""Stored alignments: the key of a fitted transform, fitting it once, and reading its aligned rows.

:func:`embedstore.alignment.align` (the mean shift) and
:func:`embedstore.transform_align.align_method` (the toolkit) both build
their settings with :func:`fit_settings`, key them with
:func:`alignment_key_of` and fit-and-store through :func:`fit_and_store`, so
an alignment is computed once per key and a re-run reuses it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from .errors import InputError
from .keys import NO_ALIGNMENT, stable_hash
from .sql import all_of, eq


@dataclass(frozen=True)
class AlignmentResult:
    """Outcome of :func:`align`.

    Attributes
    ----------
    alignment_key : str
        Key of the aligned rows in both embeddings tables.
    image_model_key, text_model_key : str
    dim : int
        Width of the aligned vectors of both modalities.
    rows : int
        Aligned samples (rows with both an image and a text embedding).
    n_fit_rows : int
        Rows the gap was fitted on.
    gap_norm : float
    reused : bool
        True when the rows were already stored and nothing was recomputed.
    settings : dict
        Everything the key covers, source versions and fingerprints included.
    """

    alignment_key: str
    image_model_key: str
    text_model_key: str
    dim: int
    rows: int
    n_fit_rows: int
    gap_norm: float
    reused: bool
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)


def _fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return h.hexdigest()[:16]


def source_fingerprint(src: Any, fit_on: str) -> str:
    """Fingerprint of the unaligned pairs an alignment is fitted on (ids, hashes, vectors; splits with ``train``)."""
    return _fingerprint(src.ids, src.image_hashes, src.text_hashes, src.image_vectors, src.text_vectors,
                        src.splits if fit_on == "train" else None)


def fit_settings(store, dataset: str, method: str, shift: Any, source: Any, image_model: str | None,
                 text_model: str | None, split_by: str | None) -> tuple[Any, dict[str, Any]]:
    """The paired source a transform is fitted on and the settings that key it (method, parameters, inputs).

    ``shift``'s parameters are checked first, so a bad one fails before any read.
    """
    from .pairs import paired_sources

    from .numbers import check_alignment_params

    check_alignment_params(shift.get_params())  # a NaN/inf λ is refused before anything is read or registered
    shift._check_params()
    src = source if source is not None else paired_sources(store, dataset, image_model, text_model,
                                                           split_by=split_by)
    fit_on = shift.get_params()["fit_on"]
    return src, {
        "method": method, "dataset": dataset, **shift.get_params(),
        "split_column": src.split_column if fit_on == "train" else None,
        "image_model_key": src.image.key, "text_model_key": src.text.key,
        "source_fingerprint": source_fingerprint(src, fit_on),
    }


def alignment_key_of(settings: dict[str, Any]) -> str:
    """The ``alignment_key`` of a settings dict: ``gs-`` + its stable hash.

    Every field of ``settings`` is covered, so changing λ, the noise, the
    seed, the fit split, the match method, a source model or a source table
    version gives a new key.

    Examples
    --------
    >>> alignment_key_of({"lam": 1.0}) != alignment_key_of({"lam": 0.5})
    True
    """
    return "gs-" + stable_hash(settings)


def fit_and_store(store, dataset: str, src: Any, shift: Any, settings: dict[str, Any], *,
                  tag: str | None = None) -> AlignmentResult:
    """Fit ``shift`` on ``src`` and store it under the key of ``settings``; its rows are computed when read.

    The one write path of every alignment method. What is stored is the
    alignment's parameters (:mod:`embedstore.aligned_reads`): the fitted
    transform, the list of samples it covers (shared by alignments of the
    same source rows) and, last, its registry row, so a registered
    alignment is always complete and a kill before that leaves nothing a
    re-run does not finish under the same key. An alignment that is already
    complete is reused (nothing is fitted or written), whether stored this
    way or, by earlier versions, as rows. In a store this process cannot
    write, the three parts go to the user's cache
    (:class:`~embedstore.alignment_home.LocalAlignments`) instead.
    """
    from .aligned_reads import ON_READ, members_of, save_members
    from .alignment_home import LocalAlignments, store_writable

    previous = _find_existing(store, settings, src.rows)
    if previous is not None:
        return previous
    # An interrupted run of an earlier version registered its key before writing rows: finish it under that key.
    partial = next(iter(_matching(store, settings)), None)
    if partial is None:
        settings["source_versions"] = src.versions
        key = alignment_key_of(settings)
    else:
        key, settings = partial.alignment_key, dict(partial.settings)
    shift.fit(src.image_vectors, src.text_vectors, split=src.splits)
    members_id, members = members_of(src)
    settings.update(dim=shift.dim_, n_fit_rows=shift.n_fit_rows_, storage=ON_READ, members=members_id,
                    n_rows=src.rows)
    local = None if store_writable(store) else LocalAlignments(store)
    from .store import new_run_tag

    tag = tag or new_run_tag("align")
    from .transform_store import save_state

    save_members(store, members_id, members, local=local, tag=tag)
    save_state(store, key, shift, local=local, tag=tag)
    if local is not None:
        local.register(key, settings["method"], settings, shift.gap_)
    else:
        store.alignments.register(key, settings["method"], settings, shift.gap_, tag=tag, replace=partial is not None)
    return AlignmentResult(key, src.image.key, src.text.key, shift.dim_, src.rows, shift.n_fit_rows_,
                           float(np.linalg.norm(shift.gap_)), False, settings)


def _find_existing(store, settings: dict[str, Any], rows: int) -> AlignmentResult | None:
    """A registered alignment with these settings that is complete (parameters, or all its rows)."""
    from .aligned_reads import has_members, is_on_read
    from .transform_store import has_state

    for rec in _matching(store, settings):
        s = rec.settings
        dim = int(s["dim"])
        if is_on_read(rec):
            complete = int(s.get("n_rows", -1)) == rows and has_members(store, s["members"]) \
                and has_state(store, rec.alignment_key)
        else:
            complete = [_count(store, s[f"{m}_model_key"], m, dim, settings["dataset"], rec.alignment_key)
                        for m in ("image", "text")] == [rows, rows]
        if complete:
            return AlignmentResult(rec.alignment_key, s["image_model_key"], s["text_model_key"], dim, rows,
                                   int(s.get("n_fit_rows", 0)), float(np.linalg.norm(rec.gap)), True, s)
    return None


def _matching(store, settings: dict[str, Any]) -> list[Any]:
    """Registered alignments whose settings include ``settings``."""
    return [rec for rec in store.alignments()
            if rec.method == settings["method"] and all(rec.settings.get(k) == v for k, v in settings.items())]


def _count(store, model_key: str, modality: str, dim: int, dataset: str, key: str) -> int:
    from .schema import embeddings_table

    table = embeddings_table(model_key, modality, dim)
    if not store.has_table(table):
        return 0
    return store.open_table(table).count_rows(all_of(eq("dataset", dataset), eq("alignment_key", key)))


def aligned(store, dataset: str, alignment_key: str, modality: str, *,
            split: str | Sequence[str] | None = None, split_by: str | None = None) -> tuple[list[str], np.ndarray]:
    """The aligned vectors of one modality as ``(sample_ids, matrix)``.

    ``alignment_key="none"`` is not accepted here: read unaligned vectors
    with :meth:`Store.embeddings`.
    """
    if alignment_key == NO_ALIGNMENT:
        raise InputError("aligned(): pass a real alignment key; unaligned vectors come from Store.embeddings")
    rec = store.alignment(alignment_key)
    s = rec.settings
    return store.embeddings(dataset, s[f"{modality}_model_key"], modality, alignment_key=alignment_key,
                            split=split, split_by=split_by, dim=int(s["dim"]), as_="numpy")
