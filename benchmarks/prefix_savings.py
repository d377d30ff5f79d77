"""Tokens that shared prompt prefixes save, per dataset template, with the LLaMA-2 tokenizer (no model, no timing).

For every built-in template of HAM10000, SatelliteBench and BRSET the
prompts are rendered by embedstore's own prompt code
(:mod:`embedstore.datasets.prompts` and each adapter's ``prompt_fields``),
tokenised as the ``gguf:`` extractor does (newlines to spaces, BOS first, at
most 512 tokens) with the LLaMA SentencePiece vocabulary, and planned as
``extract`` runs them: rows sorted by text, chunks of ``CHUNK_ROWS``, each
chunk packed by :func:`~embedstore.extractors.prefix_plan.plan_decode` into
decode calls of ``BATCH_TOKENS`` tokens. The ratio is tokens evaluated /
tokens in the prompts (one text per call and plain batching evaluate them
all: 1.00).

Data:

* HAM10000: the official metadata of ``../shared/data/ham10000`` (10,015
  rows) and ``ham10000-dev1000`` (1,000 rows);
* SatelliteBench: the 10 municipalities' socio-demographics of
  ``../shared/data/satellite-metadengue``, one prompt per city and week for
  the first 156 weeks of the study window (10 x 156 = 1,560, as the paper's set);
* BRSET: 16,266 rows of 8,524 patients with values drawn in the formats of
  BRSET's published ``labels.csv`` columns (age, sex, eye, comorbidities,
  diabetes time, insulin, anatomy and finding codes; see
  :func:`brset_rows`). BRSET itself is credentialed PhysioNet data, not on
  this machine: its frequencies here are illustrative, so its ratio is an
  estimate.

The LLaMA vocabulary is llama.cpp's vocab-only
``models/ggml-vocab-llama-spm.gguf``, shipped in the llama-cpp-python sdist
(``pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36``);
pass the ``.gguf`` or the sdist ``.tar.gz`` with ``--vocab``.

Usage::

    python benchmarks/prefix_savings.py --vocab llama_cpp_python-0.3.36.tar.gz
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tarfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = Path(os.environ.get("EMBEDSTORE_SHARED_DATA", REPO.parent / "shared" / "data"))
VOCAB_MEMBER = "vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf"
BRSET_IMAGES, BRSET_PATIENTS = 16_266, 8_524
WEEKS = 156  # SatelliteBench: weeks per city with an image in the paper's set (protocol 1.3)


def vocab_file(path: str | Path, workdir: Path) -> Path:
    """The LLaMA vocab GGUF: ``path`` itself, or extracted from a llama-cpp-python sdist into ``workdir``."""
    path = Path(path)
    if path.suffix == ".gguf":
        return path
    out = workdir / "ggml-vocab-llama-spm.gguf"
    if not out.is_file():
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(VOCAB_MEMBER)), None)
            if member is None:
                sys.exit(f"{path} has no {VOCAB_MEMBER}: pass llama-cpp-python's sdist or the .gguf itself")
            out.write_bytes(tar.extractfile(member).read())
    return out


def llama_tokenizer(vocab: Path, max_length: int = 512) -> Callable[[str], list[int]]:
    """Tokens as the ``gguf:`` extractor makes them: newlines to spaces, BOS first, truncated."""
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):
        llm = llama_cpp.Llama(str(vocab), vocab_only=True, verbose=False)

    def tokenize(text: str) -> list[int]:
        return llm.tokenize(text.replace("\r\n", " ").replace("\n", " ").encode("utf-8"), add_bos=True)[:max_length]

    return tokenize


# -- prompts, rendered by embedstore's own code --------------------------------------------------------
def ham_prompts(metadata: Path, template: str) -> list[str]:
    """One prompt per row of a HAM10000 metadata file."""
    from embedstore.datasets import ham10000 as ham
    from embedstore.datasets.prompts import resolve_prompt

    t = resolve_prompt("ham10000", template, ham.FIELDS)
    return [t.render(ham.prompt_fields(r)) for r in ham.read_metadata(metadata).iter_rows(named=True)]


def satellite_prompts(root: Path, template: str) -> list[str]:
    """One prompt per municipality and week, 156 weeks from the start of the study window (10 x 156 = 1,560)."""
    from embedstore.datasets import satellite as sat
    from embedstore.datasets.prompts import resolve_prompt

    t = resolve_prompt("satellitebench", template, sat.FIELDS)
    towns = sat.read_metadengue(root)
    day, dates = dt.date(2015, 11, 8), []
    while len(dates) < WEEKS:
        if sat.epiweek(day) > sat.WINDOW[0]:
            dates.append(day.isoformat())
        day += dt.timedelta(days=7)
    return [t.render({"city": town.name, "date": d, **{k: town.static.get(k, "No data reported") for k in sat.STATIC}})
            for town in towns.values() for d in dates]


def brset_rows(n_images: int = BRSET_IMAGES, n_patients: int = BRSET_PATIENTS, seed: int = 0) -> list[dict]:
    """Rows in the formats of BRSET's ``labels.csv``: patients with one to four photos (mostly one per eye).

    Per patient: sex (1/2), age (integer text, a few missing or with the
    'O' for '0' typo), comorbidities (empty, ``diabetes1``, ``SAH``,
    ``diabetes1, SAH``), diabetes time (empty, years, 'Não'), insulin
    (yes/no/empty). Per photo: eye (1/2), anatomy codes (1 normal / 2) and
    the eleven finding flags (0/1) at low rates.
    """
    rng = np.random.default_rng(seed)
    per = rng.choice([1, 2, 3, 4], size=n_patients, p=[0.2, 0.6, 0.05, 0.15])
    rows: list[dict] = []
    for p, k in enumerate(per):
        age = int(np.clip(rng.normal(57, 16), 5, 97))
        person = {"patient_id": str(p), "patient_sex": str(rng.choice([1, 2], p=[0.38, 0.62])),
                  "patient_age": rng.choice([str(age), "", str(age).replace("0", "O")], p=[0.95, 0.04, 0.01]),
                  "comorbidities": rng.choice(["", "diabetes1", "SAH", "diabetes1, SAH"], p=[0.55, 0.2, 0.1, 0.15]),
                  "diabetes_time_y": rng.choice(["", str(int(rng.integers(1, 31))), "Não"], p=[0.6, 0.35, 0.05]),
                  "insuline": rng.choice(["", "yes", "no"], p=[0.4, 0.25, 0.35])}
        for j in range(k):
            row = dict(person, exam_eye=str(1 + j % 2))
            for a in ("optic_disc", "vessels", "macula"):
                row[a] = str(rng.choice([1, 2], p=[0.9, 0.1]))
            for f, rate in (("macular_edema", 0.02), ("scar", 0.01), ("nevus", 0.005), ("amd", 0.01),
                            ("vascular_occlusion", 0.005), ("drusens", 0.05), ("hemorrhage", 0.04),
                            ("retinal_detachment", 0.002), ("myopic_fundus", 0.01), ("increased_cup_disc", 0.08),
                            ("other", 0.03)):
                row[f] = str(int(rng.random() < rate))
            rows.append(row)
    return rows[:n_images]


def brset_prompts(template: str, rows: Sequence[dict]) -> list[str]:
    """BRSET prompts of ``rows`` (empty cells are missing values, as ``read_csv`` gives them)."""
    from embedstore.datasets import brset
    from embedstore.datasets.prompts import resolve_prompt

    t = resolve_prompt("brset", template, brset.FIELDS)
    return [t.render(brset.prompt_fields({k: (v if v != "" else None) for k, v in r.items()})) for r in rows]


# -- the plan extract runs ----------------------------------------------------------------------------
def savings(texts: Sequence[str], tokenize: Callable[[str], list[int]], *, sort: bool = True,
            chunk_rows: int | None = None, budget: int | None = None) -> dict:
    """Tokens in the prompts and tokens evaluated, as ``extract`` plans them (sorted rows, chunks, groups)."""
    from embedstore.extract import CHUNK_ROWS
    from embedstore.extractors.gguf import BATCH_TOKENS
    from embedstore.extractors.prefix_plan import plan_decode

    chunk_rows, budget = chunk_rows or CHUNK_ROWS, budget or BATCH_TOKENS
    rows = sorted(texts) if sort else list(texts)
    prompt = evaluated = decodes = 0
    cache: dict[str, list[int]] = {}
    for start in range(0, len(rows), chunk_rows):
        seqs = [cache[t] if t in cache else cache.setdefault(t, tokenize(t)) for t in rows[start:start + chunk_rows]]
        groups = plan_decode(seqs, budget=budget)
        prompt += sum(g.prompt_tokens for g in groups)
        evaluated += sum(len(g.tokens) for g in groups)
        decodes += len(groups)
    return {"rows": len(rows), "distinct": len(set(rows)), "prompt": prompt, "evaluated": evaluated,
            "decodes": decodes, "ratio": evaluated / prompt if prompt else 1.0}


def template_sets(data: Path) -> list[tuple[str, str, list[str]]]:
    """``(dataset, template, prompts)`` for every built-in template whose data is here."""
    out = []
    for name, meta in (("HAM10000 (all 10,015)", data / "ham10000" / "HAM10000_metadata.csv"),
                       ("HAM10000 dev1000", data / "ham10000-dev1000" / "HAM10000_metadata.csv")):
        if meta.is_file():
            out += [(name, t, ham_prompts(meta, t)) for t in ("paper", "default")]
    if (data / "satellite-metadengue").is_dir():
        root = data / "satellite-metadengue"
        out += [("SatelliteBench", t, satellite_prompts(root, t)) for t in ("paper", "default")]
    rows = brset_rows()
    out += [("BRSET (published columns, drawn values)", t, brset_prompts(t, rows))
            for t in ("paper", "default", "findings")]
    return out


def table(tokenize: Callable[[str], list[int]], data: Path = DATA) -> list[dict]:
    """One row per (dataset, template): sorted (as extract runs) and in dataset order."""
    rows = []
    for dataset, template, texts in template_sets(data):
        tokens = {t: tokenize(t) for t in set(texts)}
        s, u = savings(texts, tokens.__getitem__), savings(texts, tokens.__getitem__, sort=False)
        rows.append({"dataset": dataset, "template": template, **s, "unsorted": u["evaluated"],
                     "unsorted_ratio": u["ratio"], "mean_tokens": s["prompt"] / s["rows"]})
    return rows


def render(rows: list[dict]) -> str:
    """The markdown table."""
    from benchmarks.benchlib import md_table

    return md_table(["dataset", "template", "prompts", "distinct", "mean tokens", "tokens in prompts",
                     "evaluated (extract: sorted, chunks of 256)", "evaluated / in prompts",
                     "evaluated, dataset order", "ratio, dataset order"],
                    [[r["dataset"], r["template"], f"{r['rows']:,}", f"{r['distinct']:,}", f"{r['mean_tokens']:.1f}",
                      f"{r['prompt']:,}", f"{r['evaluated']:,}", f"**{r['ratio']:.2f}**", f"{r['unsorted']:,}",
                      f"{r['unsorted_ratio']:.2f}"] for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", required=True, help="ggml-vocab-llama-spm.gguf or the llama-cpp-python sdist")
    ap.add_argument("--workdir", default=None, help="where to extract the vocab from an sdist (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON (extract_llama7b.py --savings-json)")
    args = ap.parse_args()
    import tempfile

    work = Path(args.workdir or tempfile.mkdtemp(prefix="prefix-savings-"))
    rows = table(llama_tokenizer(vocab_file(args.vocab, work)))
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(rows))
    print(render(rows))


if __name__ == "__main__":
    main()
