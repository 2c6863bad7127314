"""The monitoring use-case: ``run_monitor(options, s3_client)`` reads every capture in the
window and writes ``inferences.csv``, ``parse_errors.csv``, the figures and ``report.html``.

It takes plain values (``MonitorOptions``) and an optional S3 client factory; it prints nothing
but the progress bar. The CLI (``scones.monitor.cli``) turns its exceptions into exit codes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.monitor.capture import CaptureFile, in_window, list_source
from scones.monitor.classes import classes_from_twin
from scones.monitor.collect import Collector, Recorder, read_captures
from scones.monitor.errors import MonitorUsageError, NoCapturesError
from scones.monitor.expected import ExpectedRate, expected_from_twin, read_expected
from scones.monitor.figures import Figures
from scones.monitor.report import ReportContext, write_report

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.93  # the workflow's confidence threshold


@dataclass(frozen=True)
class MonitorOptions:
    """Everything ``run_monitor`` needs, as plain values."""

    source: str
    output: Path
    endpoint: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    threshold: float = DEFAULT_THRESHOLD
    max_review_rate: float | None = None
    classes: Sequence[str] | None = None
    classes_from: str = ""
    twin_endpoints_dir: Path | None = None  # $SCONES_HOME/endpoints, for the twin's class names
    bucket: str = "auto"
    progress: bool = True
    model_metrics: Path | None = None  # metrics.json / model folder / model.tar.gz


@dataclass
class MonitorResult:
    """What a run found and wrote."""

    collector: Collector
    classes: list[str]
    classes_from: str
    written: list[Path] = field(default_factory=list)
    alert: str | None = None
    figures: Figures | None = None
    expected: ExpectedRate | None = None  # the model's own review rate on its validation set

    def _repr_html_(self) -> str:
        """Jupyter: the totals and every figure inline (``scones.notebook.display``)."""
        from scones.notebook.display import monitor_html

        return monitor_html(self)


def run_monitor(
    options: MonitorOptions, s3_client: Callable[[], Any] | None = None
) -> MonitorResult:
    """Read every capture in the window, write the CSV, figures and report; return the totals.

    ``s3_client`` returns a boto3 S3 client (called only for ``s3://`` sources, at most once;
    default ``boto3.client("s3")``). Raises ``CaptureSourceError`` (source unreadable),
    ``NoCapturesError`` (nothing in the window) or ``MonitorUsageError``.
    """
    client = _once(s3_client)
    expected = read_expected(options.model_metrics) if options.model_metrics else None
    files = select_files(options, client)
    output = _make_output(options.output)
    recorder = _write_tables(options, files, client, output)
    collector = recorder.collector
    classes = recorder.classes
    assert classes is not None  # _write_tables raises when nothing was read
    if expected is None and options.twin_endpoints_dir is not None:
        expected = expected_from_twin(options.twin_endpoints_dir, _endpoint_names(options, files))
    alert = review_alert(collector, options.max_review_rate)
    context = ReportContext(
        source=options.source,
        classes=classes,
        classes_from=recorder.classes_from,
        since=options.since,
        until=options.until,
        max_review_rate=options.max_review_rate,
        generated=datetime.now(UTC),
        expected=expected,
    )
    figures, written = write_report(output, collector, context, bucket=options.bucket, alert=alert)
    written = [output / "inferences.csv", output / "parse_errors.csv", *written]
    log.info(
        "monitor report written",
        extra={"records": collector.count, "errors": collector.errors_total, "output": str(output)},
    )
    return MonitorResult(
        collector, classes, recorder.classes_from, written, alert, figures, expected
    )


def _once(factory: Callable[[], Any] | None) -> Callable[[], Any]:
    """A function returning one S3 client, made on the first call."""

    @functools.cache
    def client() -> Any:
        if factory is not None:
            return factory()
        import boto3

        return boto3.client("s3")

    return client


def select_files(options: MonitorOptions, s3_client: Callable[[], Any]) -> list[CaptureFile]:
    """The capture files of ``options.endpoint`` whose hour folder can hold records of the
    window; ``NoCapturesError`` when none is left."""
    source = options.source
    files = list_source(source, s3_client)
    if not files:
        raise NoCapturesError(f"no .jsonl capture files under {source}")
    if options.endpoint:
        files = [f for f in files if f.endpoint in ("", options.endpoint)]
        if not files:
            raise NoCapturesError(f"no captures of endpoint {options.endpoint!r} under {source}")
    listed = len(files)
    files = [f for f in files if in_window(f, options.since, options.until)]
    if not files:
        raise NoCapturesError(
            f"no captures in the window: the {listed:,} files under {source} are all "
            "in hour folders outside --since/--until"
        )
    return files


def _initial_classes(
    options: MonitorOptions, files: Sequence[CaptureFile]
) -> tuple[list[str] | None, str]:
    """The class names given, else those of the twin's endpoints that wrote ``files``."""
    if options.classes:
        return list(options.classes), options.classes_from
    if options.twin_endpoints_dir is not None:
        twin = classes_from_twin(options.twin_endpoints_dir, _endpoint_names(options, files))
        if twin:
            return twin
    return None, options.classes_from


def _endpoint_names(options: MonitorOptions, files: Sequence[CaptureFile]) -> set[str]:
    """The endpoints whose captures are read (from their paths, else ``--endpoint``)."""
    return {f.endpoint or (options.endpoint or "") for f in files}


def _make_output(output: Path) -> Path:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MonitorUsageError(f"--output {output}: cannot create it ({exc.strerror})") from None
    return output


def _write_tables(
    options: MonitorOptions,
    files: Sequence[CaptureFile],
    s3_client: Callable[[], Any],
    output: Path,
) -> Recorder:
    """Stream every file into ``inferences.csv`` and ``parse_errors.csv`` (written as
    ``.partial`` and renamed once complete; removed when no record could be used)."""
    classes, classes_from = _initial_classes(options, files)
    csv_part = output / "inferences.csv.partial"
    errors_part = output / "parse_errors.csv.partial"
    with (
        open(csv_part, "w", newline="", encoding="utf-8") as rows,
        open(errors_part, "w", newline="", encoding="utf-8") as errors,
    ):
        recorder = Recorder(
            Collector(threshold=options.threshold),
            rows,
            errors,
            classes=classes,
            classes_from=classes_from,
            endpoint=options.endpoint or "",
            since=options.since,
            until=options.until,
        )
        s3 = s3_client() if options.source.startswith("s3://") else None
        read_captures(files, recorder, s3, progress=options.progress)
    if recorder.collector.count == 0 or recorder.classes is None:
        csv_part.unlink()
        errors_part.unlink()
        raise _nothing_read(recorder.collector, options.source, len(files))
    csv_part.replace(output / "inferences.csv")
    errors_part.replace(output / "parse_errors.csv")
    return recorder


def _nothing_read(collector: Collector, source: str, files: int) -> NoCapturesError:
    """Why no record made it into the CSV, as the error to raise."""
    if collector.errors_total and not collector.outside_window:
        first = collector.errors_shown[0]
        return NoCapturesError(
            f"none of the {collector.records_seen:,} records under {source} could be read "
            f"(first error: {first.location}:{first.line}: {first.reason})"
        )
    if collector.records_seen:
        return NoCapturesError(
            f"no captures in the window: {collector.outside_window:,} records under "
            f"{source} fall outside --since/--until"
        )
    return NoCapturesError(f"no capture records in {files} files under {source}")


def review_alert(collector: Collector, max_review_rate: float | None) -> str | None:
    """The alert line when the review rate exceeds ``max_review_rate``, else ``None``."""
    if max_review_rate is None or collector.review_rate <= max_review_rate:
        return None
    return (
        f"review rate {collector.review_rate:.1%} ({collector.review_count:,} of "
        f"{collector.count:,} below {collector.threshold:g}) exceeds --max-review-rate "
        f"{max_review_rate:.1%}"
    )
