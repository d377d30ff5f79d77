"""Shared CLI plumbing: the store option, ``--json`` output and error handling.

Commands use :func:`command` instead of ``click.command`` to get ``--store``,
``--storage-option`` and ``--json``, and to turn every
:class:`~embedstore.errors.EmbedstoreError` (and ``KeyboardInterrupt``) into a
one-line message with a non-zero exit. Any other exception (a full disk, an
unwritable path, a Lance/pyarrow error) becomes one line too
(:func:`error_line`); ``--debug`` or ``EMBEDSTORE_DEBUG=1`` shows the full
traceback instead.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from typing import Any, Callable

import click


def parse_storage_options(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``("KEY=VALUE", ...)`` → dict; ``EMBEDSTORE_STORAGE_<KEY>`` env vars are added first.

    Examples
    --------
    >>> parse_storage_options(["endpoint=http://localhost:9000"])["endpoint"]
    'http://localhost:9000'
    """
    from embedstore.objstore import env_storage_options

    opts = env_storage_options()
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r}: use KEY=VALUE", param_hint="--storage-option")
        key, value = pair.split("=", 1)
        opts[key.strip()] = value
    return opts


def get_store(ctx: click.Context, uri: str | None = None, storage_options: tuple[str, ...] = ()):
    """Open the store named by the command's or the group's ``--store``.

    The CLI is an edge: the store it opens takes a user's spelling of a model
    (bare ``ORG/NAME``, a local path) through :mod:`embedstore.refs`.
    """
    import embedstore.refs  # noqa: F401  (installs the model-id spelling map; see refs.py)
    from embedstore.store import Store

    root = ctx.find_root().obj or {}
    uri = uri or root.get("store_uri")
    opts = parse_storage_options(tuple(root.get("storage_options") or ()) + tuple(storage_options))
    return Store(uri, storage_options=opts)


def emit(ctx: click.Context, payload: Any, text: str | Callable[[], str]) -> None:
    """Print ``payload`` as JSON when ``--json`` was given, else ``text``."""
    if ctx.params.get("as_json"):
        click.echo(json.dumps(payload, indent=2, default=_default))
    else:
        click.echo(text() if callable(text) else text)


def _default(obj: Any) -> Any:
    import dataclasses

    if callable(getattr(obj, "to_dict", None)):  # the package's one serialisation protocol
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Render rows as a plain aligned text table.

    Examples
    --------
    >>> print(table([{"a": 1, "b": "x"}]))
    a  b
    -  -
    1  x
    """
    if not rows:
        return "(none)"
    columns = columns or list(rows[0])
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root().obj or {}
    return bool(root.get("debug")) or os.environ.get("EMBEDSTORE_DEBUG", "") not in ("", "0", "false")


_OS_ERRORS = (  # (errno, text lance/polars/pyarrow put in their messages, what it means and the fix)
    (errno.ENOSPC, ("no space left on device", "os error 28"),
     "disk full: nothing committed was lost (the store stays at its last commit); "
     "free space, then re-run the same command to resume"),
    (errno.EACCES, ("permission denied", "os error 13"),
     "permission denied: make the path writable or pass another one"),
    (errno.EROFS, ("read-only file system", "os error 30"),
     "read-only file system: pass a path on a writable disk"),
    (errno.ENOENT, ("no such file or directory", "os error 2"),
     "no such file or directory: create the folder first or pass an existing path"),
)


def _store_uri(ctx: click.Context, kw: dict[str, Any]) -> str:
    from embedstore.uris import resolve_uri

    return resolve_uri(kw.get("store_uri") or (ctx.find_root().obj or {}).get("store_uri"))


def error_line(exc: BaseException, store_uri: str | None = None) -> str:
    """One actionable line for an error met at the CLI boundary that is not an EmbedstoreError.

    Disk, permission and missing-path errors (whether raised by Python, Lance,
    pyarrow or polars) are named with the path and the fix (a Lance error
    names no path: it is the store's, ``store_uri``); anything else gives its
    type and first line, and points to ``--debug``.

    Examples
    --------
    >>> import errno
    >>> error_line(OSError(errno.ENOSPC, "No space left on device", "/mnt/s/x.lance"))
    '/mnt/s/x.lance: disk full: nothing committed was lost (the store stays at its last commit); free space, then re-run the same command to resume'
    >>> error_line(RuntimeError("LanceError(IO): No space left on device (os error 28), /src/io/commit.rs:16:50"),
    ...            "/mnt/s")
    'store /mnt/s: disk full: nothing committed was lost (the store stays at its last commit); free space, then re-run the same command to resume'
    >>> error_line(ValueError("bad\\nmore"))
    'ValueError: bad (re-run with --debug or EMBEDSTORE_DEBUG=1 for the traceback)'
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    low = text.lower()
    for code, needles, meaning in _OS_ERRORS:
        if getattr(exc, "errno", None) == code or any(n in low for n in needles):
            where = getattr(exc, "filename", None) or _path_in(text)
            if not where and "lance" in low and store_uri:
                where = f"store {store_uri}"
            return f"{where}: {meaning}" if where else meaning
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]} (re-run with --debug or EMBEDSTORE_DEBUG=1 for the traceback)"


def _path_in(text: str) -> str | None:
    import re

    for m in re.finditer(r"(/[^\s,;:'\"()]+)", text):
        if not m.group(1).endswith(".rs"):  # Rust source locations in Lance messages are not the user's files
            return m.group(1)
    return None


_PARAM_TOKEN = None  # compiled on first use (the CLI's start-up stays free of regex work)
# an API parameter whose CLI option has another python name (``Store(uri=)`` is ``--store``)
_API_NAMES = {"uri": "store_uri", "older_than_days": "older_than", "vector": "vector_file"}


def _flag_for(params: list[click.Parameter], name: str, value: str) -> str | None:
    """The flag (with its value) a ``name=value`` token of a library message means for these params."""
    by_name = {p.name: p for p in params if isinstance(p, click.Option)}
    by_opt = {o[2:].replace("-", "_"): p for p in by_name.values() for o in p.opts if o.startswith("--")}
    name = name if name in by_name else _API_NAMES.get(name, name)
    opt = by_name.get(name) or by_opt.get(name)
    if opt is None and value == "False":  # save_heads=False -> --no-save-heads
        opt, value = by_name.get(f"no_{name}") or by_opt.get(f"no_{name}"), "True"
    if opt is None:
        return None
    flag = max((o for o in opt.opts if o.startswith("--")), key=len, default=opt.opts[0])
    if opt.is_flag and value in ("True", "False"):
        off = [o for o in opt.secondary_opts if o.startswith("--")]
        return flag if value == "True" else (off[0] if off else None)
    value = value[1:-1] if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0] else value
    return f"{flag} {value}" if value else flag


def flag_hints(message: str, ctx: click.Context) -> str:
    """Rewrite a library message's API terms into the running command's flags.

    Each ``name=value`` token whose ``name`` is the python name of one of the
    command's options (or spells one of its flags) becomes that flag:
    ``text_model=`` → ``--text-model``, ``fit_on='train'`` → ``--fit-on train``,
    ``prune=True`` → ``--prune``, ``save_heads=False`` → ``--no-save-heads``.
    A call ``embedstore.NAME(...)`` (or ``embedstore.trainers.NAME(...)``)
    becomes the command line ``'embedstore NAME ...'`` where the CLI has a
    command ``NAME``, its keyword arguments mapped through that command's
    options (:func:`_command_line`). Any other token stays as written.

    Examples
    --------
    >>> @click.command()
    ... @click.option("--text-model")
    ... @click.option("--prune", is_flag=True)
    ... def ingest(text_model, prune):
    ...     pass
    >>> ctx = click.Context(ingest)
    >>> flag_hints("early fusion needs text_model= (a model id); pass prune=True, not k=3", ctx)
    'early fusion needs --text-model (a model id); pass --prune, not k=3'
    >>> flag_hints("re-ingest (embedstore.ingest(..., prune=True)) or pass prune=False.", ctx)
    're-ingest (embedstore.ingest(..., prune=True)) or pass prune=False.'
    >>> flag_hints("bad filter 'prune=1': use text_model='x'", ctx)
    "bad filter 'prune=1': use --text-model x"
    """
    import re

    global _PARAM_TOKEN
    if _PARAM_TOKEN is None:
        _PARAM_TOKEN = re.compile(r"(?<![\w.=-])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|[^\s,;()]*)")
    params = list(getattr(ctx.command, "params", []))

    # an API call's own arguments, and quoted text (a user's filter, a file's header) stay as written
    calls = [m.span() for m in re.finditer(r"[\w.]+\([^()]*\)|(?<![=\w])'[^']*'", message)]

    def one(m: re.Match) -> str:
        if any(a < m.start() < b for a, b in calls):
            return m.group(0)
        value = m.group(2)
        tail = value[-1] if value and value[-1] in ".:" else ""  # a sentence's full stop is not part of the value
        flag = _flag_for(params, m.group(1), value[:len(value) - len(tail)])
        return flag + tail if flag else m.group(0)

    message = _PARAM_TOKEN.sub(one, message)
    group = ctx.find_root().command
    if isinstance(group, click.Group):
        message = re.sub(r"embedstore\.(?:trainers\.)?([a-z_]+)\(([^()]*)\)",
                         lambda m: _command_line(m, ctx, group), message)
    return message


def _command_line(m: Any, ctx: click.Context, group: click.Group) -> str:
    """``embedstore.extract(store, 'ds', model_id='M')`` → ``'embedstore extract ds --model M'``.

    Arguments map through the named command's own options; a call with no
    such command stays as written.
    """
    name = m.group(1).replace("_", "-")
    cmd = group.get_command(ctx, name) if name in group.list_commands(ctx) else None
    if cmd is None:
        return m.group(0)
    words = [f"embedstore {name}"]
    for arg in (a.strip() for a in m.group(2).split(",") if a.strip()):
        key, eq, value = arg.partition("=")
        if arg == "store":
            continue
        if eq and key.isidentifier():
            words.append(_flag_for(list(cmd.params), key, value) or arg)
        else:
            words.append(arg[1:-1] if len(arg) > 1 and arg[0] == arg[-1] and arg[0] in "'\"" else arg)
    return "'" + " ".join(words) + "'"


def command(name: str | None = None, **kwargs: Any):
    """``click.command`` plus ``--store``, ``--storage-option``, ``--json`` and error handling."""

    def decorate(fn: Callable) -> click.Command:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kw: Any) -> Any:
            from embedstore.errors import EmbedstoreError

            try:
                return fn(*args, **kw)
            except EmbedstoreError as exc:
                line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise click.ClickException(flag_hints(line, args[0])) from None
            except KeyboardInterrupt:
                click.echo("interrupted: committed work is kept; re-run the same command to resume", err=True)
                sys.exit(130)
            except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line unless --debug
                if _debug(args[0]):
                    raise
                raise click.ClickException(error_line(exc, _store_uri(args[0], kw))) from None

        wrapper = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(wrapper)
        wrapper = click.option("--storage-option", "storage_options", multiple=True, metavar="KEY=VALUE",
                               help="LanceDB storage option (repeatable).")(wrapper)
        wrapper = click.option("--store", "store_uri", default=None, metavar="URI",
                               help="Store URI (overrides the group's --store).")(wrapper)
        return click.command(name, **kwargs)(click.pass_context(wrapper))

    return decorate
