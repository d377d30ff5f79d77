"""``explore``: a dataset's stored vectors as a map in apple's embedding-atlas, with labels, splits and flags.

:func:`atlas_frame` builds one row per sample with a current vector:
``x``/``y`` (a 2-D layout of the vectors), ``neighbors`` (its 15 nearest
samples by cosine, so a click on a suspect shows its neighbours),
``thumbnail`` (a small JPEG as a data URI), ``label``, every split column,
the group, the predictions of a chosen run (``predicted``, ``p_predicted``,
read from ``predictions__<dataset>``, written by ``embedstore predict``)
and the flags of the latest ``check`` (``flags``, ``label_quality``,
``suggested``, ``near_duplicate_of``). :func:`serve` hands it to
embedding-atlas's server on ``127.0.0.1``.

The layout is computed once per dataset, model, table versions and method
and kept in the ``checks`` table (kind ``layout``), so opening the map again
costs no projection. ``umap`` is embedding-atlas's own projection (UMAP; its
first run in a process compiles for tens of seconds), ``tsne`` is
scikit-learn's t-SNE and ``pca`` the first two principal components
(instant, for a quick look and for tests).

embedding-atlas is an optional extra: ``pip install 'embedstore[explore]'``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, MissingDependencyError, NotFoundError
from ..identity import ModelIdentity
from .records import CheckRecord, check_key, find_record, latest_check, save_record

EXTRA = "embedstore[explore]"
LAYOUTS = ("umap", "tsne", "pca")
NEIGHBOURS = 15
THUMB = 64
#: Flag reason -> its yes/no column in the map (one histogram each in embedding-atlas).
FLAG_COLUMNS = {"label issue": "label_issue", "near-duplicate leak": "near_duplicate_leak",
                "near-duplicate": "near_duplicate", "exact duplicate leak": "exact_duplicate_leak",
                "exact duplicate": "exact_duplicate", "group leak": "group_leak"}


def require_atlas() -> None:
    """Raise a one-line :class:`MissingDependencyError` naming the extra when embedding-atlas is missing."""
    try:
        import embedding_atlas  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"embedding-atlas is not installed: pip install '{EXTRA}'") from None


def layout(x: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """A 2-D layout ``(n, 2)`` of the rows of ``x`` by ``method`` (see the module docstring)."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float32)
    if method not in LAYOUTS:
        raise InputError(f"layout={method!r}: use one of {', '.join(LAYOUTS)}")
    if len(x) < 3:
        return np.zeros((len(x), 2), dtype=np.float32)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)
    reduced = PCA(min(50, x.shape[1], len(x) - 1), random_state=seed).fit_transform(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        return TSNE(2, init="pca", random_state=seed, perplexity=perplexity, metric="cosine").fit_transform(
            reduced).astype(np.float32)
    import umap

    return umap.UMAP(n_neighbors=min(NEIGHBOURS, len(x) - 1), metric="cosine", random_state=seed).fit_transform(
        reduced).astype(np.float32)


def stored_layout(store, dataset: str, ids: list[str], x: np.ndarray, versions: dict[str, int],
                  settings: dict[str, Any]) -> np.ndarray:
    """:func:`layout`, computed once per dataset, table versions and settings and kept in the ``checks`` table."""
    key = check_key("layout", dataset, versions, settings)
    found = find_record(store, key)
    if found is not None and found.result.get("ids") == ids:
        return np.asarray(found.result["xy"], dtype=np.float32)
    xy = layout(x, settings["layout"], settings["seed"])
    save_record(store, CheckRecord(key, "layout", dataset, versions, settings,
                                   {"ids": ids, "xy": np.round(xy.astype(np.float64), 5).tolist()}))
    return xy


def thumbnail_uri(ref: str | None, size: int = THUMB) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail of an image reference (``None`` when unreadable)."""
    if not ref:
        return None
    from ..images import load_image

    try:
        img = load_image(ref)
    except (InputError, OSError):
        return None
    img = img.convert("RGB")
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def check_columns(record: CheckRecord | None, ids: list[str]) -> dict[str, list[Any]]:
    """Per-row columns of a check record: ``flags``, one yes/no column per kind of flag
    (:data:`FLAG_COLUMNS`), ``label_quality``, ``suggested``, ``suspect_rank``, ``near_duplicate_of``."""
    n = len(ids)
    cols: dict[str, list[Any]] = {"flags": [""] * n, **{c: ["no"] * n for c in FLAG_COLUMNS.values()},
                                  "label_quality": [None] * n, "suggested": [None] * n, "suspect_rank": [None] * n,
                                  "near_duplicate_of": [""] * n}
    if record is None:
        return cols
    where = {s: i for i, s in enumerate(ids)}
    for sid, info in record.flagged.items():
        if sid in where:
            names = sorted({r.split(":")[0] for r in info["reasons"]})
            cols["flags"][where[sid]] = ", ".join(names)
            for name in names:
                cols[FLAG_COLUMNS[name]][where[sid]] = "yes"
    for r in record.result.get("label_ranking", []):
        i = where.get(r["sample_id"])
        if i is not None:
            cols["label_quality"][i], cols["suggested"][i], cols["suspect_rank"][i] = (
                r["quality"], r["suggested"], r["rank"])
    for p in record.result.get("near_duplicates", []):
        for a, b in ((p["a"], p["b"]), (p["b"], p["a"])):
            if a in where:
                i = where[a]
                cols["near_duplicate_of"][i] = " ".join(filter(None, [cols["near_duplicate_of"][i], b]))
    return cols


def run_predictions(store, dataset: str, run_id: str) -> dict[str, tuple[str, float]]:
    """``{sample_id: (predicted label, its probability)}`` of ``run_id`` from ``predictions__<dataset>``."""
    from ..sql import eq

    table = f"predictions__{dataset}"
    rows = store.read(table, where=eq("run_id", run_id)).to_pylist() if store.has_table(table) else []
    if not rows:
        raise NotFoundError(f"no predictions of run '{run_id}' for dataset '{dataset}': run "
                            f"'embedstore predict {dataset} --run {run_id}' first")
    out: dict[str, tuple[str, float]] = {}
    for r in sorted(rows, key=lambda r: r["head_id"].startswith("ensemble:")):
        if r["sample_id"] not in out:
            probs = r["probabilities"] or []
            out[r["sample_id"]] = (r["predicted_label"], float(max(probs)) if probs else float("nan"))
    return out


@dataclass
class AtlasData:
    """What :func:`serve` shows: the frame and how embedding-atlas should read it."""

    frame: Any  # pandas.DataFrame
    dataset: str
    modality: str
    model: ModelIdentity
    check_id: str | None
    versions: dict[str, int]


def atlas_frame(store, dataset: str, *, modality: str | None = None, model: str | ModelIdentity | None = None,
                run_id: str | None = None, layout_method: str = "umap", thumbnails: bool = True,
                versions: dict[str, int] | None = None, seed: int = 0) -> AtlasData:
    """The table embedding-atlas shows for ``dataset`` (see the module docstring).

    Parameters
    ----------
    store : Store
    dataset : str
    modality : {"image", "text"}, optional
        Whose vectors are mapped (default: image when the dataset has image vectors).
    model : str or ModelIdentity, optional
        Default: the only model of that modality with vectors of the dataset.
    run_id : str, optional
        Add that run's predictions (from ``embedstore predict``).
    layout_method : {"umap", "tsne", "pca"}
    thumbnails : bool
        Embed a small JPEG per row (image datasets).
    """
    import pandas as pd

    from .duplicates import knn
    from .inputs import pick_models, read_check_data, snapshots

    from .inputs import dataset_models

    if modality is None:
        if model is not None:
            modality = "image" if "image" in store.models.identity(model).modalities else "text"
        else:
            modality = "image" if dataset_models(store, dataset, "image") else "text"
    models = pick_models(store, dataset, **{f"{modality}_model": model}, modalities=[modality])
    if modality not in models:
        raise NotFoundError(f"dataset '{dataset}' has no {modality} vectors: run "
                            f"'embedstore extract {dataset} --modality {modality}' first")
    snaps = snapshots(store, dataset, models, versions)
    data = read_check_data(snaps, dataset)
    pos = data.positions[modality]
    vec = data.vectors[modality]
    rows = data.rows.take(pos)
    ids = [str(s) for s in rows["sample_id"].to_pylist()]
    settings = {"layout": layout_method, "seed": seed, "modality": modality, "model": models[modality].key}
    xy = stored_layout(store, dataset, ids, vec, data.versions, settings)
    unit = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    nn_idx, nn_dist = knn(unit.astype(np.float32), min(NEIGHBOURS, max(1, len(ids) - 1)))
    frame = {"sample_id": ids, "x": xy[:, 0], "y": xy[:, 1]}
    for col in ["label", *sorted(c for c in rows.column_names if c.startswith(("split_", "label_"))), "group_id"]:
        if col in rows.column_names:
            frame[col] = [None if v is None else str(v) for v in rows[col].to_pylist()]
    record = latest_check(store, dataset)
    frame.update(check_columns(record, ids))
    if run_id is not None:
        preds = run_predictions(store, dataset, run_id)
        frame["predicted"] = [preds.get(s, (None, None))[0] for s in ids]
        frame["p_predicted"] = [preds.get(s, (None, None))[1] for s in ids]
    texts = rows["text"].to_pylist() if "text" in rows.column_names else [None] * len(ids)
    frame["description"] = [" · ".join(filter(None, [s, f"label {frame['label'][i]}" if "label" in frame else "",
                                                      frame["flags"][i], t])) for i, (s, t) in enumerate(zip(ids, texts))]
    if thumbnails and "image_ref" in rows.column_names:
        frame["thumbnail"] = [thumbnail_uri(r) for r in rows["image_ref"].to_pylist()]
    df = pd.DataFrame(frame)
    df["neighbors"] = [{"ids": nn_idx[i].tolist(), "distances": nn_dist[i].astype(float).tolist()}
                       for i in range(len(ids))]
    return AtlasData(df, dataset, modality, models[modality], record.check_id if record else None, data.versions)


def make_app(data: AtlasData):
    """The embedding-atlas web app (a FastAPI application) over ``data``."""
    require_atlas()
    from pathlib import Path

    import embedding_atlas
    from embedding_atlas.data_source import DataSource
    from embedding_atlas.options import make_embedding_atlas_props
    from embedding_atlas.server import make_server

    from ..keys import stable_hash

    df = data.frame.copy()
    df["__row_index__"] = range(len(df))
    props = make_embedding_atlas_props(row_id="__row_index__", x="x", y="y", neighbors="neighbors",
                                       text="description",
                                       image="thumbnail" if "thumbnail" in df.columns else None)
    ident = stable_hash({"dataset": data.dataset, "model": data.model.key, "versions": data.versions,
                         "check": data.check_id, "columns": list(df.columns), "rows": len(df)})
    source = DataSource(f"embedstore-{ident}", df, {"props": props})
    static = (Path(embedding_atlas.__file__).parent / "static").resolve().as_posix()
    return make_server(source, static_path=static, duckdb_uri="server")


def serve(data: AtlasData, *, host: str = "127.0.0.1", port: int = 5055, ready=None) -> None:
    """Serve the map at ``http://host:port/`` until interrupted (``ready(url)`` is called once it listens)."""
    import logging

    import uvicorn

    app = make_app(data)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level=logging.ERROR)
    server = uvicorn.Server(config)
    if ready is not None:
        import threading

        def announce() -> None:
            import time

            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                ready(f"http://{host}:{port}/")

        threading.Thread(target=announce, daemon=True).start()
    server.run()
