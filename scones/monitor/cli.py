"""``scones monitor``: read an endpoint's Data Capture and show how the model is doing.

SOURCE is an ``s3://bucket/prefix`` (read with boto3's standard settings, so
``AWS_ENDPOINT_URL_S3`` points it at the offline twin) or a local folder of ``.jsonl`` capture
files. The command streams every record once: one CSV row per inference, compact arrays for the
figures, and a count (with file and line) of every record that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scones.monitor.capture import (
    CaptureFile,
    CaptureSourceError,
    MalformedCaptureError,
    in_window,
    iter_captures,
    list_local,
    list_s3,
    parse_record,
    parse_time,
    split_s3_uri,
)
from scones.monitor.report import (
    BUCKETS,
    Collector,
    Figures,
    InferenceCsv,
    ParseError,
    ReportContext,
    write_report,
)

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ALERT = 1
EXIT_USAGE = 2
EXIT_NO_CAPTURES = 3
EXIT_SOURCE = 4
DEFAULT_THRESHOLD = 0.93


class MonitorUsageError(ValueError):
    """An option value the monitor cannot use (bad time, classes, model archive...)."""


class NoCapturesError(LookupError):
    """The source holds no Data Capture records (in the requested window)."""


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


@dataclass
class MonitorResult:
    """What a run found and wrote."""

    collector: Collector
    classes: list[str]
    classes_from: str
    written: list[Path] = field(default_factory=list)
    alert: str | None = None
    figures: Figures | None = None


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime) -> datetime:
    """Parse ``--since``/``--until``: ISO 8601 (naive means UTC) or an age such as ``24h``, ``7d``."""
    value = text.strip()
    match = _RELATIVE.match(value.lower())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        return parse_time(value)
    except ValueError:
        raise MonitorUsageError(
            f"{text!r} is not a time: use ISO 8601 (2026-11-27T18:00, 2026-11-27) or an age (30m, 24h, 7d)"
        ) from None


def parse_classes(text: str) -> list[str]:
    """Parse ``--classes bicycle,motorcycle``."""
    names = [name.strip() for name in text.split(",")]
    if len(names) < 2 or not all(names):
        raise MonitorUsageError(f"--classes {text!r}: give two or more comma-separated names")
    if len(set(names)) != len(names):
        raise MonitorUsageError(f"--classes {text!r}: names repeat")
    return names


def _classes_from_json(data: Any, where: str) -> list[str]:
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise MonitorUsageError(f"{where}: classes.json has no list of class names under 'classes'")
    return classes


def classes_from_model(path: Path) -> list[str]:
    """Read the class names from a ``model.tar.gz``'s ``classes.json``."""
    try:
        with tarfile.open(path, "r:*") as archive:
            member = next(
                (m for m in archive.getmembers() if m.name.removeprefix("./") == "classes.json"),
                None,
            )
            handle = archive.extractfile(member) if member is not None else None
            raw = handle.read() if handle is not None else None
    except FileNotFoundError:
        raise MonitorUsageError(f"--model {path}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise MonitorUsageError(f"--model {path}: not a readable tar archive ({exc})") from None
    if raw is None:
        raise MonitorUsageError(f"--model {path}: no classes.json file in the archive")
    try:
        data = json.loads(raw)
    except ValueError:
        raise MonitorUsageError(f"--model {path}: classes.json is not valid JSON") from None
    return _classes_from_json(data, f"--model {path}")


def classes_from_twin(
    endpoints_dir: Path, endpoint_names: set[str]
) -> tuple[list[str], str] | None:
    """Class names of local (offline twin) endpoints, if exactly one set is found."""
    found: dict[tuple[str, ...], str] = {}
    for name in sorted(endpoint_names):
        if not name:
            continue
        path = endpoints_dir / name / "model" / "classes.json"
        if path.is_file():
            try:
                classes = _classes_from_json(json.loads(path.read_text()), str(path))
            except (ValueError, OSError) as exc:
                log.warning(
                    "ignoring unreadable twin classes", extra={"path": str(path), "error": str(exc)}
                )
                continue
            found.setdefault(tuple(classes), str(path))
    if len(found) != 1:
        return None
    names, where = next(iter(found.items()))
    return list(names), where


def list_source(source: str, s3_client: Callable[[], Any]) -> list[CaptureFile]:
    """List the capture files of a local folder or an S3 prefix."""
    if source.startswith("s3://"):
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        bucket, prefix = split_s3_uri(source)
        try:
            return list_s3(s3_client(), bucket, prefix)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            detail = error.get("Code") or "error"
            if error.get("Message"):
                detail += f" ({error['Message']})"
            raise CaptureSourceError(f"cannot list {source}: {detail}") from None
        except (NoCredentialsError, EndpointConnectionError) as exc:
            hint = 'for the offline twin: eval "$(scones env)" after scones up'
            raise CaptureSourceError(f"cannot list {source}: {exc} ({hint})") from None
        except BotoCoreError as exc:
            raise CaptureSourceError(f"cannot list {source}: {exc}") from None
    return list_local(Path(source))


def run_monitor(
    options: MonitorOptions, s3_client: Callable[[], Any] | None = None
) -> MonitorResult:
    """Read every capture in the window, write the CSV, figures and report; return the totals.

    ``s3_client`` returns a boto3 S3 client (called only for ``s3://`` sources).
    Raises ``CaptureSourceError`` (source unreadable), ``NoCapturesError`` (nothing in the
    window) or ``MonitorUsageError``.
    """
    from tqdm import tqdm

    client_cache: list[Any] = []

    def client() -> Any:
        if not client_cache:
            if s3_client is None:
                import boto3

                client_cache.append(boto3.client("s3"))
            else:
                client_cache.append(s3_client())
        return client_cache[0]

    files = list_source(options.source, client)
    if not files:
        raise NoCapturesError(f"no .jsonl capture files under {options.source}")
    if options.endpoint:
        files = [f for f in files if f.endpoint in ("", options.endpoint)]
        if not files:
            raise NoCapturesError(
                f"no captures of endpoint {options.endpoint!r} under {options.source}"
            )
    listed = len(files)
    files = [f for f in files if in_window(f, options.since, options.until)]
    if not files:
        raise NoCapturesError(
            f"no captures in the window: the {listed:,} files under {options.source} are all "
            "in hour folders outside --since/--until"
        )

    classes: list[str] | None = list(options.classes) if options.classes else None
    classes_from = options.classes_from
    if classes is None and options.twin_endpoints_dir is not None:
        names = {f.endpoint or (options.endpoint or "") for f in files}
        twin = classes_from_twin(options.twin_endpoints_dir, names)
        if twin:
            classes, classes_from = twin[0], twin[1]

    collector = Collector(threshold=options.threshold)
    output = options.output
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MonitorUsageError(f"--output {output}: cannot create it ({exc.strerror})") from None
    csv_part = output / "inferences.csv.partial"
    errors_part = output / "parse_errors.csv.partial"
    since, until = options.since, options.until
    with (
        open(csv_part, "w", newline="", encoding="utf-8") as csv_handle,
        open(errors_part, "w", newline="", encoding="utf-8") as errors_handle,
    ):
        import csv

        rows = InferenceCsv(csv_handle)
        errors_csv = csv.writer(errors_handle, lineterminator="\n")
        errors_csv.writerow(["file", "line", "error"])

        def error(capture: CaptureFile, line: int, reason: str) -> None:
            collector.error(ParseError(capture.location, line, reason))
            errors_csv.writerow([capture.location, line, reason])

        s3 = options.source.startswith("s3://")
        progress = tqdm(
            total=len(files),
            unit="file",
            desc="reading captures",
            disable=None if options.progress else True,
        )
        for capture, lines in iter_captures(files, client() if s3 else None):
            endpoint = capture.endpoint or (options.endpoint or "")
            collector.files_read += 1
            number = 0
            try:
                for number, line in enumerate(lines, 1):
                    if not line.strip():
                        continue
                    collector.records_seen += 1
                    try:
                        inference = parse_record(line)
                    except MalformedCaptureError as exc:
                        error(capture, number, str(exc))
                        continue
                    if (since is not None and inference.time < since) or (
                        until is not None and inference.time >= until
                    ):
                        collector.outside_window += 1
                        continue
                    if classes is None:
                        classes = [f"class {k}" for k in range(len(inference.probabilities))]
                        classes_from = "not known: give --classes or --model"
                    if len(inference.probabilities) != len(classes):
                        error(
                            capture,
                            number,
                            f"{len(inference.probabilities)} probabilities, expected {len(classes)} "
                            f"({', '.join(classes)})",
                        )
                        continue
                    if not rows.started:
                        rows.start(classes)
                    rows.write(
                        inference,
                        endpoint=endpoint,
                        variant=capture.variant,
                        threshold=options.threshold,
                        source=f"{capture.location}:{number}",
                    )
                    collector.add(inference, capture, endpoint)
            except Exception as exc:  # a file that stops being readable must not stop the report
                log.warning(
                    "capture file unreadable", extra={"file": capture.location, "error": repr(exc)}
                )
                error(capture, number, f"file could not be read: {exc.__class__.__name__}: {exc}")
            progress.update(1)
            progress.set_postfix(
                records=collector.count, errors=collector.errors_total, refresh=False
            )
        progress.close()

    if collector.count == 0 or classes is None:
        csv_part.unlink()
        errors_part.unlink()
        if collector.errors_total and not collector.outside_window:
            raise NoCapturesError(
                f"none of the {collector.records_seen:,} records under {options.source} could be read "
                f"(first error: {collector.errors_shown[0].location}:{collector.errors_shown[0].line}: "
                f"{collector.errors_shown[0].reason})"
            )
        if collector.records_seen:
            raise NoCapturesError(
                f"no captures in the window: {collector.outside_window:,} records under "
                f"{options.source} fall outside --since/--until"
            )
        raise NoCapturesError(f"no capture records in {len(files)} files under {options.source}")
    csv_part.replace(output / "inferences.csv")
    errors_part.replace(output / "parse_errors.csv")

    alert = None
    if options.max_review_rate is not None and collector.review_rate > options.max_review_rate:
        alert = (
            f"review rate {collector.review_rate:.1%} ({collector.review_count:,} of "
            f"{collector.count:,} below {options.threshold:g}) exceeds --max-review-rate "
            f"{options.max_review_rate:.1%}"
        )
    context = ReportContext(
        source=options.source,
        classes=classes,
        classes_from=classes_from,
        since=options.since,
        until=options.until,
        max_review_rate=options.max_review_rate,
        generated=datetime.now(UTC),
    )
    figures, written = write_report(output, collector, context, bucket=options.bucket, alert=alert)
    written = [output / "inferences.csv", output / "parse_errors.csv", *written]
    log.info(
        "monitor report written",
        extra={"records": collector.count, "errors": collector.errors_total, "output": str(output)},
    )
    return MonitorResult(collector, classes, classes_from, written, alert, figures)


DESCRIPTION = """\
Read an endpoint's Data Capture (what SageMaker, or the offline twin, records for every
request) and show how the model is doing.

SOURCE is the capture prefix, s3://BUCKET/PREFIX (SageMaker layout:
PREFIX/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl; the endpoint and variant are read from the
path), or a local folder of .jsonl files in the same layout or flat. S3 is read with boto3's
standard settings: after `eval "$(scones env)"` that is the offline twin's S3.

Writes into --output:
  inferences.csv     one row per inference: time, event id, endpoint, variant, predicted label,
                     confidence, every class probability, passed threshold, input size
  report.html        self-contained page: summary table + the figures below
  confidence_over_time.png, confidence_histogram.png, class_mix.png, review_rate.png,
  request_volume.png
  parse_errors.csv   every record that could not be read (file, line, reason)

Class names come from --classes, --model model.tar.gz (its classes.json), or, for an endpoint
of the offline twin, $SCONES_HOME/endpoints/<endpoint>/model/classes.json; else "class 0", ...

Exit codes (for scripts and alarms):
  0  report written; review rate within --max-review-rate (or no limit given)
  1  report written, but the review rate (confidence below --threshold) exceeds --max-review-rate
  2  bad arguments
  3  no captures found (no files, none in the --since/--until window, or none readable)
  4  SOURCE cannot be read (missing folder, S3 bucket or credentials, S3 unreachable)

Examples:
  scones monitor s3://my-bucket/data_capture --output report --since 24h --max-review-rate 0.2
  scones monitor ./captures --output report --classes bicycle,motorcycle
"""


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (or 0% and 100%)")
    return value


def register(subparsers: Any) -> None:
    """Add ``scones monitor`` to the CLI."""
    parser = subparsers.add_parser(
        "monitor",
        help="Data Capture -> CSV + HTML report + figures (alert on low confidence)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source", metavar="SOURCE", help="s3://BUCKET/PREFIX or a local folder of .jsonl captures"
    )
    parser.add_argument(
        "--output",
        "-o",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder for the CSV, figures and report (created if missing)",
    )
    parser.add_argument(
        "--endpoint",
        metavar="NAME",
        help="only this endpoint's captures (names the endpoint of flat folders)",
    )
    parser.add_argument(
        "--since",
        metavar="T",
        help="first time to include: ISO 8601 (UTC unless an offset is given) or an age such as 24h, 7d",
    )
    parser.add_argument(
        "--until", metavar="T", help="end of the window (exclusive), same forms as --since"
    )
    parser.add_argument(
        "--threshold",
        type=_rate,
        default=DEFAULT_THRESHOLD,
        metavar="P",
        help="confidence below which a prediction needs review (default %(default)s, as the workflow)",
    )
    parser.add_argument(
        "--max-review-rate",
        type=_rate,
        metavar="R",
        help="exit 1 when the share of predictions below --threshold exceeds R (0.2 or 20%%)",
    )
    names = parser.add_mutually_exclusive_group()
    names.add_argument(
        "--classes", metavar="A,B", help="class names in label order, e.g. bicycle,motorcycle"
    )
    names.add_argument(
        "--model",
        type=Path,
        metavar="model.tar.gz",
        help="take the class names from this model's classes.json",
    )
    parser.add_argument(
        "--bucket",
        choices=["auto", *BUCKETS],
        default="auto",
        help="time bucket of the figures over time (default: auto, the finest giving at most 72 bars)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Run ``scones monitor``; print a short summary; return the exit code."""
    from scones.settings import Settings

    try:
        now = datetime.now(UTC)
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
        if since and until and since >= until:
            raise MonitorUsageError(f"--since {args.since} is not before --until {args.until}")
        classes: list[str] | None = None
        classes_from = ""
        if args.classes:
            classes, classes_from = parse_classes(args.classes), "--classes"
        elif args.model:
            classes, classes_from = classes_from_model(args.model), f"--model {args.model}"
        options = MonitorOptions(
            source=args.source,
            output=args.output,
            endpoint=args.endpoint,
            since=since,
            until=until,
            threshold=args.threshold,
            max_review_rate=args.max_review_rate,
            classes=classes,
            classes_from=classes_from,
            twin_endpoints_dir=Settings.from_env().endpoints_dir,
            bucket=args.bucket,
            progress=not args.no_progress,
        )
        result = run_monitor(options)
    except MonitorUsageError as exc:
        print(f"scones monitor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CaptureSourceError as exc:
        print(f"scones monitor: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    except NoCapturesError as exc:
        print(f"scones monitor: {exc}", file=sys.stderr)
        return EXIT_NO_CAPTURES

    c = result.collector
    print(
        f"{c.count:,} inferences from {c.files_read:,} files; review rate {c.review_rate:.1%} "
        f"({c.review_count:,} below {args.threshold:g}); {c.errors_total:,} parse errors; "
        f"{c.outside_window:,} outside the window"
    )
    print(f"wrote {args.output / 'report.html'} and {args.output / 'inferences.csv'}")
    if c.errors_total:
        print(
            f"scones monitor: warning: {c.errors_total:,} records could not be read "
            f"(see {args.output / 'parse_errors.csv'})",
            file=sys.stderr,
        )
    if result.alert:
        print(f"scones monitor: ALERT: {result.alert}", file=sys.stderr)
        return EXIT_ALERT
    return EXIT_OK
