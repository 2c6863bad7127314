"""HTML for Jupyter: the small tables and inline images the notebook's result objects render as.

Every result object of ``scones.notebook`` (and ``EtlResult``, ``MonitorResult``) has a
``_repr_html_`` built from these helpers. The HTML is self-contained (images are ``data:`` URIs,
an execution graph is inline SVG) so that an exported notebook loads nothing from the network.
Each block carries ``data-scones="<what>"`` for scripts and tests.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scones.data.etl import EtlResult
    from scones.monitor.run import MonitorResult

_TABLE_STYLE = "border-collapse:collapse;margin:0.4em 0;font-size:13px"
_CELL_STYLE = "border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top"


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value))


def table(
    rows: Iterable[Sequence[Any]],
    header: Sequence[str] | None = None,
    *,
    what: str = "table",
    raw_columns: Sequence[int] = (),
    raw_header: bool = False,
) -> str:
    """An HTML table; cells are escaped except those in ``raw_columns`` (already HTML), and
    the header's when ``raw_header``."""

    def cells(row: Sequence[Any], tag: str, raw: Sequence[int]) -> str:
        return "".join(
            f'<{tag} style="{_CELL_STYLE}">{v if i in raw else esc(v)}</{tag}>'
            for i, v in enumerate(row)
        )

    head = (
        f"<tr>{cells(header, 'th', range(len(header)) if raw_header else ())}</tr>"
        if header
        else ""
    )
    body = "".join(f"<tr>{cells(row, 'td', raw_columns)}</tr>" for row in rows)
    return f'<table data-scones="{esc(what)}" style="{_TABLE_STYLE}">{head}{body}</table>'


def png_img(png: bytes, alt: str, *, width: int | None = None, what: str = "figure") -> str:
    """An ``<img>`` holding ``png`` as a data URI (``width`` in CSS pixels, scaled crisply)."""
    data = base64.b64encode(png).decode("ascii")
    size = f' width="{width}" style="image-rendering:pixelated"' if width else ""
    return (
        f'<img data-scones="{esc(what)}" alt="{esc(alt)}"{size} src="data:image/png;base64,{data}">'
    )


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """A matplotlib ``Figure`` (made without pyplot, so Jupyter does not show it) as PNG bytes."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def json_block(value: Any, *, limit: int = 4000) -> str:
    """``value`` as indented JSON in a ``<pre>`` (cut at ``limit`` characters)."""
    text = json.dumps(value, indent=2, default=str)
    if len(text) > limit:
        text = text[:limit] + f"\n... ({len(text) - limit:,} more characters)"
    return f'<pre style="font-size:12px;max-height:24em;overflow:auto">{esc(text)}</pre>'


def heading(text: str) -> str:
    """A small bold line above a block."""
    return f'<p style="margin:0.6em 0 0.2em"><b>{esc(text)}</b></p>'


def percent(value: float | None) -> str:
    """``0.875`` -> ``87.5%`` (``n/a`` for None or NaN)."""
    if value is None or value != value:
        return "n/a"
    return f"{100 * value:.1f}%"


def etl_html(result: EtlResult) -> str:
    """``EtlResult``: the chosen classes and the images per split and class."""
    classes = list(result.classes)
    rows = [
        [split, *(counts.get(c, 0) for c in classes), sum(counts.values())]
        for split, counts in result.counts.items()
    ]
    return heading(f"ETL into {result.output}: classes {', '.join(classes)} (labels 0..)") + table(
        rows, ["split", *classes, "total"], what="etl-counts"
    )


def monitor_html(result: MonitorResult) -> str:
    """``MonitorResult``: the totals, the review rate, the alert, and every figure inline."""
    c = result.collector
    per_class = [0] * len(result.classes)
    for label in c.labels:
        if label < len(per_class):
            per_class[label] += 1
    rows: list[list[Any]] = [
        ["records", f"{c.count:,} from {c.files_read:,} capture files"],
        ["parse errors", f"{c.errors_total:,}"],
        ["needs review", f"{c.review_count:,} ({percent(c.review_rate)} below {c.threshold:g})"],
    ]
    rows += [
        [f"predicted {name}", f"{n:,}"] for name, n in zip(result.classes, per_class, strict=True)
    ]
    parts = [heading("Data Capture, read back by scones monitor"), table(rows, what="monitor")]
    if result.alert:
        parts.append(f'<p style="color:#b00"><b>ALERT:</b> {esc(result.alert)}</p>')
    if result.figures is not None:
        for name, (title, png) in result.figures.pngs.items():
            parts.append(heading(title) + png_img(png, f"{title} ({name})", what="monitor-figure"))
    written = ", ".join(p.name for p in result.written)
    parts.append(f"<p><small>written: {esc(written)}</small></p>")
    return "".join(parts)
