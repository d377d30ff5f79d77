"""The demo's last step: predict a handful of held-back samples with the trained heads.

"Held back" means the honest split's **test** rows: no head saw them in
fitting, epoch selection or λ selection. :func:`predict_held_back` applies
the stored heads of one baseline group (every seed; mean probability, as
``embedstore predict --ensemble``) through :func:`embedstore.trainers.predict.predict`
with ``write=False``, so the demo only reads: no table is written and none
of its numbers change. The rows go to the report's "Predictions" section.
"""

from __future__ import annotations

from typing import Any

from embedstore.errors import NotFoundError

#: Held-back samples shown by the demo.
HELD_BACK_N = 8


def pick_held_back(ids: list[str], labels: list[str | None], n: int = HELD_BACK_N) -> list[str]:
    """Up to ``n`` ids, one per label in turn (sorted labels, sorted ids), so every class shows.

    Examples
    --------
    >>> pick_held_back(["a", "b", "c", "d"], ["x", "x", "y", "y"], n=3)
    ['a', 'c', 'b']
    """
    by_label: dict[str, list[str]] = {}
    for sid, lab in sorted(zip(ids, labels), key=lambda p: p[0]):
        by_label.setdefault("" if lab is None else str(lab), []).append(sid)
    queues = [by_label[k] for k in sorted(by_label)]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def predict_held_back(store, dataset: str, group_id: str, *, n: int = HELD_BACK_N) -> dict[str, Any]:
    """Predict ``n`` test-split samples of ``dataset`` with the heads of run group ``group_id``.

    Returns
    -------
    dict
        ``title``, ``note`` and ``rows`` (``sample``, ``image_ref``, ``true label``,
        ``predicted``, ``probability``); no rows and a note saying why when
        the group has no stored head (runs recorded before heads were kept).

    Examples
    --------
    >>> held = predict_held_back(store, "ham10000-dev270", "demo-0123abcd")  # doctest: +SKIP
    >>> [(r["true label"], r["predicted"]) for r in held["rows"]][:2]  # doctest: +SKIP
    """
    from embedstore.runs import list_runs

    from .predict import predict

    runs = list_runs(store, dataset, group_id=group_id)
    title = "Predictions on held-back samples"
    if not runs:
        return {"title": title, "note": f"no run in group {group_id}", "rows": []}
    try:
        res = predict(store, dataset, runs[0].run_id, ensemble=True, write=False)
    except NotFoundError as exc:
        return {"title": title, "note": f"not shown: {exc}", "rows": []}
    split = runs[0].split or store.split_column(dataset)
    test = store.samples(dataset, split="test", split_by=split, columns=["sample_id", "label", "image_ref"])
    truth = dict(zip(test["sample_id"].to_pylist(), test["label"].to_pylist()))
    refs = dict(zip(test["sample_id"].to_pylist(), test["image_ref"].to_pylist()))
    pos = {s: i for i, s in enumerate(res.sample_ids)}
    avail = [s for s in truth if s in pos]
    rows = []
    for sid in pick_held_back(avail, [truth[s] for s in avail], n):
        p = res.proba[pos[sid]]
        rows.append({"sample": sid, "image_ref": refs[sid], "true label": truth[sid],
                     "predicted": res.labels[pos[sid]], "probability": round(float(p.max()), 3)})
    note = (f"{len(rows)} of the {len(avail)} test-split samples (held back: never used to fit a head, choose an "
            f"epoch or a λ), one per class in turn, predicted with the {len(res.head_ids)} stored heads of "
            f"{runs[0].fusion} fusion group {group_id} (mean probability over seeds, as 'embedstore predict "
            f"--ensemble'). Probability is that of the predicted label. Nothing is written.")
    return {"title": title, "note": note, "rows": rows, "run_id": runs[0].run_id}
