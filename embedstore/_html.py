"""The HTML building blocks of the report: escaping, tables, embedded figures and the page shell.

One place for what every section of the report (:mod:`embedstore.report`,
:mod:`embedstore.results` and the other section modules) writes the same way:
text is escaped, an empty table is a "(none)" note, figures are inline
``data:image/png;base64`` URIs and the page carries its own styles, so the
file references nothing outside itself.

Examples
--------
>>> table([{"metric": "F1", "value": 0.5, "note": None}])
'<table><tr><th>metric</th><th>value</th><th>note</th></tr><tr><td>F1</td><td>0.5000</td><td></td></tr></table>'
>>> table([])
'<p class="note">(none)</p>'
>>> grid([["<i>x</i>", "1"]], ["sample", "n"])
'<table><tr><th>sample</th><th>n</th></tr><tr><td><i>x</i></td><td>1</td></tr></table>'
"""

from __future__ import annotations

import base64
import html
from typing import Any, Callable, Mapping, Sequence

__all__ = ["cell", "embed_png", "escape", "grid", "page", "table"]

_CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;padding:0 12px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:13px;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f2f2f2}code,.v{font-family:ui-monospace,monospace;font-size:12px;overflow-wrap:anywhere}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.3em 0}.note{color:#555;font-size:13px}
.banner{background:#fff4c2;border:2px solid #e0b000;padding:.6em 1em;font-weight:600}
.answer{font-size:15px;line-height:1.45}
details{margin:.4em 0 1em;border-left:3px solid #ddd;padding-left:.8em}
summary{cursor:pointer;font-weight:600;margin:.3em 0}
.figs{display:flex;flex-wrap:wrap;gap:8px}.figs img{max-width:calc(50% - 8px)}
.thumb{display:flex;align-items:center;gap:8px}.thumb img{margin:0}"""

#: What a table without rows shows.
_NONE = '<p class="note">(none)</p>'


def escape(value: Any) -> str:
    """``value`` as HTML text: ``str(value)`` escaped, ``""`` for ``None``.

    Parameters
    ----------
    value : Any
        Any value; ``str`` of it is shown.

    Examples
    --------
    >>> escape(None), escape("a<b"), escape(3)
    ('', 'a&lt;b', '3')
    """
    return html.escape("" if value is None else str(value))


def cell(value: Any) -> str:
    """A table cell of the report: floats with four decimals, a dict as ``key@value`` lines, else escaped text.

    Parameters
    ----------
    value : Any

    Returns
    -------
    str
        HTML.

    Examples
    --------
    >>> cell(1 / 3), cell({"t": 2})
    ('0.3333', '<span class="v">t@2</span>')
    """
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        lines = (f"{escape(k)}@{escape(v)}" for k, v in sorted(value.items()))
        return '<span class="v">' + "<br>".join(lines) + "</span>"
    return escape(value)


def grid(rows: Sequence[Sequence[str]], head: Sequence[str]) -> str:
    """A table of cells that are HTML already, under the escaped column names ``head``.

    Parameters
    ----------
    rows : sequence of sequences of str
        One HTML string per cell, written as they are.
    head : sequence of str
        The column names (plain text).

    Returns
    -------
    str
        ``<table>...</table>``, or a "(none)" note when there are no rows.
    """
    if not rows:
        return _NONE
    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
          render: Callable[[Any], str] = cell) -> str:
    """A table of dict rows: one column per name of ``columns`` (default: the first row's keys).

    Parameters
    ----------
    rows : sequence of mappings
    columns : sequence of str, optional
    render : callable
        Turns a value into its cell's HTML (default :func:`cell`; a missing
        key is ``None``).

    Returns
    -------
    str
        ``<table>...</table>``, or a "(none)" note when there are no rows.
    """
    cols = list(columns or (rows[0] if rows else ()))
    return grid([[render(r.get(c)) for c in cols] for r in rows], cols)


def embed_png(png: bytes, alt: str) -> str:
    """An ``<img>`` holding the PNG ``png`` itself (a ``data:`` URI).

    Parameters
    ----------
    png : bytes
    alt : str
        The text shown in its place (escaped).

    Returns
    -------
    str
    """
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def page(title: str, body: str, meta: Mapping[str, str]) -> str:
    """A whole HTML document: the report's inline styles, ``<meta>`` elements, the escaped ``title`` and ``body``.

    Parameters
    ----------
    title : str
        Plain text.
    body : str
        HTML.
    meta : mapping of str to str
        ``<meta name=... content=...>`` pairs (both escaped).

    Returns
    -------
    str
    """
    metas = "".join(f'<meta name="{escape(k)}" content="{escape(v)}">' for k, v in meta.items())
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{metas}'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>")
