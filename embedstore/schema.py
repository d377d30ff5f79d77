"""Table layout of a store (one LanceDB database).

Granularity
-----------
* ``samples__<dataset>``: one table per dataset, keyed by ``sample_id``.
  Columns: ``sample_id``, ``text``, ``text_sha256``, ``prompt_name``,
  ``prompt_template``, ``image_ref``, ``image_sha256``, ``label``, one or more
  ``split_<name>`` columns, optional ``label_<name>`` extra labels,
  ``group_id``, then the dataset's remaining metadata as typed columns.
  Metadata differ per dataset, hence one table each. An image-only
  dataset has ``text``/``text_sha256`` null, a text-only one
  ``image_ref``/``image_sha256`` null (:mod:`embedstore.modalities`).
* ``emb__<modality>__<model_key>__<dim>``: one table per model, modality and
  vector width (widths differ between models, and an interpolated alignment
  may change the width). Columns: ``row_key`` (the merge key, see
  :func:`embedstore.keys.row_key`), ``dataset``, ``sample_id``, ``modality``,
  ``model_key``, ``alignment_key`` (``"none"`` when unaligned),
  ``content_sha256`` (hash of the input bytes/text: the lab-cache key),
  ``run_tag`` and ``vector`` (``fixed_size_list<float32>[dim]``).
* ``models``: the model registry, ``model_key`` → full identity JSON.
* ``alignments``: the alignment registry, ``alignment_key`` → settings JSON
  and the fitted gap vector; ``transform_states`` (every fitted transform)
  and ``alignment_members`` (the samples each alignment covers) hold the
  rest of an alignment, whose aligned vectors are computed when read
  (:mod:`embedstore.aligned_reads`). Stores written by earlier versions hold aligned
  rows in the embeddings tables under their ``alignment_key``.
* ``runs``: training-run records (written by ``trainers``).
* ``checks``: findings of ``check`` and ``drift`` (:mod:`embedstore.datacheck.records`).
"""

from __future__ import annotations

import re

import pyarrow as pa

from .keys import _NAME_RE as _DATASET_RE, check_name

SAMPLES_PREFIX = "samples__"
EMB_PREFIX = "emb__"
MODELS = "models"
ALIGNMENTS = "alignments"
RUNS = "runs"
SAMPLE_KEY = "sample_id"
#: Key column of the runs table (see :mod:`embedstore.runs`).
RUN_KEY = "run_id"
_EMB_RE = re.compile(r"^emb__(image|text)__[A-Za-z0-9]{1,64}__[0-9]{1,6}$")
_PLAIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
EMB_KEY = "row_key"

#: Columns every samples table has (adapters add splits, labels, metadata).
SAMPLE_CORE = (
    "sample_id", "text", "text_sha256", "prompt_name", "prompt_template",
    "image_ref", "image_sha256", "label",
)


def samples_table(dataset: str) -> str:
    """Name of a dataset's samples table.

    Examples
    --------
    >>> samples_table("ham10000")
    'samples__ham10000'
    """
    return SAMPLES_PREFIX + check_name(dataset)


def embeddings_table(model_key: str, modality: str, dim: int) -> str:
    """Name of the embeddings table of one model, modality and width.

    Examples
    --------
    >>> embeddings_table("0123456789abcdef", "image", 768)
    'emb__image__0123456789abcdef__768'
    """
    return f"{EMB_PREFIX}{modality}__{model_key}__{int(dim)}"


def check_table_name(name: str) -> str:
    """Validate a table name against the layout above before any file or lock is touched.

    Accepted: ``models``, ``alignments``, ``runs``, ``samples__<dataset>``
    (a valid dataset name), ``emb__<image|text>__<model_key>__<dim>``, and
    other plain names (letters, digits, ``_ . -``, as used by scratch tables
    in examples). Anything with a path character (``/``, ``\\``, ``..``) or
    a malformed ``samples__``/``emb__`` name is refused.

    Examples
    --------
    >>> check_table_name("emb__text__abc123__384")
    'emb__text__abc123__384'
    >>> check_table_name("../../x")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: invalid table name '../../x': use a table listed by 'embedstore info' (samples__<dataset>, emb__<modality>__<model_key>__<dim>, models, alignments, runs)
    """
    if isinstance(name, str):
        if name.startswith(SAMPLES_PREFIX):
            ok = _DATASET_RE.match(name[len(SAMPLES_PREFIX):]) is not None
        elif name.startswith(EMB_PREFIX):
            ok = _EMB_RE.match(name) is not None
        else:
            ok = _PLAIN_RE.match(name) is not None
        if ok and ".." not in name:
            return name
    from .errors import InputError

    raise InputError(f"invalid table name {name!r}: use a table listed by 'embedstore info' (samples__<dataset>, "
                     "emb__<modality>__<model_key>__<dim>, models, alignments, runs)")


def parse_embeddings_table(name: str) -> tuple[str, str, int] | None:
    """Inverse of :func:`embeddings_table`; ``None`` for other tables.

    Examples
    --------
    >>> parse_embeddings_table('emb__text__abc__384')
    ('text', 'abc', 384)
    """
    if not name.startswith(EMB_PREFIX):
        return None
    modality, model_key, dim = name[len(EMB_PREFIX):].split("__")
    return modality, model_key, int(dim)


def embeddings_schema(dim: int) -> pa.Schema:
    """Arrow schema of an embeddings table of width ``dim``."""
    return pa.schema([
        pa.field(EMB_KEY, pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),
        pa.field("model_key", pa.string(), nullable=False),
        pa.field("alignment_key", pa.string(), nullable=False),
        pa.field("content_sha256", pa.string()),
        pa.field("run_tag", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), int(dim)), nullable=False),
    ])


MODELS_SCHEMA = pa.schema([
    pa.field("model_key", pa.string(), nullable=False),
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("modalities", pa.string()),
    pa.field("dims", pa.string()),
    pa.field("identity", pa.string()),
    pa.field("registered_at", pa.string()),
])

ALIGNMENTS_SCHEMA = pa.schema([
    pa.field("alignment_key", pa.string(), nullable=False),
    pa.field("method", pa.string()),
    pa.field("settings", pa.string()),
    pa.field("gap", pa.list_(pa.float32())),
    pa.field("registered_at", pa.string()),
])


#: Field metadata that declares Lance's unenforced primary key (see docs/lab-sharing.md).
PRIMARY_KEY_META = b"lance-schema:unenforced-primary-key"


def keyed_schema(schema: pa.Schema, key: str) -> pa.Schema:
    """``schema`` with ``key`` non-nullable and declared as the table's primary key.

    Lance records the keys a ``merge_insert`` inserts and turns a concurrent
    insert of the same key into a retried update, so writers on any backend
    leave one row per key without a lock.

    Examples
    --------
    >>> s = keyed_schema(pa.schema([pa.field("k", pa.string()), pa.field("x", pa.int64())]), "k")
    >>> (s.field("k").nullable, declared_key(s))
    (False, 'k')
    """
    i = schema.get_field_index(key)
    f = schema.field(i)
    meta = dict(f.metadata or {})
    meta[PRIMARY_KEY_META] = b"true"
    return schema.set(i, f.with_nullable(False).with_metadata(meta))


def declared_key(schema: pa.Schema) -> str | None:
    """The column declared as primary key in ``schema``, or ``None`` (tables made before 0.2).

    Examples
    --------
    >>> declared_key(pa.schema([pa.field("k", pa.string())])) is None
    True
    """
    for f in schema:
        if f.metadata and any(k.startswith(PRIMARY_KEY_META) for k in f.metadata):
            return f.name
    return None


def key_column(table: str) -> str | None:
    """The unique key column of a store table, or ``None`` for unknown tables.

    Examples
    --------
    >>> key_column("samples__ham10000"), key_column("emb__text__abc__384"), key_column("models")
    ('sample_id', 'row_key', 'model_key')
    """
    if table.startswith(SAMPLES_PREFIX):
        return SAMPLE_KEY
    if parse_embeddings_table(table):
        return EMB_KEY
    if table.startswith("predictions__"):
        return "prediction_id"
    return {MODELS: "model_key", ALIGNMENTS: "alignment_key", RUNS: RUN_KEY, "heads": "head_id",
            "transforms": "alignment_key", "transform_states": "alignment_key",
            "alignment_members": "member_key", "checks": "check_id"}.get(table)
