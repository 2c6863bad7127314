"""The report's figures, drawn with matplotlib (Agg backend, imported lazily) from a collector.

Five PNGs: confidence of each prediction over time, a confidence histogram, the predicted class
mix per time bucket, the low-confidence (review) rate per bucket and the request volume. The
bucket is the finest width that gives at most ``MAX_BUCKETS`` bars, unless one is asked for.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from scones.monitor.collect import Collector

log = logging.getLogger(__name__)

# Bucket widths for the figures over time, finest first; the first giving <= MAX_BUCKETS wins.
BUCKETS: dict[str, timedelta] = {
    "1min": timedelta(minutes=1),
    "5min": timedelta(minutes=5),
    "15min": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
BUCKET_WORDS = {
    "1min": "minute",
    "5min": "5 minutes",
    "15min": "15 minutes",
    "1h": "hour",
    "6h": "6 hours",
    "1d": "day",
    "7d": "week",
    "30d": "30 days",
}
MAX_BUCKETS = 72
MAX_CLASSES_SHOWN = 10  # the class mix shows the 9 most predicted and "other" beyond this
MAX_ASKED_BUCKETS = 2_000  # an asked-for --bucket giving more bars than this falls back to auto
_SIZE = (9, 3.6)  # inches; 900x360 pixels at 100 dpi
_LEGEND = {"fontsize": "small", "loc": "upper left", "bbox_to_anchor": (1.0, 1.0)}


@dataclass
class Figures:
    """PNG bytes of every figure, by file name, in the order they appear in the report."""

    pngs: dict[str, tuple[str, bytes]]  # file name -> (title, png bytes)
    bucket: str = "1h"
    # what the bar charts show, per time bucket: start (POSIX s), requests, below threshold,
    # and per class the predictions of that class
    series: dict[str, list[float]] = field(default_factory=dict)


def choose_bucket(start: float, end: float, requested: str = "auto") -> str:
    """Pick the bucket width for figures over time: the finest giving at most ``MAX_BUCKETS``
    bars (the widest when none does), or ``requested`` unless it would give more than
    ``MAX_ASKED_BUCKETS`` bars over the records' span."""
    span = max(end - start, 1.0)
    if requested != "auto":
        bars = span / BUCKETS[requested].total_seconds()
        if bars <= MAX_ASKED_BUCKETS:
            return requested
        log.warning(
            "--bucket gives too many bars; choosing one",
            extra={"bucket": requested, "bars": int(bars), "limit": MAX_ASKED_BUCKETS},
        )
    for name, width in BUCKETS.items():
        if span / width.total_seconds() <= MAX_BUCKETS:
            return name
    return next(reversed(BUCKETS))


def _bucketize(times: Any, width_s: float) -> tuple[Any, Any]:
    """Return (bucket start times as POSIX seconds, bucket index per inference)."""
    import numpy as np

    first = np.floor(times.min() / width_s) * width_s
    index = ((times - first) // width_s).astype(np.int64)
    starts = first + np.arange(int(index.max()) + 1) * width_s
    return starts, index


@dataclass
class _Data:
    """The collector's arrays as numpy arrays, bucketed, with what every figure shares."""

    times: Any  # POSIX seconds
    conf: Any
    labels: Any
    classes: Sequence[str]
    colors: list[Any]
    threshold: float
    review_rate: float
    max_review_rate: float | None
    bucket: str
    per: str  # the bucket in words: "hour", "5 minutes"
    starts: Any  # bucket start, POSIX seconds
    index: Any  # bucket of each inference
    volume: Any  # inferences per bucket
    below: Any  # inferences below the threshold per bucket
    medians: Any  # median confidence per bucket (NaN when empty)
    bar_dates: Any  # bucket starts as matplotlib dates
    bar_width: float  # in days, 90% of the bucket


def _prepare(
    collector: Collector, classes: Sequence[str], bucket: str, max_review_rate: float | None
) -> _Data:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import numpy as np

    times = np.frombuffer(collector.times, dtype=np.float64)
    conf = np.frombuffer(collector.confidences, dtype=np.float32)
    bucket = choose_bucket(float(times.min()), float(times.max()), bucket)
    width_s = BUCKETS[bucket].total_seconds()
    starts, index = _bucketize(times, width_s)
    volume = np.bincount(index, minlength=len(starts))
    chunks = np.split(conf[np.argsort(index, kind="stable")], np.cumsum(volume)[:-1])
    return _Data(
        times=times,
        conf=conf,
        labels=np.frombuffer(collector.labels, dtype=np.uint16),
        classes=classes,
        colors=[plt.get_cmap("tab10")(i % 10) for i in range(len(classes))],
        threshold=collector.threshold,
        review_rate=collector.review_rate,
        max_review_rate=max_review_rate,
        bucket=bucket,
        per=BUCKET_WORDS[bucket],
        starts=starts,
        index=index,
        volume=volume,
        below=np.bincount(index, weights=(conf < collector.threshold), minlength=len(starts)),
        medians=np.array([np.median(c) if len(c) else np.nan for c in chunks]),
        bar_dates=mdates.date2num(np.round(starts).astype("int64").astype("datetime64[s]")),
        bar_width=width_s / 86400.0 * 0.9,  # matplotlib dates are in days
    )


def _png(fig: Any, title: str, time_axis: Any = None) -> bytes:
    """Title, lay out and render ``fig`` (closing it); label ``time_axis`` as UTC dates."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

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
    return buffer.getvalue()


def _line(color: str, linestyle: str, label: str) -> dict[str, Any]:
    """Style of a reference line (threshold, overall rate, alert level)."""
    return {"color": color, "linestyle": linestyle, "linewidth": 1.2, "label": label}


def _threshold_line(d: _Data) -> dict[str, Any]:
    return _line("crimson", "--", f"threshold {d.threshold:g}")


def _confidence_over_time(d: _Data) -> tuple[str, bytes]:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=_SIZE)
    point_dates = mdates.date2num(np.round(d.times * 1000).astype("int64").astype("datetime64[ms]"))
    n = len(d.times)
    size = 28 if n <= 500 else 6 if n <= 20000 else 2
    alpha = 0.9 if n <= 2000 else 0.35
    for name, mask, color in _groups(d):
        if mask.any():
            ax.scatter(
                point_dates[mask],
                d.conf[mask],
                s=size,
                alpha=alpha,
                color=color,
                label=name,
                rasterized=True,
                linewidths=0,
            )
    n_buckets = len(d.starts)
    if n_buckets > 1:
        ax.plot(
            d.bar_dates + d.bar_width / 0.9 / 2,
            d.medians,
            color="black",
            linewidth=1.2,
            marker="." if n_buckets <= 72 else None,
            label=f"median per {d.per}",
        )
    ax.axhline(d.threshold, **_threshold_line(d))
    ax.set_ylim(max(0.0, min(float(d.conf.min()), 1.0 / len(d.classes)) - 0.03), 1.02)
    ax.set_ylabel("confidence")
    ax.legend(**_LEGEND)
    ax.grid(alpha=0.3)
    title = "Confidence of each prediction over time"
    return title, _png(fig, title, ax)


def _histogram_bins(d: _Data) -> Any:
    """40 bins from the lowest confidence to 1, on a grid through the threshold, so no bar
    mixes passed and failed predictions."""
    import numpy as np

    low = min(float(d.conf.min()), 1.0 / len(d.classes))
    step = (1.0 - low) / 40
    below_edges = int(np.ceil((d.threshold - low) / step)) if d.threshold > low else 0
    first_edge = d.threshold - below_edges * step
    bins: Any = first_edge + step * np.arange(int(np.ceil((1.0 - first_edge) / step)) + 2)
    return bins[: int(np.searchsorted(bins, 1.0, side="left")) + 1]


def _confidence_histogram(d: _Data) -> tuple[str, bytes]:
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=_SIZE)
    groups = _groups(d)
    ax.hist(
        [d.conf[mask] for _, mask, _ in groups],
        bins=_histogram_bins(d),
        stacked=True,
        color=[color for _, _, color in groups],
        label=[name for name, _, _ in groups],
    )
    ax.axvline(d.threshold, **_threshold_line(d))
    ax.set_xlabel("confidence")
    ax.set_ylabel("predictions")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.legend(**_LEGEND)
    ax.grid(alpha=0.3)
    title = "Confidence histogram"
    return title, _png(fig, title)


def _class_counts(d: _Data, k: int) -> Any:
    """Predictions of class ``k`` per bucket."""
    import numpy as np

    return np.bincount(d.index, weights=(d.labels == k), minlength=len(d.starts))


def _groups(d: _Data) -> list[tuple[str, Any, Any]]:
    """(name, mask over the inferences, color) of each class, or, past ``MAX_CLASSES_SHOWN``
    classes, of the most predicted ones and one "other" group: every figure stays readable,
    and its cost bounded, whatever the number of classes."""
    import numpy as np

    k_all = len(d.classes)
    if k_all <= MAX_CLASSES_SHOWN:
        return [(d.classes[k], d.labels == k, d.colors[k]) for k in range(k_all)]
    totals = np.bincount(d.labels, minlength=k_all)
    top = sorted(np.argsort(-totals, kind="stable")[: MAX_CLASSES_SHOWN - 1].tolist())
    groups = [(d.classes[k], d.labels == k, d.colors[k]) for k in top]
    other = np.isin(d.labels, top, invert=True)
    groups.append((f"other ({k_all - len(top)} classes)", other, "#bbbbbb"))
    return groups


def _class_mix(d: _Data) -> tuple[str, bytes]:
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=_SIZE)
    bottom = np.zeros(len(d.starts))
    safe_volume = np.where(d.volume > 0, d.volume, 1)
    for name, mask, color in _groups(d):
        share = np.bincount(d.index, weights=mask, minlength=len(d.starts)) / safe_volume
        ax.bar(
            d.bar_dates,
            share,
            width=d.bar_width,
            bottom=bottom,
            color=color,
            label=name,
            align="edge",
        )
        bottom += share
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of predictions")
    ax.legend(**_LEGEND)
    title = f"Predicted class mix per {d.per}"
    return title, _png(fig, title, ax)


def _review_rate(d: _Data) -> tuple[str, bytes]:
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=_SIZE)
    rate = np.where(d.volume > 0, d.below / np.where(d.volume > 0, d.volume, 1), np.nan)
    ax.bar(
        d.bar_dates,
        np.nan_to_num(rate),
        width=d.bar_width,
        color="darkorange",
        align="edge",
        label="review rate",
    )
    ax.axhline(d.review_rate, **_line("grey", ":", f"overall {d.review_rate:.1%}"))
    if d.max_review_rate is not None:
        limit = d.max_review_rate
        ax.axhline(limit, **_line("crimson", "--", f"alert above {limit:.1%}"))
    if len(d.starts) <= 36:  # say how many of how many, so an empty bar and a 0% bar differ
        for x, k, n in zip(d.bar_dates, d.below, d.volume, strict=True):
            if n:
                ax.annotate(
                    f"{int(k)}/{int(n)}",
                    (x + d.bar_width / 2, 0),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    fontsize="x-small",
                )
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylabel(f"below {d.threshold:g}")
    ax.legend(**_LEGEND)
    title = f"Low-confidence (review) rate per {d.per}"
    return title, _png(fig, title, ax)


def _request_volume(d: _Data) -> tuple[str, bytes]:
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, ax = plt.subplots(figsize=_SIZE)
    ax.bar(d.bar_dates, d.volume, width=d.bar_width, color="steelblue", align="edge")
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel(f"requests per {d.per}")
    title = f"Captured requests per {d.per}"
    return title, _png(fig, title, ax)


FIGURES = {
    "confidence_over_time.png": _confidence_over_time,
    "confidence_histogram.png": _confidence_histogram,
    "class_mix.png": _class_mix,
    "review_rate.png": _review_rate,
    "request_volume.png": _request_volume,
}


def draw_figures(
    collector: Collector,
    classes: Sequence[str],
    *,
    bucket: str = "auto",
    max_review_rate: float | None = None,
) -> Figures:
    """Draw the report's figures from the collector's arrays (at least one inference)."""
    import matplotlib

    matplotlib.use("Agg")
    d = _prepare(collector, classes, bucket, max_review_rate)
    pngs = {name: draw(d) for name, draw in FIGURES.items()}
    series: dict[str, list[float]] = {
        "bucket_start": d.starts.tolist(),
        "volume": d.volume.tolist(),
        "below_threshold": d.below.tolist(),
        "median_confidence": d.medians.tolist(),
    }
    for k, name in enumerate(classes):
        series[f"class {name}"] = _class_counts(d, k).tolist()
    return Figures(pngs, d.bucket, series)
