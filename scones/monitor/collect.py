"""Stream capture records into ``inferences.csv``, ``parse_errors.csv`` and compact arrays.

``Collector`` keeps a few numbers per inference (time, confidence, label) in typed arrays, so
100,000 records cost about 1.5 MB; ``InferenceCsv`` writes one CSV row per inference as it
arrives; ``Recorder`` turns the lines of one capture file into both, and counts every record it
cannot use with its file and line.
"""

from __future__ import annotations

import csv
import logging
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from scones.monitor.capture import MAX_LINE_BYTES, CaptureFile, LongLine, iter_captures
from scones.monitor.records import Inference, MalformedCaptureError, format_time, parse_record

log = logging.getLogger(__name__)

MAX_ERRORS_SHOWN = 50
UNKNOWN_CLASSES = "not known: give --classes or --model"
# No Data Capture record can be older than SageMaker (launched 2017-11-29); a time this far
# off (1970, year 1) is a broken clock or a forged record, and would stretch every figure.
EARLIEST = datetime(2017, 11, 29, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)  # records up to a day ahead of this machine's clock are kept


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
        """Inferences collected."""
        return len(self.times)

    @property
    def review_count(self) -> int:
        """Inferences below the confidence threshold (the ones a person has to review)."""
        return sum(1 for c in self.confidences if c < self.threshold)

    @property
    def review_rate(self) -> float:
        """Share of inferences below the confidence threshold (0 when there are none)."""
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
        """Whether the header has been written."""
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


class Recorder:
    """Turns the lines of capture files into CSV rows, collector counts and error rows.

    ``classes`` may be ``None``: the first readable record then fixes how many classes there
    are, named ``class 0``, ``class 1``, ... Records outside ``[since, until)`` are counted, not
    kept; records with another number of probabilities are errors.
    """

    def __init__(
        self,
        collector: Collector,
        rows: IO[str],
        errors: IO[str],
        *,
        classes: Sequence[str] | None,
        classes_from: str,
        endpoint: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        self.collector = collector
        self.classes = list(classes) if classes else None
        self.classes_from = classes_from
        self._rows = InferenceCsv(rows)
        self._errors = csv.writer(errors, lineterminator="\n")
        self._errors.writerow(["file", "line", "error"])
        self._endpoint = endpoint
        self._since = since
        self._until = until
        self._latest = (now or datetime.now(UTC)) + FUTURE_SLACK

    def read_file(self, capture: CaptureFile, lines: Iterable[bytes | str | LongLine]) -> None:
        """Read every line of one file; a file that stops being readable is one error."""
        self.collector.files_read += 1
        endpoint = capture.endpoint or self._endpoint
        number = 0
        try:
            for number, line in enumerate(lines, 1):
                if isinstance(line, LongLine) or line.strip():
                    self._record(capture, endpoint, number, line)
        except Exception as exc:  # a file that stops being readable must not stop the report
            log.warning(
                "capture file unreadable", extra={"file": capture.location, "error": repr(exc)}
            )
            self._error(capture, number, f"file could not be read: {exc.__class__.__name__}: {exc}")

    def _record(
        self, capture: CaptureFile, endpoint: str, number: int, line: bytes | str | LongLine
    ) -> None:
        self.collector.records_seen += 1
        if isinstance(line, LongLine):
            self._error(capture, number, f"line of {line.size:,} bytes, over {MAX_LINE_BYTES:,}")
            return
        try:
            self._use(capture, endpoint, number, parse_record(line))
        except MalformedCaptureError as exc:
            self._error(capture, number, str(exc))
        except Exception as exc:  # one odd record must not stop the rest of its file
            log.warning(
                "capture record unreadable",
                extra={"file": capture.location, "line": number, "error": repr(exc)},
            )
            self._error(capture, number, f"unreadable: {exc.__class__.__name__}: {exc}"[:500])

    def _use(self, capture: CaptureFile, endpoint: str, number: int, inference: Inference) -> None:
        """Window, plausibility and class checks, then one CSV row and the collector's count."""
        if not EARLIEST <= inference.time <= self._latest:
            self._error(capture, number, _implausible(inference.time, self._latest))
            return
        if (self._since is not None and inference.time < self._since) or (
            self._until is not None and inference.time >= self._until
        ):
            self.collector.outside_window += 1
            return
        classes = self._classes_for(inference)
        if len(inference.probabilities) != len(classes):
            self._error(
                capture,
                number,
                f"{len(inference.probabilities)} probabilities, expected {len(classes)} "
                f"({', '.join(classes)[:200]})",
            )
            return
        if not self._rows.started:
            self._rows.start(classes)
        self._rows.write(
            inference,
            endpoint=endpoint,
            variant=capture.variant,
            threshold=self.collector.threshold,
            source=f"{capture.location}:{number}",
        )
        self.collector.add(inference, capture, endpoint)

    def _classes_for(self, inference: Inference) -> list[str]:
        if self.classes is None:
            self.classes = [f"class {k}" for k in range(len(inference.probabilities))]
            self.classes_from = UNKNOWN_CLASSES
        return self.classes

    def _error(self, capture: CaptureFile, line: int, reason: str) -> None:
        self.collector.error(ParseError(capture.location, line, reason))
        self._errors.writerow([capture.location, line, reason])


def _implausible(time: datetime, latest: datetime) -> str:
    when = format_time(time)
    if time < EARLIEST:
        return (
            f"eventMetadata.inferenceTime {when} is before {EARLIEST:%Y-%m-%d} "
            "(SageMaker's launch): not a real capture time"
        )
    return (
        f"eventMetadata.inferenceTime {when} is after {format_time(latest)} "
        "(a day past this machine's clock): not a real capture time"
    )


def read_captures(
    files: Sequence[CaptureFile], recorder: Recorder, s3_client: Any = None, *, progress: bool
) -> None:
    """Feed every file to ``recorder`` in order, with a progress bar when ``progress``."""
    from tqdm import tqdm

    bar = tqdm(
        total=len(files), unit="file", desc="reading captures", disable=None if progress else True
    )
    captures: Iterator[tuple[CaptureFile, Iterator[bytes | LongLine]]] = iter_captures(
        files, s3_client
    )
    for capture, lines in captures:
        recorder.read_file(capture, lines)
        bar.update(1)
        collector = recorder.collector
        bar.set_postfix(records=collector.count, errors=collector.errors_total, refresh=False)
    bar.close()
