"""Aggregate parsed captures into compact arrays and render the monitoring report.

``Collector`` keeps a few numbers per inference (time, confidence, label) in typed arrays, so
100,000 records cost about 1.5 MB; ``InferenceCsv`` writes one CSV row per inference as it
arrives; ``write_report`` draws the figures (matplotlib, Agg backend, imported lazily) and writes
a self-contained ``report.html`` with the PNGs embedded as data URIs.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from scones.monitor.capture import CaptureFile, Inference, format_time

MAX_ERRORS_SHOWN = 50
# Bucket widths for the figures over time, finest first; the first giving <= MAX_BUCKETS wins.
BUCKETS: dict[str, timedelta] = {
    "1min": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "15min": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
}
BUCKET_WORDS = {
    "1min": "minute",
    "5min": "5 minutes",
    "15min": "15 minutes",
    "1h": "hour",
    "6h": "6 hours",
    "1d": "day",
}
MAX_BUCKETS = 72


@dataclass(frozen=True)
class ParseError:
    """A record (or file) that could not be read: where and why."""

    location: str
    line: int  # 1-based; 0 when the whole file could not be read
    reason: str


@dataclass
class Collector:
    """Running totals and compact per-inference arrays for the figures."""

    threshold: float
    times: array[float] = field(default_factory=lambda: array("d"))  # POSIX seconds
    confidences: array[float] = field(default_factory=lambda: array("f"))
    labels: array[int] = field(default_factory=lambda: array("H"))
    per_source: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, variant)
    files_read: int = 0
    records_seen: int = 0
    outside_window: int = 0
    errors_total: int = 0
    errors_shown: list[ParseError] = field(default_factory=list)

    def add(self, inference: Inference, capture: CaptureFile, endpoint: str) -> None:
        """Count one parsed inference."""
        self.times.append(inference.time.timestamp())
        self.confidences.append(inference.confidence)
        self.labels.append(inference.label)
        self.per_source[(endpoint, capture.variant)] += 1

    def error(self, error: ParseError) -> None:
        """Count one unreadable record; keep the first few for the report."""
        self.errors_total += 1
        if len(self.errors_shown) < MAX_ERRORS_SHOWN:
            self.errors_shown.append(error)

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def review_count(self) -> int:
        """Inferences below the confidence threshold (the ones a person has to review)."""
        return sum(1 for c in self.confidences if c < self.threshold)

    @property
    def review_rate(self) -> float:
        return self.review_count / self.count if self.count else 0.0


class InferenceCsv:
    """Writes ``inferences.csv`` row by row; the header waits until the classes are known."""

    def __init__(self, handle: IO[str]) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._classes: Sequence[str] | None = None

    def start(self, classes: Sequence[str]) -> None:
        """Write the header for these class names."""
        self._classes = list(classes)
        self._writer.writerow(
            [
                "time",
                "event_id",
                "inference_id",
                "endpoint",
                "variant",
                "predicted_label",
                "predicted_index",
                "confidence",
                *(f"p_{name}" for name in self._classes),
                "passed_threshold",
                "input_bytes",
                "input_content_type",
                "source",
            ]
        )

    @property
    def started(self) -> bool:
        return self._classes is not None

    def write(
        self,
        inference: Inference,
        *,
        endpoint: str,
        variant: str,
        threshold: float,
        source: str,
    ) -> None:
        """Write one row."""
        assert self._classes is not None, "start() first"
        label = inference.label
        confidence = inference.confidence
        self._writer.writerow(
            [
                format_time(inference.time),
                inference.event_id,
                inference.inference_id,
                endpoint,
                variant,
                self._classes[label],
                label,
                repr(confidence),
                *(repr(p) for p in inference.probabilities),
                "true" if confidence >= threshold else "false",
                "" if inference.input_bytes is None else inference.input_bytes,
                inference.input_content_type,
                source,
            ]
        )


def choose_bucket(start: float, end: float, requested: str = "auto") -> str:
    """Pick the bucket width for figures over time (the finest that gives few enough bars)."""
    if requested != "auto":
        return requested
    span = max(end - start, 1.0)
    for name, width in BUCKETS.items():
        if span / width.total_seconds() <= MAX_BUCKETS:
            return name
    return "1d"


@dataclass
class Figures:
    """PNG bytes of every figure, by file name, in the order they appear in the report."""

    pngs: dict[str, tuple[str, bytes]]  # file name -> (title, png bytes)
    bucket: str = "1h"
    # what the bar charts show, per time bucket: start (POSIX s), requests, below threshold,
    # and per class the predictions of that class
    series: dict[str, list[float]] = field(default_factory=dict)


def _bucketize(times: Any, width_s: float) -> tuple[Any, Any]:
    """Return (bucket start times as POSIX seconds, bucket index per inference)."""
    import numpy as np

    first = np.floor(times.min() / width_s) * width_s
    index = ((times - first) // width_s).astype(np.int64)
    starts = first + np.arange(int(index.max()) + 1) * width_s
    return starts, index


def draw_figures(
    collector: Collector,
    classes: Sequence[str],
    *,
    bucket: str = "auto",
    max_review_rate: float | None = None,
) -> Figures:
    """Draw the report's figures from the collector's arrays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import numpy as np

    times = np.frombuffer(collector.times, dtype=np.float64)
    conf = np.frombuffer(collector.confidences, dtype=np.float32)
    labels = np.frombuffer(collector.labels, dtype=np.uint16)
    threshold = collector.threshold
    n_classes = len(classes)
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(n_classes)]
    bucket = choose_bucket(float(times.min()), float(times.max()), bucket)
    width_s = BUCKETS[bucket].total_seconds()
    per = BUCKET_WORDS[bucket]
    starts, index = _bucketize(times, width_s)
    n_buckets = len(starts)
    volume = np.bincount(index, minlength=n_buckets)
    below = np.bincount(index, weights=(conf < threshold), minlength=n_buckets)
    bar_dates = mdates.date2num(np.round(starts).astype("int64").astype("datetime64[s]"))
    bar_width = width_s / 86400.0 * 0.9  # matplotlib dates are in days
    pngs: dict[str, tuple[str, bytes]] = {}

    def finish(fig: Any, name: str, title: str, time_axis: Any = None) -> None:
        if time_axis is not None:
            locator = mdates.AutoDateLocator(tz=UTC)
            time_axis.xaxis.set_major_locator(locator)
            time_axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
            time_axis.set_xlabel("time (UTC)")
        fig.suptitle(title)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        pngs[name] = (title, buffer.getvalue())

    # 1. confidence over time, with the threshold line
    fig, ax = plt.subplots(figsize=(9, 3.6))
    point_dates = mdates.date2num(np.round(times * 1000).astype("int64").astype("datetime64[ms]"))
    size = 28 if len(times) <= 500 else 6 if len(times) <= 20000 else 2
    alpha = 0.9 if len(times) <= 2000 else 0.35
    for k in range(n_classes):
        mask = labels == k
        if mask.any():
            ax.scatter(
                point_dates[mask],
                conf[mask],
                s=size,
                alpha=alpha,
                color=colors[k],
                label=classes[k],
                rasterized=True,
                linewidths=0,
            )
    chunks = np.split(conf[np.argsort(index, kind="stable")], np.cumsum(volume)[:-1])
    medians = np.array([np.median(c) if len(c) else np.nan for c in chunks])
    if n_buckets > 1:
        ax.plot(
            bar_dates + bar_width / 0.9 / 2,
            medians,
            color="black",
            linewidth=1.2,
            marker="." if n_buckets <= 72 else None,
            label=f"median per {per}",
        )
    ax.axhline(
        threshold, color="crimson", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}"
    )
    ax.set_ylim(max(0.0, min(float(conf.min()), 1.0 / n_classes) - 0.03), 1.02)
    ax.set_ylabel("confidence")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    finish(fig, "confidence_over_time.png", "Confidence of each prediction over time", ax)

    # 2. confidence histogram, stacked by predicted class
    fig, ax = plt.subplots(figsize=(9, 3.6))
    low = min(float(conf.min()), 1.0 / n_classes)
    step = (1.0 - low) / 40
    # bin edges on a grid through the threshold, so no bar mixes passed and failed predictions
    below_edges = int(np.ceil((threshold - low) / step)) if threshold > low else 0
    first_edge = threshold - below_edges * step
    bins: Any = first_edge + step * np.arange(int(np.ceil((1.0 - first_edge) / step)) + 2)
    bins = bins[: int(np.searchsorted(bins, 1.0, side="left")) + 1]
    ax.hist(
        [conf[labels == k] for k in range(n_classes)],
        bins=bins,
        stacked=True,
        color=colors,
        label=list(classes),
    )
    ax.axvline(
        threshold, color="crimson", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}"
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("predictions")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    finish(fig, "confidence_histogram.png", "Confidence histogram")

    # 3. class mix over time (share of each predicted class per bucket)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    bottom = np.zeros(n_buckets)
    safe_volume = np.where(volume > 0, volume, 1)
    for k in range(n_classes):
        share = np.bincount(index, weights=(labels == k), minlength=n_buckets) / safe_volume
        ax.bar(
            bar_dates,
            share,
            width=bar_width,
            bottom=bottom,
            color=colors[k],
            label=classes[k],
            align="edge",
        )
        bottom += share
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of predictions")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finish(fig, "class_mix.png", f"Predicted class mix per {per}", ax)

    # 4. review (low-confidence) rate per bucket
    fig, ax = plt.subplots(figsize=(9, 3.6))
    rate = np.where(volume > 0, below / safe_volume, np.nan)
    ax.bar(
        bar_dates,
        np.nan_to_num(rate),
        width=bar_width,
        color="darkorange",
        align="edge",
        label="review rate",
    )
    ax.axhline(
        collector.review_rate,
        color="grey",
        linestyle=":",
        linewidth=1.2,
        label=f"overall {collector.review_rate:.1%}",
    )
    if max_review_rate is not None:
        ax.axhline(
            max_review_rate,
            color="crimson",
            linestyle="--",
            linewidth=1.2,
            label=f"alert above {max_review_rate:.1%}",
        )
    if n_buckets <= 36:  # say how many of how many, so an empty bar and a 0% bar differ
        for x, k, n in zip(bar_dates, below, volume, strict=True):
            if n:
                ax.annotate(
                    f"{int(k)}/{int(n)}",
                    (x + bar_width / 2, 0),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    fontsize="x-small",
                )
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_ylabel(f"below {threshold:g}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finish(fig, "review_rate.png", f"Low-confidence (review) rate per {per}", ax)

    # 5. request volume
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(bar_dates, volume, width=bar_width, color="steelblue", align="edge")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"requests per {per}")
    finish(fig, "request_volume.png", f"Captured requests per {per}", ax)
    series: dict[str, list[float]] = {
        "bucket_start": starts.tolist(),
        "volume": volume.tolist(),
        "below_threshold": below.tolist(),
        "median_confidence": medians.tolist(),
    }
    for k, name in enumerate(classes):
        series[f"class {name}"] = np.bincount(
            index, weights=(labels == k), minlength=n_buckets
        ).tolist()
    return Figures(pngs, bucket, series)


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
        parts.append(
            f'<p class="ok">Review rate {collector.review_rate:.1%} '
            f"(confidence below {collector.threshold:g}).</p>"
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
    parts.append("<h2>Parse errors</h2>")
    if collector.errors_total:
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
    else:
        parts.append("<p>None: every record was read.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


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
