"""Upgrading alignments stored as rows (earlier versions, up to 3795f98) to parameters computed when read.

Earlier versions (up to commit 3795f98) stored every alignment as full copies of both modalities in
the embeddings tables (the text stretched to the aligned width). This
release reads such a store as it is: :class:`~embedstore.snapshot.Snapshot`
reads those rows. :func:`convert_alignments` (run by ``embedstore
upgrade``) turns each of them into what a new alignment is
(:mod:`embedstore.aligned_reads`), without recomputing any embedding:

1. the sample list is the stored rows' sample ids and content hashes, in
   the order they were fitted (sorted ids, as :func:`~embedstore.pairs.paired_sources`);
2. the fitted transform is the stored one (mapped methods), or for the mean
   shift the gap refitted on the same unaligned rows (the registry keeps it
   only in float32), checked against the registered gap;
3. every aligned row the transform gives from the unaligned vectors is
   compared with the stored row: only when all agree within float32
   rounding are the parameters stored, the registry row updated
   (``storage: on_read``, ``converted_from_rows``) and the stored rows
   deleted from the latest version of their tables (one commit per table).

Older versions keep their rows: a run recorded before the upgrade pinned
them and re-reads them exactly (``rerun`` is identical), and ``cleanup``
frees them once nothing pins them. An alignment whose unaligned vectors
changed or are gone, or whose fitted transform was kept pickled, stays
stored as rows, with the reason in :attr:`Conversion.reason`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .formats import ToDict
from .sql import all_of, eq

#: Largest difference accepted between a stored aligned value and the one computed when read
#: (aligned vectors are unit vectors: a few float32 units in the last place of 1.0).
TOLERANCE = 4 * float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Conversion(ToDict):
    """Outcome of converting one alignment.

    Attributes
    ----------
    alignment_key, method : str
    converted : bool
        True when it is now computed when read (or already was).
    rows_removed : int
        Stored aligned rows deleted from the latest versions.
    max_difference : float
        Largest ``|stored - computed|`` over every value checked.
    reason : str
        Why it was not converted (empty when it was).
    """

    alignment_key: str
    method: str
    converted: bool
    rows_removed: int = 0
    max_difference: float = 0.0
    reason: str = ""


def stored_as_rows(store) -> list:
    """Registered alignments whose rows are stored (made by earlier versions)."""
    from .aligned_reads import is_on_read

    return [rec for rec in store.alignments() if not is_on_read(rec)]


def convert_alignments(store, *, dry_run: bool = False) -> list[Conversion]:
    """Convert every alignment stored as rows (see the module docstring); ``dry_run`` checks without writing."""
    if not dry_run:
        store._check_writable()
    return [convert(store, rec, dry_run=dry_run) for rec in stored_as_rows(store)]


def _stored_rows(store, rec, modality: str):
    import pyarrow.compute as pc

    from .schema import embeddings_table

    s = rec.settings
    table = embeddings_table(s[f"{modality}_model_key"], modality, int(s["dim"]))
    if not store.has_table(table):
        return table, None
    rows = store.read(table, columns=["sample_id", "content_sha256", "vector"],
                      where=all_of(eq("dataset", s["dataset"]), eq("alignment_key", rec.alignment_key)))
    return table, rows.take(pc.sort_indices(rows["sample_id"]))


def convert(store, rec, *, dry_run: bool = False) -> Conversion:
    """Convert one alignment stored as rows; nothing is written unless every row is reproduced."""
    from .aligned_reads import ON_READ, members_of, save_members
    from .pairs import PairedSources, paired_sources
    from .retries import with_retries
    from .transform_store import has_state, load_transform, save_state
    from .vectors import vectors_of

    s = dict(rec.settings)
    key, method = rec.alignment_key, rec.method

    def refuse(reason: str, diff: float = 0.0) -> Conversion:
        return Conversion(key, method, False, 0, diff, reason)

    tables, stored = {}, {}
    for m in ("image", "text"):
        tables[m], stored[m] = _stored_rows(store, rec, m)
        if stored[m] is None or stored[m].num_rows == 0:
            return refuse(f"no stored {m} rows")
    ids = stored["image"]["sample_id"].to_pylist()
    if ids != stored["text"]["sample_id"].to_pylist():
        return refuse("its image and text rows cover different samples (an interrupted alignment): "
                      "re-run 'embedstore align' with its settings")
    try:
        src = paired_sources(store, s["dataset"], s["image_model_key"], s["text_model_key"],
                             split_by=s.get("split_column"))
    except Exception as exc:  # NotFoundError/InputError: the unaligned vectors are gone
        return refuse(f"its unaligned vectors cannot be read ({str(exc).splitlines()[0][:120]})")
    at = {sid: i for i, sid in enumerate(src.ids)}
    hashes = {m: stored[m]["content_sha256"].to_pylist() for m in ("image", "text")}
    rows = [at.get(sid) for sid in ids]
    if any(r is None or src.image_hashes[r] != hashes["image"][i] or src.text_hashes[r] != hashes["text"][i]
           for i, r in enumerate(rows)):
        return refuse("the unaligned vectors it was computed from changed or are gone: kept as rows")
    take = np.asarray(rows, dtype=np.int64)
    fitted = PairedSources(ids=list(ids), image=src.image, text=src.text, image_vectors=src.image_vectors[take],
                           text_vectors=src.text_vectors[take], image_hashes=hashes["image"],
                           text_hashes=hashes["text"], labels=[src.labels[r] for r in rows],
                           splits=src.splits[take], split_column=src.split_column, versions=src.versions,
                           dataset=s["dataset"])
    if has_state(store, key):
        try:
            shift = load_transform(store, key)
        except Exception as exc:  # a pickled state (refused on load) or another scikit-learn
            return refuse(f"its fitted transform cannot be loaded ({str(exc)[:120]})")
    elif method == "gapshift":
        from .gapshift import GapShift

        params = {k: s[k] for k in ("lam", "noise_std", "seed", "match", "fit_on")}
        shift = GapShift(**params).fit(fitted.image_vectors, fitted.text_vectors, split=fitted.splits)
        if shift.n_fit_rows_ != int(s.get("n_fit_rows", shift.n_fit_rows_)) or \
                not np.allclose(shift.gap_, rec.gap, rtol=0, atol=1e-6):
            shift.gap_ = np.asarray(rec.gap, dtype=np.float64)  # the splits moved since: the registered gap
    else:
        return refuse("no fitted transform is stored for it: re-run 'embedstore align' with its settings")
    n = len(ids)
    diff = 0.0
    for m, x in (("image", fitted.image_vectors), ("text", fitted.text_vectors)):
        got = shift.transform_modality(x, m, rows=np.arange(n), n_rows=n)
        want = vectors_of(stored[m])
        if got.shape != want.shape:
            return refuse(f"computed {m} rows have shape {got.shape}, stored {want.shape}")
        diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - want))) if n else 0.0)
    if diff > TOLERANCE:
        return refuse(f"the rows computed when read differ from the stored ones by up to {diff:.2g}", diff)
    if dry_run:
        return Conversion(key, method, True, 2 * n, diff, "")
    members_id, members = members_of(fitted)
    save_members(store, members_id, members)
    if not has_state(store, key):
        save_state(store, key, shift)
    s.update(storage=ON_READ, members=members_id, n_rows=n, converted_from_rows=True)
    store.alignments.register(key, method, s, rec.gap, replace=True)
    removed = 0
    for m in ("image", "text"):
        where = all_of(eq("dataset", s["dataset"]), eq("alignment_key", key))
        with_retries(lambda t=tables[m]: store.db.open_table(t).delete(where))
        removed += stored[m].num_rows
    return Conversion(key, method, True, removed, diff, "")
