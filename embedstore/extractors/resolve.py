"""Model ids → local weights and a weights fingerprint, failing fast offline.

Accepted id forms (the scheme, registered in :mod:`embedstore.extractors.registry`, picks the loader):

* ``hf:ORG/NAME`` or ``hf:/local/dir`` — a Hugging Face model (vision,
  BERT-family encoder or causal LM, chosen from its ``config.json``; a CLIP
  config is routed to the CLIP loader);
* ``hf-clip:ORG/NAME`` or ``hf-clip:/local/dir`` — transformers ``CLIPModel``;
* ``open_clip:ARCH/PRETRAINED`` (a tag or a checkpoint file),
  ``open_clip:hf-hub:ORG/NAME``, ``open_clip:local-dir:/dir``;
* ``builtin:NAME`` — encoders whose weights ship inside a Python package;
* ``gguf:/path/model.gguf`` or ``gguf:ORG/REPO/FILE.gguf`` — llama.cpp
  (see :mod:`embedstore.extractors.gguf`);
* a bare local directory (or ``local:/dir``), and a bare ``ORG/NAME`` (= ``hf:``).

Hub ids resolve through the local Hugging Face cache. When the hub is
unreachable (``HF_HUB_OFFLINE=1``, or a 2-second connectivity check fails)
nothing is fetched, and missing weights raise
:class:`~embedstore.errors.ModelNotAvailableError` at once instead of hanging
on retries. The fingerprint is the hub commit hash or a sha256 of the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError, ModelNotAvailableError
from .registry import Scheme, bare_scheme, lookup, register, scheme_names

#: The schemes embedstore ships (more can be registered: :mod:`embedstore.extractors.registry`).
SCHEMES = ("hf", "hf-clip", "open_clip", "builtin", "gguf")
ACCEPTED = ("hf:ORG/NAME, hf-clip:ORG/NAME, open_clip:ARCH/PRETRAINED, open_clip:hf-hub:ORG/NAME, "
            "builtin:NAME, gguf:FILE.gguf, gguf:ORG/REPO/FILE.gguf, or a local model directory")
#: Hub files fetched for a transformers model (weights in safetensors when available).
HF_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.safetensors"]
HF_FALLBACK_WEIGHTS = ["pytorch_model*.bin"]
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz")
_SKIP_FILES = {"README.md", ".gitattributes", ".gitignore"}
_online: bool | None = None


@dataclass(frozen=True)
class ResolvedModel:
    """A model id resolved to local files.

    Attributes
    ----------
    model_id : str
        Canonical id (scheme + hub id, or scheme + absolute path).
    scheme : str
        A registered scheme name (:data:`SCHEMES` ships with embedstore).
    path : Path or None
        Local directory (or file) holding the weights.
    weights : str
        Fingerprint: ``hf@<commit>`` or ``sha256:<hex>``.
    extra : dict
        Loader-specific details (open_clip architecture, tag...).
    """

    model_id: str
    scheme: str
    path: Path | None
    weights: str
    extra: dict[str, Any] = field(default_factory=dict)


def not_available(model_id: str, reason: str, repo: str | None = None) -> ModelNotAvailableError:
    """The one-line error for weights that cannot be found, with both fixes.

    Examples
    --------
    >>> print(not_available("hf:org/x", "not cached", "org/x"))  # doctest: +NORMALIZE_WHITESPACE
    model 'hf:org/x' is not available locally (not cached): download it once with network access
    (run the same command online, or 'hf download org/x'), or pass a local path to the model
    directory as the model id (local:/path/to/model)
    """
    how = f"'hf download {repo}'" if repo else "'hf download <repo>'"
    return ModelNotAvailableError(
        f"model '{model_id}' is not available locally ({reason}): download it once with network "
        f"access (run the same command online, or {how}), or pass a local "
        f"path to the model directory as the model id (local:/path/to/model)")


def split_scheme(model_id: str) -> tuple[str | None, str]:
    """``"hf:org/x"`` → ``("hf", "org/x")``; ids without a registered scheme give ``(None, id)``.

    Examples
    --------
    >>> split_scheme("open_clip:hf-hub:org/x")
    ('open_clip', 'hf-hub:org/x')
    >>> split_scheme("/tmp/model")
    (None, '/tmp/model')
    """
    head, sep, rest = str(model_id).partition(":")
    if sep and head in scheme_names():
        return head, rest
    return None, str(model_id)


def canonical_id(model_id: str) -> str:
    """The canonical form of ``model_id`` (scheme added, local paths made absolute).

    Cheap (no download, no hashing): use it to look a model up in the store.
    The scheme's :meth:`~embedstore.extractors.registry.Scheme.canonical`
    does the work; an id without a prefix goes to the scheme that claims it
    (:func:`~embedstore.extractors.registry.bare_scheme`).

    Examples
    --------
    >>> canonical_id("facebook/dinov2-base")
    'hf:facebook/dinov2-base'
    >>> canonical_id("builtin:minilm-l6")
    'builtin:minilm-l6'
    """
    scheme, rest = split_scheme(model_id)
    if not rest:
        raise InputError(f"empty model id {model_id!r}: use {ACCEPTED}")
    found = lookup(scheme) if scheme is not None else bare_scheme(rest)
    if found is None:
        raise InputError(f"unknown model id {model_id!r}: use {ACCEPTED}")
    return found.canonical(rest)


def is_local(rest: str) -> bool:
    """Whether ``rest`` names a local path (absolute, relative, ``~``, or existing)."""
    return rest.startswith(("/", ".", "~")) or os.path.exists(rest)


def canonical_local(rest: str, scheme: str | None) -> str:
    """Canonical id of the local model directory ``rest``: its family (hf, hf-clip, open_clip) + absolute path."""
    path = Path(rest)
    return f"{_local_scheme(path, scheme)}:{local_target(path)}"


def local_target(path: Path) -> str:
    """Absolute ``path``, as ``local-dir:<path>`` for a saved open_clip model folder."""
    return ("local-dir:" if (path / "open_clip_config.json").is_file() else "") + str(path.expanduser().resolve())


def _local_scheme(path: Path, scheme: str | None) -> str:
    path = path.expanduser()
    if not path.exists():
        raise InputError(f"model path {path} does not exist: pass an existing model directory or a hub id")
    if path.is_file():
        raise InputError(f"model path {path} is a single weights file: give its architecture, "
                         f"e.g. open_clip:ViT-B-32/{path}, or pass the model directory")
    if (path / "open_clip_config.json").is_file():
        return "open_clip"
    cfg = path / "config.json"
    if not cfg.is_file():
        raise InputError(f"model directory {path} has neither config.json (Hugging Face) nor "
                         "open_clip_config.json (open_clip): pass a saved model directory")
    if scheme == "hf-clip":
        return scheme
    return "hf-clip" if read_json(cfg).get("model_type") == "clip" else "hf"


@register("local")
class LocalScheme(Scheme):
    """``local:/dir`` or a bare existing path: canonicalised to the directory's family (hf, hf-clip, open_clip)."""

    bare_order = 1

    def claims(self, rest: str) -> bool:
        return is_local(rest)

    def canonical(self, rest: str) -> str:
        if not is_local(rest):
            raise InputError(f"model path {rest} does not exist: pass an existing model directory")
        return canonical_local(rest, None)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON config file, with a one-line error naming it when broken."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"model config {path} is unreadable ({exc}): re-download the model") from None


# -- the hub ---------------------------------------------------------------
def hub_offline() -> bool:
    """True when the Hugging Face hub must not (or cannot) be contacted.

    ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` decide when set; otherwise a
    connection to the hub endpoint is tried once per process with a 2 s limit
    (DNS included).
    """
    global _online
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    if _online is None:
        _online = _reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return not _online


def _reachable(endpoint: str, timeout: float = 2.0) -> bool:
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    name, _, port = host.partition(":")
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((name, int(port or 443)), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


@contextlib.contextmanager
def offline_hub_if_needed() -> Iterator[None]:
    """Put huggingface_hub in offline mode while loading, when the hub is unreachable.

    Libraries that fetch by repo id themselves (open_clip's ``hf-hub:``) then
    read the local cache instead of retrying the network.
    """
    if not hub_offline():
        yield
        return
    import huggingface_hub.constants as c

    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved = c.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    c.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        c.HF_HUB_OFFLINE = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def hf_snapshot(repo_id: str, model_id: str, *, patterns: list[str] | None = None,
                need_weights: bool = True) -> tuple[Path, str]:
    """Local snapshot directory of hub repo ``repo_id`` and its commit fingerprint.

    Downloads only when the hub is reachable; offline it reads the cache and
    raises :func:`not_available` (naming ``model_id``) at once when absent.
    """
    from huggingface_hub import snapshot_download

    offline = hub_offline()
    repo, _, revision = repo_id.partition("@")
    try:
        path = Path(snapshot_download(repo, revision=revision or None, allow_patterns=patterns or HF_PATTERNS,
                                      local_files_only=offline))
        if need_weights and not _has_weights(path):
            path = Path(snapshot_download(repo, revision=revision or None, allow_patterns=HF_FALLBACK_WEIGHTS,
                                          local_files_only=offline))
    except Exception as exc:  # hub errors: not cached, gated, unknown repo, network
        reason = "not in the local Hugging Face cache and the hub is offline" if offline else \
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        raise not_available(model_id, reason, repo) from None
    if need_weights and not _has_weights(path):
        raise not_available(model_id, f"the cached snapshot {path} has no weight files", repo)
    return path, f"hf@{path.name}"


def _has_weights(path: Path) -> bool:
    return any(p.suffix in _WEIGHT_SUFFIXES for p in path.iterdir() if p.is_file())


# -- fingerprints ----------------------------------------------------------
_memo: dict[tuple, str] = {}
_DISK_CACHE_MIN = 256 << 20  # cache hashes of weights bigger than this on disk


def fingerprint(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of a weights file, or of a model directory's files.

    A directory hashes every file's relative path and sha256 (README and git
    files excluded), so configs and tokenizers count too. Hashes of large
    weights are cached by (path, size, mtime) in ``$XDG_CACHE_HOME/embedstore``.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); _ = open(os.path.join(d, "w.bin"), "wb").write(b"x")
    >>> fingerprint(d) == fingerprint(d) and fingerprint(d).startswith("sha256:")
    True
    """
    from ..keys import sha256_file

    p = Path(path).resolve()
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.name not in _SKIP_FILES
                                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
    stats = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if stats in _memo:
        return _memo[stats]
    total = sum(s[1] for s in stats)
    cache = _disk_cache() if total >= _DISK_CACHE_MIN else None
    key = hashlib.sha256(repr(stats).encode()).hexdigest()
    if cache is not None and key in cache:
        _memo[stats] = cache[key]
        return cache[key]
    if p.is_file():
        digest = sha256_file(p)
    else:
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.relative_to(p).as_posix()}\0{sha256_file(f)}\n".encode())
        digest = h.hexdigest()
    out = f"sha256:{digest}"
    _memo[stats] = out
    if cache is not None:
        cache[key] = out
        _save_disk_cache(cache)
    return out


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "embedstore" / "fingerprints.json"


def _disk_cache() -> dict[str, str]:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_disk_cache(cache: dict[str, str]) -> None:
    f = _cache_file()
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, f)
    except OSError:
        pass  # a read-only home only costs re-hashing next time
