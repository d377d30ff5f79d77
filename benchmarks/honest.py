"""Honest heads before and after issue 26, each against an independent scikit-learn baseline on the same folds.

For each dataset this trains every head with ``embedstore.trainers.train.train(..., cv=5)`` (grouped,
stratified 5-fold CV, split seed 0) twice, in subprocesses: once with the code **before** the change
(``--before-code``, a checkout of the base commit) and once with this tree (**after**). Every run reports its
fold's test sample ids and test predictions.

The **independent baseline** is computed here, by code that imports nothing of embedstore's heads:
``StandardScaler → LogisticRegression(class_weight="balanced")`` with ``C`` chosen by scikit-learn's
``GridSearchCV`` over 1e-5..1e2 (15 values) on an inner ``StratifiedGroupKFold(5)`` of each fold's training
rows (macro-F1, ``refit=True``), on the vectors exported from the store, for the **same folds** (the test
sample ids the runs report). Each head's difference from it is a paired percentile bootstrap over test rows
(the same resampled rows for both, per fold; 2,000 resamples), written out here too.

Datasets (real, from ``../shared/data``; ingested once with the offline ``builtin:`` encoders, EfficientNet-Lite0
1280-d image and MiniLM-L6 384-d text vectors with main's default backends):

* ``dev1000``: 1,000 HAM10000 photos (one per lesion, 5 classes), leak-free ``default`` prompt;
* ``dev270``: 270 HAM10000 photos (one per lesion, 7 classes);
* ``retina5``: RetinaMNIST (1,600 fundus photos, DR grade 0-4), image only, each image its own group.

``--recipes`` instead measures MLP recipe alternatives on dev1000 with this tree's code (early and late
fusion; same folds), against the same independent baseline, and writes ``honest_recipes.md``.

Usage::

    git archive 3795f98 | tar -x -C /tmp/before          # the code before the change
    python benchmarks/honest.py --before-code /tmp/before --store /path/to/store
    python benchmarks/honest.py --recipes --store /path/to/store
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import machine, machine_md, md_table  # noqa: E402

IMAGE, TEXT = "builtin:efficientnet-lite0", "builtin:minilm-l6"
HEADS = {"dev1000": ("early", "late", "image", "text", "linear"), "dev270": ("early", "late", "image", "text", "linear"),
         "retina5": ("image", "linear")}
MODALITIES = {"early": ("text", "image"), "late": ("text", "image"), "linear": ("text", "image"), "image": ("image",),
              "text": ("text",)}
GRID = tuple(float(c) for c in np.logspace(-5, 2, 15))


def shared_data() -> Path:
    root = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", HERE.parents[1] / "shared" / "data"))
    if not root.is_dir():
        raise SystemExit(f"no shared data at {root}: set EMBEDSTORE_SHARED_DATA")
    return root


def cpu_line() -> str:
    """Which CPU the figures came from (model and the SIMD flags that change kernels)."""
    flags: set[str] = set()
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"CPU flags: {', '.join(shown) or 'none of avx2/avx512f/avx512_bf16/amx_tile'}"


# -- data --------------------------------------------------------------------------------------------------
def retina_manifest(out: Path) -> Path:
    """RetinaMNIST as PNG files + a manifest (grade, official split), written once."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.csv").exists():
        return out
    data = np.load(shared_data() / "retinamnist" / "retinamnist.npz")
    (out / "images").mkdir(exist_ok=True)
    rows = ["id,image,grade,referable,official_split"]
    for split in ("train", "val", "test"):
        for i, (img, y) in enumerate(zip(data[f"{split}_images"], data[f"{split}_labels"].reshape(-1))):
            sid = f"{split}{i:04d}"
            Image.fromarray(img).save(out / "images" / f"{sid}.png")
            rows.append(f"{sid},images/{sid}.png,{int(y)},{int(y >= 2)},{split}")
    (out / "manifest.csv").write_text("\n".join(rows) + "\n")
    return out


def prepare(store, datasets: list[str], work: Path) -> None:
    """Ingest and extract the datasets not yet in the store."""
    from embedstore.extract import extract
    from embedstore.ingest import ingest

    have = set(store.datasets())
    for ds in datasets:
        if ds in have:
            continue
        if ds.startswith("dev"):
            ingest(store, "ham10000", shared_data() / f"ham10000-{ds}", name=ds, progress=False)
            extract(store, ds, TEXT, modality="text", progress=False)
        else:
            ingest(store, "manifest", retina_manifest(work / "retina"), name=ds, manifest="manifest.csv",
                   label_column="grade", text_template="A fundus photograph.", progress=False)
        extract(store, ds, IMAGE, modality="image", progress=False)


def export(store, ds: str) -> dict[str, np.ndarray]:
    """The dataset's current vectors, labels and groups, by sample id (what the baseline reads)."""
    from embedstore.snapshot import Snapshot

    mods = ("image", "text") if ds.startswith("dev") else ("image",)
    snap = Snapshot(store, ds, image_model=IMAGE, **({"text_model": TEXT} if "text" in mods else {}))
    rows, vectors, _ = snap.current()
    meta = {r["sample_id"]: r for r in store.samples(ds, columns=["sample_id", "label", "group_id"]).to_pylist()}
    ids = rows["sample_id"].to_pylist()
    return {"ids": np.array(ids), "y": np.array([meta[i]["label"] for i in ids]),
            "groups": np.array([meta[i]["group_id"] or i for i in ids]), **{m: vectors[m] for m in mods}}


# -- the independent baseline (scikit-learn only) ---------------------------------------------------------------
def independent_baseline(x: np.ndarray, y: np.ndarray, groups: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    """GridSearchCV(StandardScaler → balanced LogisticRegression) on the other rows; predictions of ``test``."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    train = np.setdiff1d(np.arange(len(y)), test)
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=3000)),
                          {"logisticregression__C": list(GRID)}, scoring="f1_macro",
                          cv=StratifiedGroupKFold(5, shuffle=True, random_state=0), refit=True)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(x[train], y[train], groups=groups[train])
    return search.predict(x[test]), float(search.best_params_["logisticregression__C"])


def macro_f1(y: np.ndarray, pred: np.ndarray, labels: list) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))


def batch_f1(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 over ``k`` classes of each row of ``(B, n)`` label / prediction arrays (absent classes count 0)."""
    b = np.arange(len(y))[:, None]
    conf = np.bincount((b * k * k + y * k + pred).ravel(), minlength=len(y) * k * k).reshape(len(y), k, k)
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    denom = conf.sum(axis=1) + conf.sum(axis=2)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0).mean(axis=1)


def paired_interval(folds: list[tuple[np.ndarray, list[np.ndarray], np.ndarray]], k: int, n: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Mean over folds of macro-F1(head, mean over seeds) − macro-F1(baseline), with a paired bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    observed, boot = [], np.zeros(n)
    for y, preds, base in folds:
        idx = rng.integers(0, len(y), size=(n, len(y)))
        full = np.arange(len(y))[None]
        observed.append(np.mean([batch_f1(y[full], p[full], k)[0] for p in preds]) - batch_f1(y[full], base[full], k)[0])
        boot += np.mean([batch_f1(y[idx], p[idx], k) for p in preds], axis=0) - batch_f1(y[idx], base[idx], k)
    boot /= len(folds)
    low, high = np.quantile(boot, [0.025, 0.975])
    return float(np.mean(observed)), float(low), float(high)


# -- embedstore's heads, in a subprocess per code version ----------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    """Train every head of one dataset with the code on ``sys.path`` and dump its runs as JSON."""
    sys.path.insert(0, args.code)
    from embedstore import Store
    from embedstore.trainers.train import train

    store = Store(args.store)
    out = {"code": args.code, "dataset": args.dataset, "heads": {}}
    for head in args.heads.split(","):
        mods = MODALITIES[head] if args.dataset.startswith("dev") else ("image",)
        t0, c0 = time.perf_counter(), time.process_time()
        res = train(store, args.dataset, image_model=IMAGE if "image" in mods else None,
                    text_model=TEXT if "text" in mods else None, fusion=head, cv=5, record=False)
        out["heads"][head] = {
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "runs": [{"fold": r.cv["fold"], "seed": r.seed, "test": r.cv["test"], "pred": r.metrics["test_pred"],
                      "y": r.metrics["test_y"], "macro_f1": r.metrics["macro_f1"],
                      "selection": {k: v for k, v in r.selection.items() if k in ("chosen", "selected_epoch", "C")}}
                     for r in res.runs]}
        print(f"  [{Path(args.code).name}] {args.dataset} {head}: {res.mean['macro_f1']:.4f} ± {res.sd['macro_f1']:.4f} "
              f"({out['heads'][head]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(out))


def run_code(name: str, code: str, store: str, ds: str, heads: tuple[str, ...], work: Path) -> dict:
    """One code version's runs of ``ds`` (a worker subprocess; its JSON in ``work`` is reused when present)."""
    out = work / f"{name}-{ds}.json"
    if out.exists():
        print(f"  reusing {out}", flush=True)
        return json.loads(out.read_text())
    env = {**os.environ, "PYTHONPATH": code}
    subprocess.run([sys.executable, __file__, "--worker", "--code", code, "--store", store, "--dataset", ds,
                    "--heads", ",".join(heads), "--out", str(out)], check=True, env=env)
    return json.loads(out.read_text())


def summarise(ds: str, data: dict[str, np.ndarray], versions: dict[str, dict], work: Path) -> tuple[str, list[str]]:
    """The dataset's table: per head and version, macro-F1 mean ± sd over folds and the paired CI vs the baseline."""
    labels = sorted(set(data["y"]))
    pos = {s: i for i, s in enumerate(data["ids"])}
    first = next(iter(versions.values()))
    folds = {r["fold"]: np.array([pos[s] for s in r["test"]]) for r in next(iter(first["heads"].values()))["runs"]}
    for v in versions.values():  # every version and head ran on the same folds
        for h in v["heads"].values():
            for r in h["runs"]:
                assert np.array_equal(np.array([pos[s] for s in r["test"]]), folds[r["fold"]]), "folds differ"
    baselines: dict[tuple, dict[int, np.ndarray]] = {}
    rows, notes = [], []
    for mods in sorted({MODALITIES[h] if ds.startswith("dev") else ("image",) for h in HEADS[ds]}):
        x = np.concatenate([data[m] for m in mods], axis=1).astype(np.float64)
        cache = work / f"baseline-{ds}-{'+'.join(mods)}.json"
        if cache.exists():
            saved = json.loads(cache.read_text())
            preds, cs = {int(f): np.array(p) for f, p in saved["preds"].items()}, saved["C"]
        else:
            preds, cs = {}, []
            for f, test in folds.items():
                preds[f], c = independent_baseline(x, data["y"], data["groups"], test)
                cs.append(c)
            cache.write_text(json.dumps({"preds": {f: p.tolist() for f, p in preds.items()}, "C": cs}))
        baselines[mods] = preds
        f1 = [macro_f1(data["y"][folds[f]], preds[f], labels) for f in folds]
        rows.append([f"independent LR ({'+'.join(mods)})", "", f"{np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f}", "",
                     f"C chosen: {', '.join(f'{c:g}' for c in cs)}"])
    for head in HEADS[ds]:
        mods = MODALITIES[head] if ds.startswith("dev") else ("image",)
        for name, v in versions.items():
            runs = v["heads"][head]["runs"]
            f1 = [r["macro_f1"] for r in runs]
            per_fold = []
            for f, test in folds.items():
                rs = [r for r in runs if r["fold"] == f]
                y = np.array(rs[0]["y"])
                assert [labels[i] for i in y] == list(data["y"][test]), "class codes differ"
                per_fold.append((y, [np.array(r["pred"]) for r in rs],
                                 np.array([labels.index(p) for p in baselines[mods][f]])))
            d, lo, hi = paired_interval(per_fold, len(labels))
            rows.append([head, name, f"{np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f}",
                         f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]", f"{v['heads'][head]['seconds']:.0f} s wall, "
                         f"{v['heads'][head]['cpu_seconds']:.0f} s CPU"])
    return md_table(["head", "code", "macro-F1 (mean ± sd over 5 folds)", "head − independent LR [95% CI]", "note"],
                    rows), notes


#: MLP recipe alternatives tried on dev1000 (``--recipes``): name → train_arrays keywords.
RECIPES = {
    "epoch only (wd 0.01, dropout 0, lr 1e-3, ≤30 epochs)": {"search": {}},
    "+ dropout searched {0, 0.5}": {"search": {"dropout": (0.0, 0.5)}},
    "+ weight decay searched {0.01, 0.1, 1}": {"search": {"weight_decay": (0.01, 0.1, 1.0)}},
    "lr 3e-4, ≤60 epochs": {"search": {}, "lr": 3e-4, "epochs": 60},
    "hidden 512, dropout 0.5": {"search": {}, "hidden": (512,), "dropout": 0.5},
    "hidden 32": {"search": {}, "hidden": (32,)},
    "5-seed ensemble (mean logits)": {"search": {}, "seeds": 5},
}


def recipes(store, work: Path, out: str, heads: tuple[str, ...] = ("early", "late")) -> None:
    """MLP recipe alternatives on dev1000 (this tree's code) against the independent baseline, same folds."""
    sys.path.insert(0, str(HERE.parent))
    from embedstore.trainers.train import train_arrays

    data = export(store, "dev1000")
    labels = sorted(set(data["y"]))
    y = np.array([labels.index(v) for v in data["y"]])
    lines = ["# MLP recipe alternatives on ham10000-dev1000 (grouped 5-fold CV, the same folds for every row)", "",
             "`python benchmarks/honest.py --recipes`: every alternative is embedstore's honest head with this tree's "
             "code (selection by inner grouped 3-fold CV of each fold's training rows, then refit), through "
             "`train_arrays(..., cv=5)` on the vectors exported from the store; the independent baseline is "
             "scikit-learn's GridSearchCV(StandardScaler → balanced LogisticRegression) computed here on the same "
             "folds. Intervals: paired bootstrap over test rows (2,000 resamples).", "",
             machine_md(machine()), cpu_line(), ""]
    rows, base = [], None
    for name, kw in RECIPES.items():
        kw = dict(kw)
        seeds = kw.pop("seeds", 1)
        cells = [name]
        for head in heads:
            t0, c0 = time.perf_counter(), time.process_time()
            res = train_arrays(data["image"], data["text"], data["y"], None, fusion=head, cv=5, groups=data["groups"],
                               seeds=seeds, baseline=False, **kw)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            folds = sorted({r.cv["fold"] for r in res.runs})
            tests = {f: np.array([int(i) for i in next(r for r in res.runs if r.cv["fold"] == f).cv["test"]])
                     for f in folds}
            if base is None:  # the independent baseline of these folds (both modalities), once
                x = np.concatenate([data["text"], data["image"]], axis=1).astype(np.float64)
                base = {f: np.array([labels.index(p) for p in independent_baseline(x, data["y"], data["groups"],
                                                                                      tests[f])[0]]) for f in folds}
                f1 = [batch_f1(y[tests[f]][None], base[f][None], len(labels))[0] for f in folds]
                rows.append(["independent LR (text+image)", f"{np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f}", ""])
            per_fold = []
            for f in folds:
                runs = [r for r in res.runs if r.cv["fold"] == f]
                if seeds > 1:  # the ensemble: mean logits over seeds
                    logits = np.mean([np.asarray(r.metrics["test_logits"]) for r in runs], axis=0)
                    preds = [logits.argmax(axis=1)]
                else:
                    preds = [np.asarray(r.metrics["test_pred"]) for r in runs]
                per_fold.append((y[tests[f]], preds, base[f]))
            f1 = [batch_f1(t[None], p[0][None], len(labels))[0] for t, p, _ in per_fold]
            d, lo, hi = paired_interval(per_fold, len(labels))
            chosen = [r.selection["chosen"] for r in res.runs if r.seed == res.runs[0].seed]
            picks = ", ".join(sorted({f"ep {c['epoch']}" + (f" do {c['dropout']}" if "dropout" in kw.get("search", {})
                                                             else "") + (f" wd {c['weight_decay']}" if "weight_decay"
                                                                         in kw.get("search", {}) else "")
                                      for c in chosen}))
            cells.append(f"{np.mean(f1):.4f} ± {np.std(f1, ddof=1):.4f}; − LR {d:+.4f} [{lo:+.4f}, {hi:+.4f}]; "
                         f"{wall:.0f} s wall / {cpu:.0f} s CPU; chosen: {picks}")
            print(f"  {name} {head}: {cells[-1]}", flush=True)
        rows.append(cells)
    lines += [md_table(["recipe", *heads], rows), "", f"Load average at the end: {os.getloadavg()[0]:.2f}."]
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default=None, help="store URI (default: a temporary store)")
    ap.add_argument("--datasets", default="dev1000,dev270,retina5")
    ap.add_argument("--before-code", default=None, help="a checkout of the code before the change")
    ap.add_argument("--out", default=str(HERE / "results" / "honest.md"))
    ap.add_argument("--recipes", action="store_true", help="MLP recipe alternatives on dev1000 instead")
    ap.add_argument("--work", default=None, help="folder for the runs' JSON (reused when present) and retina PNGs")
    ap.add_argument("--only", default=None, help="run only these code versions now (before/after), e.g. before")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--code", default=str(HERE.parent), help=argparse.SUPPRESS)
    ap.add_argument("--dataset", help=argparse.SUPPRESS)
    ap.add_argument("--heads", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    sys.path.insert(0, str(HERE.parent))
    from embedstore import Store

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="embedstore-honest-"))
    work.mkdir(parents=True, exist_ok=True)
    store_uri = args.store or str(work / "store")
    store = Store(store_uri)
    datasets = [d for d in args.datasets.split(",") if d]
    if args.recipes:
        prepare(store, ["dev1000"], work)
        return recipes(store, work, str(Path(args.out).with_name("honest_recipes.md")))
    prepare(store, datasets, work)
    codes = {"before": args.before_code, "after": str(HERE.parent)} if args.before_code else {"after": str(HERE.parent)}
    if args.only:  # collect one version's runs now (the table is written when both are there)
        for ds in datasets:
            for name in args.only.split(","):
                run_code(name, codes[name], store_uri, ds, HEADS[ds], work)
        return
    lines = ["# Honest heads before and after issue 26, against an independent scikit-learn baseline", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "", machine_md(machine()), cpu_line(), ""]
    for ds in datasets:
        t0 = time.perf_counter()
        versions = {name: run_code(name, code, store_uri, ds, HEADS[ds], work) for name, code in codes.items()}
        table, notes = summarise(ds, export(store, ds), versions, work)
        print(f"\n{ds} ({time.perf_counter() - t0:.0f} s)\n{table}", flush=True)
        lines += [f"## {ds}", "", table, "", *notes]
    lines.append(f"Load average at the end: {os.getloadavg()[0]:.2f}.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
