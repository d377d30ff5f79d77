"""Stable keys and content hashes.

* ``stable_hash`` turns any JSON-able settings into a short, stable hex key.
  It is how ``model_key`` and ``alignment_key`` are made.
* ``sha256_bytes`` / ``sha256_text`` / ``sha256_file`` are the content hashes
  stored with samples and embeddings; equal hashes under one ``model_key``
  mean the embedding can be reused (the lab cache).
* ``row_key`` joins the parts of an embedding key into one string column, so
  that upserts merge on a single column.
* ``check_name`` guards dataset and tag names against path characters.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .errors import InputError

#: Number of hex characters of a short key (64 bits).
KEY_HEX = 16
NO_ALIGNMENT = "none"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` deterministically (sorted keys, no whitespace).

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.0, "x"]})
    '{"a":[1.0,"x"],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(obj: Any, n: int = KEY_HEX) -> str:
    """Short stable hex hash of JSON-able ``obj``.

    Examples
    --------
    >>> stable_hash({"a": 1}) == stable_hash({"a": 1})
    True
    >>> len(stable_hash({"a": 1}))
    16
    """
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:n]


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of raw bytes.

    Examples
    --------
    >>> sha256_bytes(b"")[:8]
    'e3b0c442'
    """
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of a UTF-8 string.

    Examples
    --------
    >>> sha256_text("a") == sha256_bytes(b"a")
    True
    """
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "f"); _ = open(p, "wb").write(b"a")
    >>> sha256_file(p) == sha256_bytes(b"a")
    True
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def row_key(dataset: str, sample_id: str, alignment_key: str = NO_ALIGNMENT) -> str:
    """The single-column key of an embedding row within its table.

    A table holds one model and one modality, so the full key
    ``(dataset, sample_id, modality, model_key, alignment_key)`` reduces to
    these three parts inside it.

    Examples
    --------
    >>> row_key("ham", "ISIC_1")
    'ham\\x1fISIC_1\\x1fnone'
    """
    return f"{dataset}\x1f{sample_id}\x1f{alignment_key}"


def check_name(name: str, what: str = "dataset name") -> str:
    """Validate a dataset/tag name: letters, digits, ``_ . -``; no path characters.

    Examples
    --------
    >>> check_name("ham10000")
    'ham10000'
    >>> check_name("../x")
    Traceback (most recent call last):
    ...
    embedstore.errors.InputError: invalid dataset name '../x': use 1-64 letters, digits, '_', '.' or '-' (no '/' or '..'), e.g. 'ham10000'
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InputError(
            f"invalid {what} {name!r}: use 1-64 letters, digits, '_', '.' or '-' "
            "(no '/' or '..'), e.g. 'ham10000'"
        )
    return name
