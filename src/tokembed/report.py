"""Self-contained HTML reports: tables, embedded PNG figures, warnings — no server, no CDN.

The primitives here are shared by every report (study, inspect, compress): a page is a
list of sections; images are embedded as base64 PNG so one ``report.html`` file is the
whole report. Plots use matplotlib's non-interactive Agg backend.

>>> page = html_page("T", [section("S", table([{"a": 1, "b": 0.5}]))])
>>> "<table" in page and "<h2>S</h2>" in page
True
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from .artifacts import atomic_write_bytes

__all__ = ["html_page", "section", "table", "figure_img", "paragraph", "warning_box", "new_figure", "fmt"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}tr.best td{background:#eef9ee}tr:target td{background:#fff3b0}.scroll{overflow-x:auto;max-width:100%}td:first-child{white-space:nowrap}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em;margin:.5em 0}
.fig{margin:.8em 0}.fig img{max-width:100%}.small{color:#666;font-size:.85em}code{background:#f4f4f4;padding:0 .2em}
"""


def fmt(v: Any) -> str:
    """Format a cell: floats to 4 significant digits, ints with thousands separators."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    highlight: Iterable[int] = (),
    row_ids: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """An HTML table of ``rows`` (dicts); ``highlight`` row indices get the ``best`` class.

    ``row_ids`` gives each ``<tr>`` an ``id`` so text elsewhere can link to it (``href="#id"``);
    ``labels`` maps column keys to header text. Every table sits in a box that scrolls horizontally, so a
    wide one never runs past the page.

    >>> table([{"a": 1}], row_ids=["run-x"])
    '<div class=scroll><table><thead><tr><th>a</th></tr></thead><tbody><tr id="run-x"><td>1</td></tr></tbody></table></div>'
    """
    if not rows:
        return "<p class=small>(no rows)</p>"
    cols = list(columns or rows[0].keys())
    hl = set(highlight)
    if row_ids is not None and len(row_ids) != len(rows):
        raise ValueError(f"row_ids has {len(row_ids)} entries for {len(rows)} rows; pass one id per row")
    labels = labels or {}
    head = "".join(f"<th>{html.escape(str(labels.get(c, c)))}</th>" for c in cols)

    def tr(i: int) -> str:
        rid = f' id="{html.escape(row_ids[i])}"' if row_ids is not None else ""
        return f"<tr{rid}{' class=best' if i in hl else ''}>"

    body = "".join(
        tr(i) + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for i, r in enumerate(rows)
    )
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class=scroll>{out}</div>"


def new_figure(width: float = 6.4, height: float = 4.0):
    """A matplotlib (fig, ax) on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return fig, ax


def figure_img(fig, *, alt: str, caption: str = "", path=None, tight: bool = True) -> str:
    """Embed a matplotlib figure as a base64 PNG ``<img>``; also save it to ``path`` if given.
    ``tight=False`` keeps a layout the caller already made (e.g. room left for a figure-level legend)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        atomic_write_bytes(path, data)
    b64 = base64.b64encode(data).decode("ascii")
    cap = f"<div class=small>{html.escape(caption)}</div>" if caption else ""
    return f'<div class=fig><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">{cap}</div>'


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def warning_box(text: str) -> str:
    return f"<div class=warn>{html.escape(text)}</div>"


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def html_page(title: str, sections: Sequence[str], *, subtitle: str = "") -> str:
    """A complete HTML document; every asset inline."""
    sub = f"<p class=small>{html.escape(subtitle)}</p>" if subtitle else ""
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{sub}{''.join(sections)}</body></html>\n"
    )
