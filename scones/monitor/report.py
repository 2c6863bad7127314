"""The monitoring report: a self-contained ``report.html`` (summary table, figures embedded as
data URIs, parse errors) and the figures as PNG files beside it."""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scones.monitor.collect import Collector
from scones.monitor.expected import ExpectedRate
from scones.monitor.figures import Figures, draw_figures


@dataclass(frozen=True)
class ReportContext:
    """What the summary table says besides the collector's numbers."""

    source: str
    classes: Sequence[str]
    classes_from: str
    since: datetime | None
    until: datetime | None
    max_review_rate: float | None
    generated: datetime
    expected: ExpectedRate | None = None  # the model's review rate on its validation images


def _fmt_time(value: float | datetime | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = datetime.fromtimestamp(value, UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_rows(collector: Collector, context: ReportContext) -> list[tuple[str, str]]:
    """The summary table as (label, value) pairs."""
    times = collector.times
    labels = Counter(collector.labels)
    n = collector.count
    rows: list[tuple[str, str]] = [
        ("source", context.source),
        ("records", f"{n:,} from {collector.files_read:,} files"),
        ("window (records)", f"{_fmt_time(min(times))} to {_fmt_time(max(times))}" if n else "-"),
        (
            "window (requested)",
            f"{_fmt_time(context.since) if context.since else 'start'} to "
            f"{_fmt_time(context.until) if context.until else 'end'}"
            if context.since or context.until
            else "all records",
        ),
        ("outside the window", f"{collector.outside_window:,}"),
    ]
    for (endpoint, variant), count in sorted(collector.per_source.items()):
        name = f"{endpoint or '(unknown endpoint)'} / {variant or '(unknown variant)'}"
        rows.append((f"endpoint {name}", f"{count:,}"))
    for k, name in enumerate(context.classes):
        rows.append(
            (
                f"predicted {name}",
                f"{labels.get(k, 0):,} ({labels.get(k, 0) / n:.1%})" if n else "0",
            )
        )
    mean_conf = sum(collector.confidences) / n if n else 0.0
    rows += [
        ("classes from", context.classes_from),
        ("mean confidence", f"{mean_conf:.3f}"),
        (
            "review rate",
            f"{collector.review_rate:.1%} ({collector.review_count:,} below {collector.threshold:g})",
        ),
        (
            "review rate expected",
            context.expected.describe() if context.expected else "not known: give --model-metrics",
        ),
        (
            "alert above",
            "-" if context.max_review_rate is None else f"{context.max_review_rate:.1%}",
        ),
        ("parse errors", f"{collector.errors_total:,} of {collector.records_seen:,} records"),
        ("generated", _fmt_time(context.generated)),
    ]
    return rows


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: top; } th { background: #f4f4f4; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.2em; }
.alert { background: #fde8e8; border: 1px solid #e99; padding: 0.6em 1em; }
.ok { background: #e8f6ea; border: 1px solid #9c9; padding: 0.6em 1em; }
code { font-size: 0.95em; }
"""


def render_html(
    collector: Collector, context: ReportContext, figures: Figures, alert: str | None
) -> str:
    """Build the self-contained HTML page (figures as data URIs, no external resources)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>scones monitor: {esc(context.source)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Model monitoring report</h1>",
        f"<p>Data Capture from <code>{esc(context.source)}</code>.</p>",
    ]
    if alert:
        parts.append(f'<p class="alert" id="alert"><strong>Alert:</strong> {esc(alert)}</p>')
    else:
        expected = context.expected
        parts.append(
            f'<p class="ok">Review rate {collector.review_rate:.1%} '
            f"(confidence below {collector.threshold:g})"
            + (f"; the model expected {expected.short(collector.threshold)}" if expected else "")
            + ".</p>"
        )
    parts.append('<h2>Summary</h2><table id="summary">')
    for label, value in summary_rows(collector, context):
        parts.append(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>")
    parts.append("</table>")
    for name, (title, png) in figures.pngs.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(
            f'<img src="data:image/png;base64,{data}" alt="{esc(title)}" data-file="{esc(name)}">'
        )
    parts += _errors_html(collector)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _errors_html(collector: Collector) -> list[str]:
    esc = html.escape
    parts = ["<h2>Parse errors</h2>"]
    if not collector.errors_total:
        return [*parts, "<p>None: every record was read.</p>"]
    shown = len(collector.errors_shown)
    parts.append(
        f"<p>{collector.errors_total:,} records could not be read"
        + (
            f" (first {shown} below; all in <code>parse_errors.csv</code>)"
            if shown < collector.errors_total
            else " (also in <code>parse_errors.csv</code>)"
        )
        + ".</p>"
    )
    parts.append('<table id="errors"><tr><th>file</th><th>line</th><th>reason</th></tr>')
    for err in collector.errors_shown:
        parts.append(
            f"<tr><td>{esc(err.location)}</td><td>{err.line}</td><td>{esc(err.reason)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def write_report(
    output: Path,
    collector: Collector,
    context: ReportContext,
    *,
    bucket: str = "auto",
    alert: str | None = None,
) -> tuple[Figures, list[Path]]:
    """Write the PNG figures and ``report.html`` into ``output``; return them and the paths."""
    figures = draw_figures(
        collector, context.classes, bucket=bucket, max_review_rate=context.max_review_rate
    )
    written = []
    for name, (_title, png) in figures.pngs.items():
        path = output / name
        path.write_bytes(png)
        written.append(path)
    report = output / "report.html"
    report.write_text(render_html(collector, context, figures, alert), encoding="utf-8")
    written.append(report)
    return figures, written
