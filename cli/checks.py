"""``embedstore check``, ``drift`` and ``explore``: thin wrappers over embedstore.datacheck and trainers.checks."""

from __future__ import annotations

from typing import Any

import click

from .common import command, emit, get_store, table


def _f(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def check_text(rep, top: int) -> str:
    """The text of ``embedstore check`` (counts, then the top suspects of each kind)."""
    c = rep.counts
    head = (f"check {rep.check_id} of '{rep.dataset}' "
            + ("(reused: nothing changed since it was recorded, nothing computed)" if rep.cached else "(computed)")
            + f"\nmodels: {', '.join(f'{m} {i}' for m, i in sorted(rep.models.items())) or '(none)'}; "
            f"versions: {', '.join(f'{t}@{v}' for t, v in sorted(rep.table_versions.items()))}")
    counts = [{"finding": "rows", "n": c["rows"]},
              {"finding": "exact duplicate groups (across splits)",
               "n": f"{c['exact_duplicate_groups']} ({c['exact_duplicate_leaks']})"},
              {"finding": "near-duplicate pairs (across splits)",
               "n": f"{c['near_duplicate_pairs']} ({c['near_duplicate_leaks']})"},
              {"finding": "groups in two splits", "n": c["group_leaks"]},
              {"finding": "label issues (cleanlab)", "n": c["label_issues"]},
              {"finding": "shortcut columns", "n": c["shortcuts"]}]
    parts = [head, "", table(counts, ["finding", "n"])]
    for modality, t in sorted(rep.thresholds.items()):
        parts.append(f"near-duplicate threshold ({modality}): scaled distance < {t['threshold']:.3f} "
                     f"({t.get('source')}; intrinsic dimension {_f(t.get('intrinsic_dim'), 1)}, k={t.get('k')}, "
                     f"{t.get('dims')} whitened components)")
    leaks = sorted(rep.near_duplicates, key=lambda p: (not p["leak_columns"], p["scaled"]))[:top]
    if leaks:
        parts += ["", "near-duplicates (leaks first):",
                  table([{"a": p["a"], "b": p["b"], "scaled": _f(p["scaled"]), "distance": _f(p["distance"]),
                          "across": ",".join(p["leak_columns"]) or "-"} for p in leaks])]
    if rep.exact_duplicates:
        parts += ["", "exact duplicates (same content hash):",
                  table([{"samples": " ".join(e["sample_ids"]), "across": ",".join(e["leak_columns"]) or "-"}
                         for e in rep.exact_duplicates[:top]])]
    if rep.group_leaks:
        parts += ["", "groups in two splits:",
                  table([{"split": g["split_column"], "group": g["group"],
                          "splits": ", ".join(f"{s} {n}" for s, n in g["splits"].items())}
                         for g in rep.group_leaks[:top]])]
    if rep.label_ranking:
        parts += ["", f"most suspect labels ({c['label_issues']} flagged by cleanlab):",
                  table([{"rank": r["rank"], "sample": r["sample_id"], "given": r["given"],
                          "suggested": r["suggested"], "p(given)": _f(r["quality"]),
                          "flagged": "yes" if r["issue"] else ""} for r in rep.suspects(top)])]
    warned = [s for s in rep.shortcuts if s["shortcut"]]
    for s in warned:
        rule = s.get("rule") or {}
        where = " It is in the prompt: the text vectors carry it." if s["in_prompt"] else ""
        parts.append(f"WARNING: column '{s['column']}' predicts the label on its own: {s['column']}="
                     f"{rule.get('value')} -> {rule.get('label')} in {_f(rule.get('precision'), 2)} of "
                     f"{rule.get('support')} rows (class share {_f(rule.get('class_share'), 2)}); balanced "
                     f"accuracy {_f(s.get('balanced_accuracy'), 2)} vs chance {_f(s.get('chance'), 2)}.{where}")
    parts += [f"note: {n}" for n in rep.notes]
    return "\n".join(parts)


@command()
@click.argument("dataset")
@click.option("--image-model", default=None, help="Image model id or model_key (default: the only one).")
@click.option("--text-model", default=None, help="Text model id or model_key (default: the only one).")
@click.option("--head", type=click.Choice(["linear", "early", "late", "image", "text"]), default="linear",
              show_default=True, help="Model of the out-of-fold probabilities behind label issues.")
@click.option("--folds", "k", type=int, default=5, show_default=True, help="Grouped folds of those probabilities.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-labels", is_flag=True, help="Skip label issues (the slowest part).")
@click.option("--threshold", type=float, default=None,
              help="Near-duplicate cut on the scaled distance (default: calibrated per model and dataset).")
@click.option("--duplicates-on", "duplicates_on", type=click.Choice(["image", "text"]), multiple=True,
              help="Modality searched for duplicates (default image; text for a text-only dataset).")
@click.option("--group-column", "group_columns", multiple=True, default=("group_id",), show_default=True,
              help="Column whose values must not cross splits (repeatable).")
@click.option("--top", type=int, default=10, show_default=True, help="Suspects shown of each kind.")
@click.option("--recompute", is_flag=True, help="Compute again even when nothing changed.")
def check(ctx, store_uri, storage_options, as_json, dataset, image_model, text_model, head, k, seed, no_labels,
          threshold, duplicates_on, group_columns, top, recompute):
    """Duplicates and leaks, group leaks, label issues and shortcut columns of DATASET.

    Reads the stored vectors at their current versions; the findings are
    recorded, so a second run with nothing changed computes nothing, and
    'embedstore runs' marks the runs trained on flagged rows.

    \b
    Examples:
      embedstore check ham10000
      embedstore check ham10000 --head late --json
    """
    from embedstore.trainers.checks import check as check_api

    rep = check_api(get_store(ctx, store_uri, storage_options), dataset, head=head, k=k, seed=seed,
                    label_issues=not no_labels, image_model=image_model, text_model=text_model, threshold=threshold,
                    duplicates_on=list(duplicates_on) or None, group_columns=tuple(group_columns),
                    recompute=recompute, progress=not as_json)
    emit(ctx, rep.to_dict(), lambda: check_text(rep, top))


def drift_text(rep) -> str:
    """The text of ``embedstore drift``."""
    what = (f"datasets '{rep.a}' and '{rep.b}'" if rep.by is None
            else f"{rep.by}={rep.a} and {rep.by}={rep.b} of '{rep.dataset}'")
    rows = []
    for r in rep.results:
        c, m = r["domain_classifier"], r["mmd"]
        rows.append({"modality": r["modality"], "model": r["model_id"], "rows": "/".join(map(str, c["rows"])),
                     "AUC [95%]": f"{c['auc']:.3f} [{c['auc_interval'][0]:.3f}, {c['auc_interval'][1]:.3f}]",
                     "perm p": _f(c.get("p_value")), "no-drift AUCs": "-" if "null_interval" not in c else
                     f"{c['null_interval'][0]:.3f}-{c['null_interval'][1]:.3f}",
                     "MMD2": f"{m['mmd2']:.4f}", "MMD p": _f(m["p_value"]),
                     "drift": "DRIFT" if r["drift"] else "no"})
    parts = [f"drift {rep.check_id}: {what} " + ("(reused: nothing computed)" if rep.cached else "(computed)"),
             "", table(rows)]
    for r in rep.results:
        if r["classes"]:
            parts += ["", f"per-class centroid shift ({r['modality']} {r['model_id']}):",
                      table([{"label": x["label"], "rows": "/".join(map(str, x["rows"])), "shift": _f(x["shift"]),
                              "perm p": _f(x["p_value"])} for x in r["classes"]])]
    parts += ["", f"drift when the AUC interval is above 0.55; versions: "
              + ", ".join(f"{t}@{v}" for t, v in sorted(rep.table_versions.items()))]
    parts += [f"note: {n}" for n in rep.notes]
    return "\n".join(parts)


@command()
@click.argument("a")
@click.argument("b")
@click.option("--dataset", default=None, help="With --by: the dataset whose column splits the rows.")
@click.option("--by", default=None, help="Compare the rows whose COLUMN is A with those where it is B.")
@click.option("--image-model", default=None, help="Only this image model (default: every model on both sides).")
@click.option("--text-model", default=None, help="Only this text model.")
@click.option("--modality", "modalities", type=click.Choice(["image", "text"]), multiple=True,
              help="Only this modality (repeatable).")
@click.option("--permutations", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--recompute", is_flag=True, help="Compute again even when nothing changed.")
def drift(ctx, store_uri, storage_options, as_json, a, b, dataset, by, image_model, text_model, modalities,
          permutations, seed, recompute):
    """Do datasets A and B (or values A and B of a column) differ? Per modality and model.

    \b
    Examples:
      embedstore drift clinic-a clinic-b
      embedstore drift train test --dataset ham10000 --by split_grouped
    """
    from embedstore.datacheck.drift import drift as drift_api

    rep = drift_api(get_store(ctx, store_uri, storage_options), a, b, dataset=dataset, by=by,
                    image_model=image_model, text_model=text_model, modalities=list(modalities) or None,
                    permutations=permutations, seed=seed, recompute=recompute)
    emit(ctx, rep.to_dict(), lambda: drift_text(rep))


@command()
@click.argument("dataset")
@click.option("--modality", type=click.Choice(["image", "text"]), default=None,
              help="Whose vectors are mapped (default: image when there are image vectors).")
@click.option("--model", default=None, help="Model id or model_key (default: the only one of that modality).")
@click.option("--run", "run_id", default=None, help="Show this run's predictions (from 'embedstore predict').")
@click.option("--layout", "layout_method", type=click.Choice(["umap", "tsne", "pca"]), default="umap",
              show_default=True, help="2-D layout (computed once, kept in the store).")
@click.option("--no-thumbnails", is_flag=True, help="Leave the image thumbnails out.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5055, show_default=True)
def explore(ctx, store_uri, storage_options, as_json, dataset, modality, model, run_id, layout_method,
            no_thumbnails, host, port):
    """Open DATASET's vectors as a map in embedding-atlas (labels, splits, predictions, check flags).

    Needs the explore extra: pip install 'embedstore[explore]'.

    \b
    Examples:
      embedstore check ham10000 && embedstore explore ham10000
      embedstore explore ham10000 --run run-20260101-abcdef --port 8000
    """
    from embedstore.datacheck.explore import atlas_frame, require_atlas, serve

    require_atlas()
    data = atlas_frame(get_store(ctx, store_uri, storage_options), dataset, modality=modality, model=model,
                       run_id=run_id, layout_method=layout_method, thumbnails=not no_thumbnails)

    def ready(url: str) -> None:
        info = {"url": url, "dataset": dataset, "rows": len(data.frame), "modality": data.modality,
                "model": data.model.model_id, "check_id": data.check_id}
        emit(ctx, info, f"embedding-atlas: {url} ({len(data.frame)} {data.modality} vectors of "
                        f"{data.model.model_id}; check {data.check_id or 'none: run embedstore check first'}); "
                        "Ctrl-C stops it")

    serve(data, host=host, port=port, ready=ready)
