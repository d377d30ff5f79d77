"""Plain words for recorded settings and protocols, as the report and the demo print them.

A reader should not need the store's vocabulary to read a result:
:func:`setting_name` says "early fusion, standardised inputs" where the run
record says ``fusion=early, scale={"image": "standard", "text": "standard"}``,
and :func:`protocol_text` says "5-fold grouped cross-validation" or "one
grouped split (split_grouped)". :func:`protocol_of` is the key that decides
which runs may be ranked together: runs evaluated on the same folds (or the
same split) with the same test rows. :func:`interval_text` clips an interval
to the metric's range.

Examples
--------
>>> from embedstore.runs import RunRecord
>>> rec = RunRecord("r", "toy", "early", "honest", 0, split="split_grouped",
...                 config={"scale": {"image": "standard", "text": "standard"}})
>>> setting_name([rec])
'early fusion, standardised inputs'
>>> interval_text(0.95, 0.84, 1.07)
'0.950 (0.840–1.000)'
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import numpy as np

from .runs import RunRecord

FUSIONS = {"early": "early fusion", "late": "late fusion", "image": "image only", "text": "text only",
           "linear": "linear probe", "concat": "early fusion"}
SCALES = {"standard": "standardised", "l2": "L2-normalised", "none": "unscaled"}
METHODS = {"gapshift": "gap shift", "center": "centring + gap shift", "standardize": "standardisation + gap shift",
           "whiten": "whitening + gap shift", "procrustes": "Procrustes map + gap shift", "cca": "CCA + gap shift"}


def alignment_name(recs: Sequence[RunRecord]) -> str | None:
    """``"gap shift λ=+1.0"`` (method and λ of the run's alignment), or ``None`` when unaligned."""
    first = recs[0]
    keys = {k for k in first.alignment_keys.values() if k and k != "none"}
    if not keys:
        return None
    rec = next(iter((first.config.get("alignments") or {}).values()), {})
    if "lam" not in rec:
        return "aligned (" + ", ".join(sorted(keys)) + ")"
    return f"{METHODS.get(rec.get('method', 'gapshift'), rec.get('method'))} λ={float(rec['lam']):+.1f}"


def inputs_name(recs: Sequence[RunRecord]) -> str:
    """How the head's inputs were scaled: ``"standardised inputs"``, ``"image standardised, text unscaled"``."""
    first = recs[0]
    scale = first.config.get("scale")
    if not isinstance(scale, dict) or not scale:
        scale = {m: "none" for m in (first.model_keys or {"image": 1, "text": 1})}
    used = [m for m in ("image", "text") if m in scale]
    words = {m: SCALES.get(str(scale[m]), str(scale[m])) for m in used}
    if len(set(words.values())) == 1:
        return f"{next(iter(words.values()))} inputs"
    return ", ".join(f"{m} {w}" for m, w in words.items())


def setting_name(recs: Sequence[RunRecord]) -> str:
    """Plain name of a setting (one group of runs): head, alignment, inputs, and the protocol when not honest.

    An aligned setting's vectors are L2-normalised by the alignment, so its
    inputs read "L2-normalised vectors" when no further scaling was fitted.
    """
    first = recs[0]
    head = FUSIONS.get(first.fusion, first.fusion)
    align = alignment_name(recs)
    inputs = inputs_name(recs)
    if align and inputs == "unscaled inputs":
        inputs = "L2-normalised vectors"
    parts = [head] + ([align] if align else []) + [inputs]
    if first.mode != "honest":
        parts.append(f"{first.mode} protocol")
    return ", ".join(parts)


def _pair_key(rec: RunRecord) -> tuple:
    from .compare import _pair_key as key  # the pairing rule of paired comparisons

    return key(rec)


def protocol_of(recs: Sequence[RunRecord]) -> tuple:
    """What a setting was evaluated on: its folds (or split) and the labels of their test rows.

    Two settings with the same key were tested on the same rows and may be
    ranked and compared with each other; no others.
    """
    folds = {}
    for rec in recs:
        y = rec.metrics.get("test_y")
        digest = hashlib.sha256(json.dumps(list(map(int, y)) if y is not None else None).encode()).hexdigest()[:16]
        folds[_pair_key(rec)] = digest
    return tuple(sorted(folds.items(), key=lambda kv: json.dumps(kv[0])))


def count_test_rows(recs: Sequence[RunRecord]) -> int:
    """Test rows of one setting, each counted once per fold (not once per seed)."""
    seen: dict[tuple, int] = {}
    for rec in recs:
        y = rec.metrics.get("test_y")
        if y is not None:
            seen[_pair_key(rec)] = len(y)
    return int(sum(seen.values()))


def protocol_text(recs: Sequence[RunRecord]) -> str:
    """``"5-fold grouped cross-validation × 1 repeat, 1 seed"`` or ``"one grouped split (split_grouped), 2 seeds"``."""
    first = recs[0]
    cv = first.config.get("cv")
    seeds = len({r.seed for r in recs})
    seed_txt = f"{seeds} seed{'s' if seeds != 1 else ''}"
    if cv:
        repeats = len({int(r.config["cv"].get("split_seed", 0)) for r in recs})
        return f"{cv['k']}-fold grouped cross-validation × {repeats} repeat{'s' if repeats != 1 else ''}, {seed_txt}"
    split = first.split or first.config.get("split_column") or "split"
    kind = {"split_grouped": "one grouped split", "split_paper": "the paper's split"}.get(split, "one split")
    return f"{kind} ({split}), {seed_txt}"


def runs_text(recs: Sequence[RunRecord]) -> str:
    """``"2 seeds"`` or ``"5 folds × 2 seeds"`` (× repeats when several)."""
    first = recs[0]
    seeds = len({r.seed for r in recs})
    seed_txt = f"{seeds} seed{'s' if seeds != 1 else ''}"
    cv = first.config.get("cv")
    if not cv:
        return seed_txt
    repeats = len({int(r.config["cv"].get("split_seed", 0)) for r in recs})
    return f"{cv['k']} folds × " + (f"{repeats} repeats × " if repeats > 1 else "") + seed_txt


def definition(recs: Sequence[RunRecord]) -> str:
    """A key of everything that defines a setting's training (not its seeds or group id).

    Two groups with the same definition and the same test predictions are
    one setting recorded twice (e.g. a baseline and a sweep's reference).
    """
    first = recs[0]
    cfg = first.config
    keep = {k: cfg.get(k) for k in ("scale", "head", "protocol", "tables", "alignment_keys", "split_column",
                                    "label_column")}
    cv = cfg.get("cv") or {}
    keep["cv"] = {k: cv.get(k) for k in ("k", "repeats", "cv_seed", "val_fraction")} if cv else None
    return json.dumps({"fusion": first.fusion, "mode": first.mode, **keep}, sort_keys=True, default=str)


def predictions_key(recs: Sequence[RunRecord]) -> str:
    """Hash of every run's (fold, seed, test predictions): equal keys mean identical results."""
    items = sorted((json.dumps(_pair_key(r)), int(r.seed), list(map(int, r.metrics.get("test_pred") or [])))
                   for r in recs)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def clip(value: float, low: float = 0.0, high: float = 1.0) -> float:
    """``value`` clipped to ``[low, high]``."""
    return float(np.clip(value, low, high))


def interval_text(mean: float, low: float, high: float, *, digits: int = 3, bounds: tuple[float, float] = (0.0, 1.0),
                  signed: bool = False) -> str:
    """``mean (low–high)`` with the interval clipped to ``bounds`` (a metric's range; differences: ±1)."""
    lo, hi = clip(low, *bounds), clip(high, *bounds)
    if signed:
        return f"{mean:+.{digits}f} ({lo:+.{digits}f} to {hi:+.{digits}f})"
    return f"{mean:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"
