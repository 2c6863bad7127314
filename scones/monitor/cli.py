"""``scones monitor``: the subcommand. Parses the options, calls ``run_monitor``, prints a
summary, and maps what went wrong to the documented exit codes (0 ok, 1 alert, 2 bad arguments,
3 no captures, 4 source unreadable, 5 a bug: an unexpected error, with its traceback).

SOURCE is an ``s3://bucket/prefix`` (read with boto3's standard settings, so
``AWS_ENDPOINT_URL_S3`` points it at the offline twin) or a local folder of ``.jsonl`` capture
files; see ``scones.monitor.run`` for what is read and written.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scones.errors import ErrorTable, user_errors
from scones.monitor.classes import classes_from_model, parse_classes
from scones.monitor.errors import CaptureSourceError, MonitorUsageError, NoCapturesError
from scones.monitor.figures import BUCKETS
from scones.monitor.records import parse_time
from scones.monitor.run import DEFAULT_THRESHOLD, MonitorOptions, MonitorResult, run_monitor

EXIT_OK = 0
EXIT_ALERT = 1
EXIT_USAGE = 2
EXIT_NO_CAPTURES = 3
EXIT_SOURCE = 4
EXIT_CRASH = 5  # never 1: a crash must not read as an alert

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, now: datetime) -> datetime:
    """Parse ``--since``/``--until``: ISO 8601 (naive means UTC) or an age such as ``24h``, ``7d``."""
    value = text.strip()
    match = _RELATIVE.match(value.lower())
    try:
        if match:
            return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
        return parse_time(value)
    except (ValueError, OverflowError):
        raise MonitorUsageError(
            f"{text!r} is not a time: use ISO 8601 (2026-11-27T18:00, 2026-11-27) or an age (30m, 24h, 7d)"
        ) from None


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
  parse_errors.csv   every record that could not be read (file, line, reason): bad JSON or
                     UTF-8, nesting too deep, a line over 16 MiB, more than 1,000 classes, a
                     time that is no time or is before 2017-11-29 / more than a day ahead

The figures over time span the records read (inside --since/--until when given).

Class names come from --classes, --model model.tar.gz (its classes.json), or, for an endpoint
of the offline twin, $SCONES_HOME/endpoints/<endpoint>/model/classes.json; else "class 0", ...
The review rate the model expects (its validation images below the threshold, from its
metrics.json) is shown beside the observed one: from --model-metrics, or for an endpoint of
the offline twin from the model it serves.

Exit codes (for scripts and alarms):
  0  report written; review rate within --max-review-rate (or no limit given)
  1  report written, but the review rate (confidence below --threshold) exceeds --max-review-rate
  2  bad arguments
  3  no captures found (no files, none in the --since/--until window, or none readable)
  4  SOURCE cannot be read (missing folder, S3 bucket or credentials, S3 unreachable)
  5  unexpected error (a bug in scones: the traceback is printed; please report it)

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
        "--model-metrics",
        type=Path,
        metavar="PATH",
        help="the model's metrics.json (or its model folder or model.tar.gz): show the review "
        "rate it expects beside the observed one",
    )
    parser.add_argument(
        "--bucket",
        choices=["auto", *BUCKETS],
        default="auto",
        help="time bucket of the figures over time (default: auto, the finest giving at most 72 bars)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=handle)


def _exit_codes() -> ErrorTable:
    from botocore.exceptions import BotoCoreError, ClientError

    return [
        (MonitorUsageError, EXIT_USAGE),
        (NoCapturesError, EXIT_NO_CAPTURES),
        (CaptureSourceError, EXIT_SOURCE),
        # listing already reports these as CaptureSourceError; never let one read as an alert
        ((ClientError, BotoCoreError), EXIT_SOURCE),
    ]


def _twin_endpoints_dir() -> Path:
    """Where the offline twin keeps its endpoints (their classes.json name the classes)."""
    from scones.settings import Settings

    return Settings.from_env().endpoints_dir


def options_from_args(args: argparse.Namespace, now: datetime) -> MonitorOptions:
    """Turn the parsed arguments into ``MonitorOptions`` (``MonitorUsageError`` if unusable)."""
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
    return MonitorOptions(
        source=args.source,
        output=args.output,
        endpoint=args.endpoint,
        since=since,
        until=until,
        threshold=args.threshold,
        max_review_rate=args.max_review_rate,
        classes=classes,
        classes_from=classes_from,
        twin_endpoints_dir=_twin_endpoints_dir(),
        bucket=args.bucket,
        progress=not args.no_progress,
        model_metrics=args.model_metrics,
    )


def handle(args: argparse.Namespace) -> int:
    """Run ``scones monitor``; return its exit code. An error nobody planned for (a bug) prints
    its traceback and exits ``EXIT_CRASH``, never ``EXIT_ALERT``."""
    try:
        return _handle(args)
    except Exception:
        traceback.print_exc()
        print(
            f"scones monitor: unexpected error (exit {EXIT_CRASH}): this is a bug, please report "
            "the traceback above",
            file=sys.stderr,
        )
        return EXIT_CRASH


@user_errors(_exit_codes)
def _handle(args: argparse.Namespace) -> int:
    result = run_monitor(options_from_args(args, datetime.now(UTC)))
    _print_summary(result, args.output)
    if result.alert:
        print(f"scones monitor: ALERT: {result.alert}", file=sys.stderr)
        return EXIT_ALERT
    return EXIT_OK


def _print_summary(result: MonitorResult, output: Path) -> None:
    c = result.collector
    print(
        f"{c.count:,} inferences from {c.files_read:,} files; review rate {c.review_rate:.1%} "
        f"({c.review_count:,} below {c.threshold:g}"
        + (f"; the model expected {result.expected.short(c.threshold)}" if result.expected else "")
        + f"); {c.errors_total:,} parse errors; "
        f"{c.outside_window:,} outside the window"
    )
    print(f"wrote {output / 'report.html'} and {output / 'inferences.csv'}")
    if c.errors_total:
        print(
            f"scones monitor: warning: {c.errors_total:,} records could not be read "
            f"(see {output / 'parse_errors.csv'})",
            file=sys.stderr,
        )
