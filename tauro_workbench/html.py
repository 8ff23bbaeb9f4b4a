"""Stdlib-only HTML building blocks for the rich notebook displays of core objects.

A leaf module: it imports only the standard library, so a ``_repr_html_`` built from it works in
Jupyter, marimo, VS Code and exported HTML with no notebook package installed. Every helper
escapes what it is given; :func:`render` turns any failure of a renderer into a ``<pre>`` of the
object's text, so a display never raises.

The CSS is scoped under ``.tauro-display`` and uses ``currentColor``/translucent backgrounds, so
it reads in light and dark themes; selectors are specific enough to win over the notebook's own
table styles (Jupyter right-aligns and squeezes cells; marimo resets padding).

Example:
    >>> from tauro_workbench import html
    >>> html.table(["feature", "type"], [["age", "INT"]])[:29]
    '<table class="tauro-table"><t'
"""

from __future__ import annotations

import html as _html
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

__all__ = [
    "STYLE",
    "badge",
    "code",
    "display",
    "escape",
    "fallback",
    "fmt",
    "keys_table",
    "note",
    "render",
    "section",
    "table",
]

T = TypeVar("T")

TONES = {
    "ok": "#2e7d32",
    "healthy": "#2e7d32",
    "warning": "#ef6c00",
    "drift": "#c62828",
    "error": "#c62828",
    "failed": "#c62828",
    "info": "#1565c0",
    "muted": "#757575",
}
"""Colour of each badge tone (verdicts use their own name as the tone)."""

STYLE = """<style>
.tauro-display{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;
font-size:13px;line-height:1.45;color:inherit;max-width:100%;overflow-x:auto;margin:2px 0}
.tauro-display .tauro-title{font-size:14px;font-weight:600;margin:0 0 6px 0}
.tauro-display .tauro-title .tauro-kind{opacity:.65;font-weight:400;margin-right:6px}
.tauro-display .tauro-section{margin:8px 0 4px 0;font-weight:600;opacity:.85}
.tauro-display .tauro-note{margin:4px 0;opacity:.8}
.tauro-display table.tauro-table{border-collapse:collapse;margin:4px 0 8px 0;width:auto;
font-size:12.5px;table-layout:auto}
.tauro-display table.tauro-table th,.tauro-display table.tauro-table td{padding:4px 12px;
text-align:left;vertical-align:top;border:none;border-bottom:1px solid rgba(127,127,127,.25);
white-space:nowrap;max-width:420px;overflow:hidden;text-overflow:ellipsis;color:inherit;
background:transparent}
.tauro-display table.tauro-table th{font-weight:600;border-bottom:1px solid rgba(127,127,127,.55)}
.tauro-display table.tauro-table tbody tr:nth-child(odd){background:rgba(127,127,127,.06)}
.tauro-display table.tauro-table td.tauro-num{text-align:right;font-variant-numeric:tabular-nums}
.tauro-display table.tauro-keys th{opacity:.7;font-weight:500;border-bottom:none}
.tauro-display table.tauro-keys td{border-bottom:none}
.tauro-display .tauro-badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;
font-size:11.5px;font-weight:600;line-height:1.5}
.tauro-display .tauro-code pre{margin:4px 0 8px 0;padding:8px 12px;border-radius:4px;
background:rgba(127,127,127,.12);color:inherit;font-size:12px;white-space:pre-wrap;max-width:960px}
.tauro-display svg{max-width:100%;height:auto}
</style>"""


def escape(value: object) -> str:
    """Return ``value`` as text safe to put in HTML (quotes escaped too)."""
    try:
        return _html.escape(value if isinstance(value, str) else fmt(value), quote=True)
    except Exception:
        return _html.escape(object.__repr__(value))


def fmt(value: object) -> str:
    """Return a short human text for a cell value (numbers grouped, times in UTC, None as a dash)."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() == timedelta(0):
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.isoformat(sep=" ")
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items()) or "\u2013"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(fmt(v) for v in value) or "\u2013"
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "\u2026"


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{value.total_seconds():g}s"


def badge(text: object, tone: str | None = None) -> str:
    """Return a coloured pill; ``tone`` defaults to ``text`` (``ok``, ``warning``, ``drift``, ...)."""
    colour = TONES.get(str(tone if tone is not None else text), TONES["muted"])
    return f'<span class="tauro-badge" style="background:{colour}">{escape(text)}</span>'


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    raw: Iterable[int] = (),
    cls: str = "",
    limit: int | None = None,
) -> str:
    """Return an HTML table; cells are escaped except the column indexes in ``raw`` (trusted HTML).

    Numbers are right-aligned. With ``limit``, only the first rows are shown, with a count of
    the rest.
    """
    trusted = set(raw)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body: list[str] = []
    hidden = 0
    for index, row in enumerate(rows):
        if limit is not None and index >= limit:
            hidden += 1
            continue
        cells = []
        for column, value in enumerate(row):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            klass = ' class="tauro-num"' if numeric else ""
            text = str(value) if column in trusted else escape(value)
            cells.append(f"<td{klass}>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = note(f"\u2026 and {hidden:,} more") if hidden else ""
    classes = f"tauro-table {cls}".strip()
    return (
        f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'
    )


def keys_table(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]], *, raw: Iterable[str] = ()) -> str:
    """Return a two-column key/value table (values escaped unless their key is in ``raw``)."""
    trusted = set(raw)
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{v if k in trusted else escape(v)}</td></tr>" for k, v in items
    )
    return f'<table class="tauro-table tauro-keys"><tbody>{rows}</tbody></table>'


def section(title: str, body: str) -> str:
    """Return a sub-heading followed by ``body`` (trusted HTML)."""
    return f'<div class="tauro-section">{escape(title)}</div>{body}'


def note(text: str) -> str:
    """Return a muted line of text."""
    return f'<div class="tauro-note">{escape(text)}</div>'


def code(text: str | None) -> str:
    """Return a preformatted code block (e.g. SQL)."""
    return "" if not text else f'<div class="tauro-code"><pre>{escape(text.strip())}</pre></div>'


def display(kind: str, title: str, body: str, *, cls: str = "", extra: str = "") -> str:
    """Return a whole display: the scoped CSS, a title line and ``body`` (trusted HTML).

    Args:
        kind: What the object is (``feature group``, ``preview``, ...), shown muted.
        title: Its name.
        body: The rest, already HTML.
        cls: Extra CSS class of the outer ``div`` (tests and the browser find displays by it).
        extra: Trusted HTML put after the title (e.g. badges).
    """
    classes = f"tauro-display {cls}".strip()
    return (
        f'{STYLE}<div class="{classes}"><div class="tauro-title"><span class="tauro-kind">'
        f"{escape(kind)}</span>{escape(title)} {extra}</div>{body}</div>"
    )


def fallback(obj: object, error: BaseException | None = None) -> str:
    """Return the plain-text display of ``obj`` (used when a rich display fails)."""
    try:
        text = repr(obj)
    except Exception:
        text = object.__repr__(obj)
    why = "" if error is None else f"\n(rich display failed: {type(error).__name__}: {error})"
    return f"<pre>{_html.escape(text + why)}</pre>"


def render(renderer: Callable[[T], str], obj: T) -> str:
    """Return ``renderer(obj)``, or the text fallback when it raises: a display never raises.

    Example:
        >>> render(lambda o: 1 / 0, 42)[:8]
        '<pre>42\\n'
    """
    try:
        return renderer(obj)
    except Exception as err:
        return fallback(obj, err)
