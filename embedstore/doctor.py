"""``embedstore doctor``: check the invariants the rest of embedstore relies on.

:func:`doctor` reads every table once and returns a :class:`DoctorReport`
listing each problem (duplicate keys, vectors of unknown models or of the
wrong width, runs pointing at missing models or alignments, undeclared keys,
and with ``verify_files=True`` sample files changed on disk since ingest)
with a few example keys and the fix; it never writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .formats import ToDict
from .keys import NO_ALIGNMENT
from .data import HASH_COLUMN
from .schema import (ALIGNMENTS, EMB_KEY, MODELS, RUN_KEY, RUNS, SAMPLE_KEY, SAMPLES_PREFIX, key_column,
                     parse_embeddings_table, samples_table)

_EXAMPLES = 3


# -- doctor ----------------------------------------------------------------
@dataclass(frozen=True)
class Problem(ToDict):
    """One failed check.

    Attributes
    ----------
    check : str
        ``readable``, ``unique_keys``, ``embedding_has_sample`` (ghost rows),
        ``stale_embedding``, ``group_split``, ``model_registered``,
        ``alignment_registered``, ``table_consistency``, ``declared_key``,
        ``alignment_complete``, and with ``verify_files``: ``file_changed`` or
        ``file_missing``.
    table : str
    count : int
        Number of offending rows (or keys).
    message : str
        One line saying what is wrong and how to fix it.
    examples : tuple of str
    """

    check: str
    table: str
    count: int
    message: str
    examples: tuple[str, ...] = ()


@dataclass
class DoctorReport(ToDict):
    """Result of :func:`doctor`: the tables and rows checked and the problems found."""

    tables: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The report as plain values, with ``ok``."""
        return {**ToDict.to_dict(self), "ok": self.ok}

    def add(self, check: str, table: str, bad: list[str], what: str, fix: str) -> None:
        if bad:
            ex = tuple(str(b).replace("\x1f", "/") for b in bad[:_EXAMPLES])
            self.problems.append(Problem(check, table, len(bad), f"{table}: {len(bad)} {what} "
                                         f"(e.g. {', '.join(ex)}); {fix}", ex))

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        head = f"checked {self.tables} tables, {self.rows} rows: "
        if self.ok:
            return head + "no problems"
        return head + f"{len(self.problems)} problem(s)\n" + "\n".join(
            f"  [{p.check}] {p.message}" for p in self.problems)


def doctor(store, *, verify_files: bool = False) -> DoctorReport:
    """Check the store's invariants; problems are listed, never fixed.

    With ``verify_files`` every sample's image file is also read and hashed
    (:func:`embedstore.file_check.changed_files`): a file changed on disk
    since ingest (``file_changed``) or gone (``file_missing``) is reported
    per dataset with the fix. That costs one read of every image, so it is
    off by default; run it where the datasets' files are.

    Checks: every table reads at its latest version; keys are unique per
    table (fix: ``embedstore repair``); every keyed table declares its key
    as primary key (fix: ``embedstore upgrade``); every embedding row has
    its sample (else a ghost row); its content hash is the sample's current
    one (else stale); no group sits in two ``split_grouped`` values; every
    model key used by a table is in the model registry; every alignment key
    used is registered; each embedding row sits in the table of its own
    model and modality.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from embedstore import Store, ModelIdentity
    >>> s = Store(tempfile.mkdtemp() + "/s")
    >>> m = ModelIdentity("hf:toy", "w", ("image",), {"image": 2})
    >>> _ = s.write_embeddings("d", m, "image", ["a"], np.ones((1, 2)), ["h"])
    >>> rep = doctor(s)
    >>> (rep.ok, rep.problems[0].check)
    (False, 'embedding_has_sample')
    """
    import polars as pl

    report = DoctorReport()
    frames: dict[str, pl.DataFrame] = {}
    for name in store.list_tables():
        key = key_column(name)
        cols = _doctor_columns(name, key)
        try:
            tbl = store.open_table(name)
            have = set(tbl.schema.names)
            data = tbl.to_lance().to_table(columns=[c for c in cols if c in have])
        except Exception as exc:  # any failure to read is the problem being reported
            report.problems.append(Problem("readable", name, 1, f"{name}: cannot be read ({_first_line(exc)}); "
                                           "see 'embedstore versions' and restore a good version"))
            continue
        report.tables += 1
        report.rows += data.num_rows
        frame = pl.from_arrow(data) if data.num_columns else pl.DataFrame()
        frames[name] = frame
        if key and key in frame.columns:
            dup = frame.group_by(key).len().filter(pl.col("len") > 1).get_column(key).to_list()
            report.add("unique_keys", name, sorted(map(str, dup)), f"duplicate {key} value(s)",
                       "run 'embedstore repair' (keeps the newest row of each key, in one commit)")
    _check_embeddings(frames, report)
    _check_groups(frames, report)
    _check_runs(frames, report)
    from .upgrade import check_declared_keys
    from .aligned_reads import check_alignment_storage

    check_declared_keys(store, report)
    check_alignment_storage(store, report)
    if verify_files:
        _check_files(store, report)
    return report


def _check_files(store, report: DoctorReport) -> None:
    """``file_changed`` / ``file_missing``: sample files that are not the bytes ingest hashed."""
    from .file_check import changed_files

    found = changed_files(store)
    for dataset in dict.fromkeys(c.dataset for c in found):
        mine = [c for c in found if c.dataset == dataset]
        fix = f"re-ingest dataset '{dataset}' (embedstore ingest ... --name {dataset}), then extract"
        report.add("file_changed", samples_table(dataset), [f"{c.sample_id} {c.path}" for c in mine
                                                             if c.state == "changed"],
                   "image file(s) changed on disk since ingest (extract skips them; their stored vectors are "
                   "of the ingested bytes)", fix + ": the new files get new hashes and vectors")
        report.add("file_missing", samples_table(dataset), [f"{c.sample_id} {c.path}" for c in mine
                                                             if c.state == "missing"],
                   "image file(s) missing or unreadable", f"restore them, or {fix.split(',')[0]} with --prune "
                   "to drop those samples")


def _check_groups(frames: dict[str, Any], report: DoctorReport) -> None:
    """No group in two ``split_grouped`` values (see :mod:`embedstore.reingest`)."""
    from .reingest import split_conflicts

    for name, frame in frames.items():
        if name.startswith(SAMPLES_PREFIX) and {"group_id", "split_grouped"} <= set(frame.columns):
            bad = split_conflicts(frame.select("group_id", "split_grouped").to_arrow())
            report.add("group_split", name, [f"{g} in {'/'.join(v)}" for g, v in bad.items()],
                       "group(s) in more than one split_grouped value (a leak between splits)",
                       f"re-ingest the dataset (embedstore.ingest(..., name='{name[len(SAMPLES_PREFIX):]}')): "
                       "each group then gets one split")


def _doctor_columns(name: str, key: str | None) -> list[str]:
    if parse_embeddings_table(name):
        return [EMB_KEY, "dataset", "sample_id", "model_key", "modality", "alignment_key", "content_sha256"]
    if name.startswith(SAMPLES_PREFIX):
        return [SAMPLE_KEY, "image_sha256", "text_sha256", "group_id", "split_grouped"]
    if name == RUNS:
        return [RUN_KEY, "model_keys", "alignment_keys"]
    return [key] if key else []


def _registered(frames: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Model keys and alignment keys present in the registries."""
    models = set(frames[MODELS].get_column("model_key").to_list()) if MODELS in frames else set()
    aligns = set(frames[ALIGNMENTS].get_column("alignment_key").to_list()) if ALIGNMENTS in frames else set()
    return models, aligns


def _check_runs(frames: dict[str, Any], report: DoctorReport) -> None:
    """Model and alignment keys named by run records must be registered."""
    import json

    runs = frames.get(RUNS)
    if runs is None or not {"model_keys", "alignment_keys"} <= set(runs.columns):
        return
    models, aligns = _registered(frames)
    bad_models, bad_aligns = [], []
    for row in runs.iter_rows(named=True):
        used_m = set(json.loads(row["model_keys"] or "{}").values())
        used_a = set(json.loads(row["alignment_keys"] or "{}").values()) - {NO_ALIGNMENT}
        bad_models += [f"{row[RUN_KEY]}:{k}" for k in sorted(used_m - models)]
        bad_aligns += [f"{row[RUN_KEY]}:{k}" for k in sorted(used_a - aligns)]
    report.add("model_registered", RUNS, bad_models, "run model key(s) missing from the model registry",
               "the run cannot be re-executed; re-extract with that model")
    report.add("alignment_registered", RUNS, bad_aligns, "run alignment key(s) missing from the alignment "
               "registry", "the run cannot be re-executed; re-run 'embedstore gap'")


def _check_embeddings(frames: dict[str, Any], report: DoctorReport) -> None:
    import polars as pl

    models, aligns = _registered(frames)
    for name, frame in frames.items():
        parsed = parse_embeddings_table(name)
        if not parsed:
            continue
        modality, model_key, _dim = parsed
        used = {model_key} | set(frame.get_column("model_key").unique().to_list())
        report.add("model_registered", name, sorted(used - models), "model key(s) missing from the model registry",
                   "re-run 'embedstore extract' with that model (it registers it)")
        wrong = frame.filter((pl.col("model_key") != model_key) | (pl.col("modality") != modality))
        report.add("table_consistency", name, wrong.get_column(EMB_KEY).to_list(),
                   f"row(s) not of model {model_key} / modality {modality}",
                   "they were written to the wrong table; re-extract them")
        used_al = set(frame.get_column("alignment_key").unique().to_list()) - {NO_ALIGNMENT}
        report.add("alignment_registered", name, sorted(used_al - aligns), "alignment key(s) missing from the "
                   "alignment registry", "re-run 'embedstore gap' to re-fit and register them")
        for dataset in frame.get_column("dataset").unique().sort().to_list():
            rows = frame.filter(pl.col("dataset") == dataset)
            samples = frames.get(_samples_name(dataset))
            if samples is None:
                orphans = rows.get_column("sample_id").to_list()
            else:
                orphans = rows.join(samples.select(SAMPLE_KEY), on=SAMPLE_KEY, how="anti").get_column(
                    SAMPLE_KEY).to_list()
            report.add("embedding_has_sample", name, orphans, f"ghost embedding(s) of dataset '{dataset}' without a "
                       "sample (never read)", f"if those samples were removed by mistake, re-ingest dataset "
                       f"'{dataset}' or restore its samples table; otherwise nothing to do")
            if samples is not None and HASH_COLUMN[modality] in samples.columns:
                cur = samples.select(pl.col(SAMPLE_KEY), pl.col(HASH_COLUMN[modality]).alias("now"))
                stale = rows.join(cur, on=SAMPLE_KEY, how="inner").filter(pl.col("content_sha256") != pl.col("now"))
                report.add("stale_embedding", name, stale.get_column(EMB_KEY).to_list(),
                           f"stale embedding(s) of dataset '{dataset}' (content changed since; never read)",
                           f"re-run 'embedstore extract {dataset}' with model {model_key}, then re-run its "
                           "alignments ('embedstore gap')")


def _samples_name(dataset: str) -> str:
    try:
        return samples_table(dataset)
    except InputError:
        return SAMPLES_PREFIX + dataset


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
