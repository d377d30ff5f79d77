"""The whole method in one call: :func:`run_demo`, the Python side of ``embedstore demo``.

Pipeline, each step an existing public function:

1. data: a HAM10000 folder (``root``), any manifest folder, or, without
   ``root``, a generated SYNTHETIC set (:func:`embedstore.synthetic.make_synthetic`)
   under ``out``;
2. :func:`embedstore.ingest.ingest`;
3. :func:`embedstore.extract.extract` of images and texts with the offline
   encoders (only what is not stored yet is computed);
4. :func:`embedstore.trainers.train.train` of early and late fusion and the image-only
   and text-only baselines (honest protocol, several seeds);
5. :func:`embedstore.diagnostics.gap_diagnostics` before and after
   alignment (λ=1);
6. a λ sweep (:func:`embedstore.trainers.sweep.sweep`);
7. :func:`embedstore.trainers.demo_predict.predict_held_back`: a handful of held-back
   (test) samples predicted with the stored early-fusion heads (read only);
8. :func:`embedstore.report.write_report`, one self-contained HTML file.

Everything is cached in the store: a second run computes no embedding and
retrains no head whose inputs are unchanged (baselines are recorded under a
group id that hashes the setting and the training inputs; sweeps resume by
their own id). When nothing at all changed (the store's commits, the data
files, the code, the options: :mod:`embedstore.trainers.demo_cache`), the second run
reuses every result and the written report outright and says so; after a
partial change it skips the ingest checks when the data files and samples
table are unchanged, and the report is rewritten only when its inputs
changed. Each run appends its duration and embedding counts to
``<out>/demo-history.json``, so the next run can say how it compares with
the first one.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from embedstore.keys import stable_hash

from .demo_data import QUICK_N, SYNTHETIC_N, _data, _real_banner, dataset_name, detect_kind, plan  # noqa: F401
from .demo_predict import predict_held_back

#: Seeds per setting and λ grid of a full / quick demo.
SEEDS, QUICK_SEEDS = 3, 2
LAMBDAS, QUICK_LAMBDAS = "-1:1:0.2", "-1,-0.5,0,0.5,1"
FUSIONS = ("early", "late", "image", "text", "linear")
HISTORY = "demo-history.json"
SYNTHETIC_BANNER = ("SYNTHETIC DATA: generated shapes and made-up metadata-like text, not patients. These numbers "
                    "show that the pipeline works end to end; they say nothing about any clinical task.")
_LABELS = {"early": "early fusion", "late": "late fusion", "image": "image only", "text": "text only",
           "linear": "linear probe"}


@dataclass
class DemoResult:
    """What :func:`run_demo` did.

    Attributes
    ----------
    report : str
        Path of the HTML report.
    rows : list of dict
        The results table: one row per setting (mean ± sd of test metrics).
    store : str
        Store URI.
    dataset, kind, root : str
        Dataset name in the store, its adapter and where the data was read.
    synthetic, quick : bool
    seconds : float
        Wall time of the whole run.
    timings : dict
        Seconds per stage (data, ingest, extract, train, gap, sweep, report).
    computed, reused, forward_calls : int
        Embeddings computed now, embeddings taken from the store (already
        stored, or copied from identical content), model forward calls.
    extract : list of dict
        The same counts per model and modality.
    gap : dict
        Headline gap numbers before and after alignment.
    sweeps : list of dict
        Per sweep: id, fusion, selected λ and its test scores.
    trained, reused_groups : list of str
        Run groups trained by this run / taken from earlier runs.
    skipped : int
        Samples the ingest left out (see ``embedstore ingest`` for the list).
    first_run : dict or None
        The first demo run on this store and dataset recorded in ``out``
        (``seconds``, ``computed``, ...), when this is not it.
    predictions : list of dict
        A handful of held-back (test) samples predicted with the early
        fusion heads (:mod:`embedstore.trainers.demo_predict`).
    ingest_reused : bool
        The ingest checks were skipped: the data files and the samples table
        were as the previous run left them.
    reused_run : str or None
        When nothing changed since an earlier run: when that run finished
        (every result and the report are its own, nothing was recomputed).
    busy : str or None
        A note that the machine was busy (:func:`embedstore.cpu.busy_note`).
    """

    report: str
    rows: list[dict[str, Any]]
    store: str
    dataset: str
    kind: str
    root: str
    synthetic: bool
    quick: bool
    seconds: float
    timings: dict[str, float]
    computed: int
    reused: int
    forward_calls: int
    extract: list[dict[str, Any]] = field(default_factory=list)
    gap: dict[str, Any] = field(default_factory=dict)
    sweeps: list[dict[str, Any]] = field(default_factory=list)
    trained: list[str] = field(default_factory=list)
    reused_groups: list[str] = field(default_factory=list)
    skipped: int = 0
    first_run: dict[str, Any] | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    ingest_reused: bool = False
    reused_run: str | None = None
    busy: str | None = None

    @property
    def all_cached(self) -> bool:
        """True when no embedding had to be computed (no model forward at all)."""
        return self.computed == 0 and self.forward_calls == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**asdict(self), "all_cached": self.all_cached}


def run_demo(store, *, root: str | Path | None = None, out: str | Path = "embedstore-demo", quick: bool = False,
             image_model: str = "builtin:efficientnet-lite0", text_model: str = "builtin:minilm-l6",
             samples: int | None = None, progress: bool = True,
             echo: Callable[[str], None] | None = None) -> DemoResult:
    """Run the whole method on ``root`` (or on generated synthetic data) and write the HTML report.

    Parameters
    ----------
    store : embedstore.Store
    root : path, optional
        A HAM10000 folder (``HAM10000_metadata.csv`` + images) or a manifest
        folder (``sample_id, image, label, text[, group]`` columns). Without
        it a SYNTHETIC dataset is generated under ``out``.
    out : path
        Folder of the report, the synthetic data and ``demo-history.json``.
    quick : bool
        Fewer synthetic samples (160 instead of 400), seeds (2 instead of 3)
        and λ values (5 instead of 11), one sweep instead of two.
    image_model, text_model : str
        Encoder ids (any id ``embedstore extract`` accepts).
    samples : int, optional
        Synthetic samples (overrides the default of the mode).
    progress : bool
        Progress bars and stage lines on stderr.
    echo : callable, optional
        Receives the stage lines (default: print to stderr when ``progress``).

    Returns
    -------
    DemoResult

    Examples
    --------
    >>> res = run_demo(Store(), quick=True)  # doctest: +SKIP
    >>> res.report, res.all_cached  # doctest: +SKIP
    ('embedstore-demo/synthetic-demo-160-report.html', False)
    """
    from embedstore.cpu import busy_note

    from . import demo_cache

    t_start = time.perf_counter()
    say = echo or ((lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    busy = busy_note()
    if busy:
        say(f"[demo] {busy}")
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    kind, data_root, dataset, options, synthetic = plan(root, out, quick, samples)
    run_options = {"root": str(Path(root).resolve()) if root is not None else None, "quick": quick,
                   "image_model": image_model, "text_model": text_model, "samples": samples,
                   "out": str(out.resolve())}
    with clock("check"):
        entry = demo_cache.recall(out, store, dataset, data_root, run_options)
    if entry is not None:
        say(f"[demo] nothing changed since the run that finished {entry['finished_at']} (the same store commits, "
            "data files, code and options): its results and report are reused, nothing is recomputed")
        return _reused(entry, out, t_start, timings, busy)
    from embedstore.extract import extract
    from embedstore.ingest import ingest

    with clock("data"):
        kind, data_root, dataset, options, synthetic = _data(root, out, quick, samples, say)
    with clock("ingest"):
        skipped: list = []
        ingest_reused = demo_cache.ingest_unchanged(out, store, dataset, data_root, run_options)
        if ingest_reused:
            say(f"[ingest] {data_root}: the data files and the samples table are as the last run left them; "
                "ingest checks reused")
        else:
            say(f"[ingest] {kind} from {data_root} as dataset '{dataset}'")
            ing = ingest(store, kind, data_root, name=dataset, progress=progress, **options)
            skipped = ing.skipped
            if skipped:
                say(f"[ingest] skipped {len(skipped)} sample(s), e.g. {skipped[0].sample_id}: "
                    f"{skipped[0].reason}")
        ingest_state = demo_cache.ingest_state(store, dataset, data_root)
    counts, keys = [], {}
    with clock("extract"):
        total = store.samples(dataset, columns=["sample_id"]).num_rows
        for modality, model in (("image", image_model), ("text", text_model)):
            say(f"[extract] {modality}s with {model}")
            rep = extract(store, dataset, model, modality=modality, progress=progress)
            r = rep.result(modality)
            cached = max(total - r.computed - r.reused - len(r.skipped), 0)
            counts.append({"model": model, "model_key": rep.model_key, "modality": modality, "computed": r.computed,
                           "copied": r.reused, "cached": cached, "skipped": len(r.skipped),
                           "forward_calls": r.forward_calls, "seconds": round(rep.load_seconds + r.seconds, 2)})
            keys[modality] = rep.model_key
    analysis = analyse(store, dataset, image_model=keys["image"], text_model=keys["text"], out=out, quick=quick,
                       banner=SYNTHETIC_BANNER if synthetic else _real_banner(kind, data_root),
                       progress=progress, echo=say, timings=timings)
    seconds = time.perf_counter() - t_start
    timings["total"] = round(seconds, 2)
    result = DemoResult(
        report=analysis["report"], rows=analysis["rows"], store=store.uri, dataset=dataset, kind=kind,
        root=str(data_root), synthetic=synthetic, quick=quick, seconds=round(seconds, 2), timings=timings,
        computed=sum(c["computed"] for c in counts), reused=sum(c["copied"] + c["cached"] for c in counts),
        forward_calls=sum(c["forward_calls"] for c in counts), extract=counts, gap=analysis["gap"],
        sweeps=analysis["sweeps"], trained=analysis["trained"], reused_groups=analysis["reused_groups"],
        skipped=len(skipped), predictions=analysis["predictions"], busy=busy, ingest_reused=ingest_reused)
    result.first_run = _record_history(out / HISTORY, result)
    if skipped:  # the ingest runs again next time, so skipped samples are reported again
        ingest_state = {}
    demo_cache.remember(out, store, dataset, data_root, run_options, result.to_dict(), ingest_state)
    return result


def _reused(entry: dict[str, Any], out: Path, t_start: float, timings: dict[str, float],
            busy: str | None) -> DemoResult:
    """The result of the earlier run ``entry``, as this run (which recomputed nothing) reports it."""
    fields = {k: v for k, v in entry["result"].items() if k in DemoResult.__dataclass_fields__}
    result = DemoResult(**fields)
    result.reused = result.computed + result.reused
    result.computed = result.forward_calls = 0
    result.reused_groups = list(result.trained) + list(result.reused_groups)
    result.trained = []
    for sw in result.sweeps:
        sw["reused"], sw["trained"] = sorted(set(sw.get("reused", [])) | set(sw.get("trained", []))), []
    result.extract = [dict(c, cached=c["computed"] + c["copied"] + c["cached"], computed=0, copied=0,
                           forward_calls=0, seconds=0.0) for c in result.extract]
    seconds = time.perf_counter() - t_start
    timings["total"] = round(seconds, 2)
    result.seconds, result.timings = round(seconds, 2), timings
    result.reused_run, result.busy, result.first_run = entry["finished_at"], busy, None
    result.first_run = _record_history(out / HISTORY, result)
    return result


def analyse(store, dataset: str, *, image_model: str, text_model: str, out: str | Path, quick: bool = False,
            split_by: str | None = None, banner: str | None = None, progress: bool = True,
            echo: Callable[[str], None] | None = None,
            timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Steps 4-7 of the demo on a dataset whose embeddings are stored: train, gap, sweep, report.

    Returns a dict with ``report`` (path), ``rows`` (results table), ``gap``,
    ``sweeps``, ``trained`` and ``reused_groups`` (run group ids).

    Examples
    --------
    >>> import tempfile
    >>> from embedstore import Store
    >>> from embedstore.pairs import toy_pairs
    >>> d = tempfile.mkdtemp()
    >>> s = Store(d + "/s")
    >>> img, txt = toy_pairs(s, "toy", n=40)
    >>> res = analyse(s, "toy", image_model=img, text_model=txt, out=d, quick=True)  # doctest: +SKIP
    >>> [r["setting"] for r in res["rows"]][:4]  # doctest: +SKIP
    ['early fusion', 'late fusion', 'image only', 'text only']
    """
    from embedstore.diagnostics import gap_diagnostics
    from embedstore.report import write_report

    from .sweep import sweep

    say = echo or (lambda m: None)
    clock = _Clock(timings if timings is not None else {})
    seeds = list(range(QUICK_SEEDS if quick else SEEDS))
    rows, groups, trained, reused = [], [], [], []
    with clock("train"):
        for fusion in FUSIONS:
            records, gid, was_cached = _baseline(store, dataset, fusion, image_model, text_model, seeds, split_by)
            (reused if was_cached else trained).append(gid)
            groups.append(gid)
            row = {"setting": _LABELS[fusion], "alignment": "none", "seeds": len(records),
                   **_scores(records), "group": gid}
            rows.append(row)
            say(f"[train] {row['setting']:<12} test macro-F1 {row['test macro-F1']}"
                + ("  (recorded earlier, inputs unchanged)" if was_cached else ""))
    with clock("gap"):
        rep = gap_diagnostics(store, dataset, image_model=image_model, text_model=text_model, lam=1.0,
                              split_by=split_by)
        gap = {"gap_norm": [rep.before.gap_norm, rep.after.gap_norm],
               "centroid_cosine": [rep.before.centroid_cosine, rep.after.centroid_cosine],
               "paired_cosine_median": [rep.before.paired_cosine["median"], rep.after.paired_cosine["median"]],
               "recall@1 image→text": [rep.before.recall_image_to_text[1], rep.after.recall_image_to_text[1]],
               "alignment_key": rep.after.alignment_key, "rows": rep.before.rows}
        say(f"[gap] ||mean(image) - mean(text)||: {gap['gap_norm'][0]:.3f} before, {gap['gap_norm'][1]:.3f} "
            "after alignment (λ=1)")
    sweeps = []
    with clock("sweep"):
        for fusion in (("early",) if quick else ("early", "late")):
            res = sweep(store, dataset, image_model=image_model, text_model=text_model, fusion=fusion,
                        lambdas=QUICK_LAMBDAS if quick else LAMBDAS, mode="honest", seeds=seeds, split_by=split_by,
                        progress=progress)
            sel = res.selection
            vs0 = _against_lam0(store, res)
            sweeps.append({"sweep_id": res.sweep_id, "fusion": fusion, "lam": sel["lam"], "trained": res.trained,
                           "reused": res.reused, "test_acc": sel["test_acc"], "test_f1": sel["test_f1"],
                           "vs_lam0": vs0})
            groups.append(res.sweep_id)
            rows.append({"setting": _LABELS[fusion], "alignment": f"gap shift λ={sel['lam']:+.1f} (val-chosen)",
                         "seeds": len(res.seeds),
                         "test accuracy": f"{sel['test_acc']:.3f} ± {sel['test_acc_sd']:.3f}",
                         "test macro-F1": f"{sel['test_f1']:.3f} ± {sel['test_f1_sd']:.3f}", "group": res.sweep_id})
            say(f"[sweep] {fusion} fusion over λ: {len(res.trained)} λ trained, {len(res.reused)} reused; "
                f"λ={sel['lam']:+.1f} chosen on validation")
            say(f"[sweep] {fusion}: {vs0['claim']}")
    with clock("predict"):
        held = predict_held_back(store, dataset, groups[0])  # early fusion heads: read only (demo_predict)
    with clock("report"):
        path = Path(out) / f"{dataset}-report.html"
        write_report(store, dataset, path, runs=groups, gap_report=rep, banner=banner, predictions=held)
        say(f"[report] {path}")
    return {"report": str(path), "rows": rows, "gap": gap, "sweeps": sweeps, "trained": trained,
            "reused_groups": reused, "predictions": held["rows"]}


def _baseline(store, dataset: str, fusion: str, image_model: str, text_model: str, seeds: list[int],
              split_by: str | None) -> tuple[list, str, bool]:
    """Train (or take the recorded runs of) one baseline; ``(records, group_id, was_recorded)``.

    The group id hashes the setting and the training inputs: every sample's
    id, label, split and input hashes plus the two model keys (a model key
    and an input hash determine the stored vector), so recorded seeds are
    reused exactly when a new run would read the same data.
    """
    from embedstore.data import HASH_COLUMN
    from embedstore.refs import lookup_model

    from .protocol import resolve_protocol
    from .scaling import DEFAULT_SCALE
    from .seed_runs import recorded_seeds
    from .train import train

    idents = {"image": lookup_model(store, image_model, "image"), "text": lookup_model(store, text_model, "text")}
    split = store.split_column(dataset, split_by)
    cols = ["sample_id", "label", split, HASH_COLUMN["image"], HASH_COLUMN["text"]]
    inputs = sorted(zip(*(store.samples(dataset, columns=cols)[c].to_pylist() for c in cols)), key=lambda r: r[0])
    settings = {"dataset": dataset, "fusion": fusion, "protocol": resolve_protocol("honest").to_dict(), "split": split,
                "scale": DEFAULT_SCALE,
                "image": idents["image"].key, "text": idents["text"].key, "inputs": stable_hash(inputs)}
    gid = "demo-" + stable_hash(settings, 12)
    records, trained = recorded_seeds(
        store, dataset, gid, seeds, lambda missing: train(
            store, dataset, image_model=idents["image"].key, text_model=idents["text"].key, fusion=fusion,
            mode="honest", split_by=split_by, seeds=missing, group_id=gid, record=True))
    return records, gid, not trained


def _against_lam0(store, res) -> dict[str, Any]:
    """The gap-shift effect stated honestly: the chosen λ against the sweep's own λ=0 row, paired, with a 95% CI.

    λ=0 trains on the same L2-normalised vectors without a shift, so the
    difference is the shift's effect alone (the unaligned baselines differ
    in their inputs too).
    """
    from embedstore.compare import compare_settings

    lam = res.selection["lam"]
    base = next((p for p in res.points if abs(p.lam) < 1e-12), None)
    if base is None:
        return {"claim": "the λ grid has no 0: add 0 to compare the shift with no shift"}
    if abs(lam) < 1e-12:
        return {"lam": 0.0, "claim": "validation chose λ=0: no gap shift is better than none here"}
    pick = next(p for p in res.points if p.lam == lam)
    cmp = compare_settings(store, pick.group_id, base.group_id)
    return {"lam": lam, **cmp.to_dict(),
            "claim": f"gap shift λ={lam:+.1f} vs the sweep's own λ=0: test macro-F1 {cmp.difference:+.3f} "
                     f"(95% CI {cmp.low:+.3f} to {cmp.high:+.3f}): {cmp.verdict}"}


def _scores(records: list) -> dict[str, str]:
    from .metrics import summarize

    out = {}
    for name, metric in (("test accuracy", "accuracy"), ("test macro-F1", "macro_f1")):
        mean, sd = summarize([r.metrics.get(metric) for r in records])
        out[name] = f"{mean:.3f} ± {sd:.3f}"
    return out


def _record_history(path: Path, result: DemoResult) -> dict[str, Any] | None:
    """Append this run to ``path``; return the first earlier run on the same store and dataset."""
    try:
        history = json.loads(path.read_text()) if path.is_file() else []
    except (OSError, ValueError):
        history = []
    first = next((h for h in history if h.get("store") == result.store and h.get("dataset") == result.dataset), None)
    history.append({"started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - result.seconds)),
                    "store": result.store, "dataset": result.dataset, "quick": result.quick,
                    "seconds": result.seconds, "computed": result.computed, "reused": result.reused,
                    "forward_calls": result.forward_calls, "timings": result.timings})
    path.write_text(json.dumps(history, indent=1))
    return first


class _Clock:
    """``with clock("stage"):`` adds the stage's wall seconds to ``timings``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, stage: str) -> "_Clock":
        self.stage = stage
        return self

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.timings[self.stage] = round(self.timings.get(self.stage, 0.0) + time.perf_counter() - self.t0, 2)
