"""Alignments written exactly as ``main`` at 3795f98 wrote them, for upgrade tests.

That code stored every alignment as full copies of its aligned rows in the
embeddings tables (``emb__<modality>__<model_key>__<dim>`` under the
alignment's key, text stretched to the aligned width), registered the gap
first, and kept a fitted state only for the mapped methods. :func:`writing_as_main`
swaps :func:`embedstore.alignment_store.fit_and_store` for that writer
(``git show 3795f98:embedstore/alignment_store.py``, ``fit_and_store`` with
``transform_align.align_method``'s ``save_state``), frozen here. Everything
else (ingest, toy pairs, training, runs, tags) is the current code, which
reads such a store as it is, so the tables, versions, tags and run records
are what a lab's store written by that code holds.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pyarrow as pa


def fit_and_store_main(store, dataset, src, shift, settings, *, tag=None):
    """3795f98's ``fit_and_store``: register, then write both modalities' aligned rows."""
    from embedstore.alignment_store import AlignmentResult, _count, _matching, alignment_key_of
    from embedstore.store import new_run_tag
    from embedstore.transform_align import TRANSFORM_STATES, TRANSFORM_STATES_SCHEMA
    from embedstore.transform_state import FORMAT, dump_state

    for rec in _matching(store, settings):
        s = rec.settings
        dim = int(s["dim"])
        have = [_count(store, s[f"{m}_model_key"], m, dim, settings["dataset"], rec.alignment_key)
                for m in ("image", "text")]
        if have == [src.rows, src.rows]:
            return AlignmentResult(rec.alignment_key, s["image_model_key"], s["text_model_key"], dim, src.rows,
                                   int(s.get("n_fit_rows", 0)), float(np.linalg.norm(rec.gap)), True, s)
    partial = next(iter(_matching(store, settings)), None)
    if partial is None:
        settings["source_versions"] = src.versions
        key = alignment_key_of(settings)
    else:
        key, settings = partial.alignment_key, dict(partial.settings)
    shift.fit(src.image_vectors, src.text_vectors, split=src.splits)
    img, txt = shift.transform(src.image_vectors, src.text_vectors)
    settings["dim"] = shift.dim_
    settings["n_fit_rows"] = shift.n_fit_rows_
    tag = tag or new_run_tag("align")
    if settings["method"] != "gapshift":  # its align_method passed this as save_state
        meta, arrays = dump_state(shift)
        row = pa.table({"alignment_key": [key], "method": [settings["method"]], "format": [FORMAT], "meta": [meta],
                        "arrays": [arrays]}, schema=TRANSFORM_STATES_SCHEMA)
        store.upsert(TRANSFORM_STATES, row, key="alignment_key", schema=TRANSFORM_STATES_SCHEMA, tag=tag)
    store.register_alignment(key, settings["method"], settings, shift.gap_, tag=tag)
    store.write_embeddings(dataset, src.image, "image", src.ids, img, src.image_hashes,
                           alignment_key=key, dim=shift.dim_, tag=tag)
    store.write_embeddings(dataset, src.text, "text", src.ids, txt, src.text_hashes,
                           alignment_key=key, dim=shift.dim_, tag=tag)
    return AlignmentResult(key, src.image.key, src.text.key, shift.dim_, src.rows, shift.n_fit_rows_,
                           float(np.linalg.norm(shift.gap_)), False, settings)


@contextlib.contextmanager
def writing_as_main():
    """Within the block, alignments are written as 3795f98 wrote them (full aligned rows)."""
    import embedstore.alignment as alignment
    import embedstore.transform_align as transform_align

    saved = alignment.fit_and_store, transform_align.fit_and_store
    alignment.fit_and_store = transform_align.fit_and_store = fit_and_store_main
    try:
        yield
    finally:
        alignment.fit_and_store, transform_align.fit_and_store = saved
