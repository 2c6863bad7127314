"""``scones cost``: what the workflow costs on AWS, priced from the usage of real runs."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scones.errors import CommandError, ErrorTable, user_errors

DESCRIPTION = """\
Price the workflow from what its executions used, not from assumptions. Reads the execution
histories (ListExecutions + GetExecutionHistory) and counts: state transitions including retries
(as AWS bills a Standard workflow: every state entered, plus every retry), Lambda invocations and
billed durations per function (memory and architecture from template.yaml), endpoint invocations
and payload bytes, Data Capture objects and bytes (listing the capture prefix in S3), S3 requests.

Then prices the same usage under each option, side by side: Standard vs Express workflow, arm64
vs x86_64 Lambdas, a real-time endpoint (instance type and count) vs serverless (no Data Capture:
monitoring then needs another capture path) vs asynchronous (scales to zero); per 1,000 images,
per month at --images-per-month, and the monthly floor of what is always on. Training is priced
from the model's training report (metrics.json: train_seconds) on --training-instance.

Prices: scones/cost/prices/us-east-1.json (each with its source and the date it was read), or
--prices FILE for another region. No free tier is applied.

Without --state-machine it reads the twin's deployment (deployed.json). With --state-machine it
uses your AWS settings (profile or AWS_* variables): a real account works.

--output DIR writes cost.png (monthly cost against monthly volume, break-even points marked)
and cost.html (the chart, the options, the usage and every price's source).

Examples:
  scones cost                                   every execution the twin still lists
  scones cost --since 1h --images-per-month 1000000
  scones cost --json --output .scones/cost
  scones cost --state-machine arn:aws:states:us-east-1:123456789012:stateMachine:scones-ImageClassification \\
      --capture-uri s3://my-ml-bucket/scones/data_capture --since 24h
"""

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DEFAULT_INSTANCES = ["ml.m5.large", "ml.t2.medium"]
TRAINING_INSTANCE = "ml.m5.xlarge"  # scones sagemaker train's default


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``1h``, ``2d``, ``1w`` -> the moment that long before ``now``."""
    found = _SINCE.match(text.strip())
    if not found:
        raise CommandError(f"--since {text!r}: use a number and s, m, h, d or w (such as 1h)")
    delta = timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})
    return (now or datetime.now(UTC)) - delta


def register(subparsers: Any) -> None:
    """Add ``scones cost``."""
    parser = subparsers.add_parser(
        "cost",
        help="what the workflow costs on AWS, measured from its executions, options side by side",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--since", metavar="AGE", help="only executions started this recently (1h, 30m, 2d)"
    )
    parser.add_argument("--state-machine", metavar="ARN", help="default: the twin's deployment")
    parser.add_argument(
        "--capture-uri", metavar="S3_URI", help="the endpoint's Data Capture prefix"
    )
    parser.add_argument("--endpoint", metavar="NAME", help="the endpoint's name (capture folder)")
    parser.add_argument(
        "--images-per-month",
        type=int,
        default=100_000,
        metavar="N",
        help="the monthly volume to price (default 100,000)",
    )
    parser.add_argument(
        "--instance-type",
        action="append",
        metavar="TYPE",
        help=f"real-time instance types to compare, first = as deployed (default {' '.join(DEFAULT_INSTANCES)})",
    )
    parser.add_argument(
        "--instance-count", type=int, default=1, metavar="N", help="real-time instances (default 1)"
    )
    parser.add_argument(
        "--serverless-memory", type=int, default=2048, choices=[1024, 2048, 3072, 4096, 5120, 6144]
    )
    parser.add_argument(
        "--async-hours",
        type=float,
        default=1.0,
        metavar="H",
        help="asynchronous: hours a day the instance runs",
    )
    parser.add_argument(
        "--inference-ms",
        type=float,
        metavar="MS",
        help="endpoint time per call (default: the endpoint-calling Lambda's median, an upper bound)",
    )
    parser.add_argument(
        "--express-logs",
        choices=["full", "errors"],
        default="full",
        help="Express options' execution logs (template.yaml ExecutionLogs; auto = full for Express)",
    )
    parser.add_argument("--training-instance", default=TRAINING_INSTANCE, metavar="TYPE")
    parser.add_argument(
        "--training-seconds", type=float, metavar="S", help="billable seconds of a training job"
    )
    parser.add_argument(
        "--model", type=Path, metavar="PATH", help="metrics.json, model folder or model.tar.gz"
    )
    parser.add_argument(
        "--prices", type=Path, metavar="FILE", help="a price table (default us-east-1)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--output", type=Path, metavar="DIR", help="write cost.png and cost.html")
    parser.set_defaults(func=handle)


def _errors() -> ErrorTable:
    from scones.twin.template import TemplateError

    return [((TemplateError,), 2)]


def _training(args: argparse.Namespace, settings: Any, prices: Any) -> dict[str, Any]:
    from scones.cost.report import read_training_report, training_cost

    if args.training_seconds is not None:
        return training_cost(
            prices, args.training_instance, args.training_seconds, "--training-seconds"
        )
    path = args.model or settings.home / "model" / "metrics.json"
    if args.model is None and not path.exists():
        return training_cost(prices, args.training_instance, None, f"no {path}: pass --model")
    seconds = read_training_report(path).get("train_seconds")
    shown = path / "metrics.json" if path.is_dir() else path
    where = f"train_seconds of {shown}, measured where it trained"
    return training_cost(prices, args.training_instance, float(seconds) if seconds else None, where)


def _capture(target: Any, since: datetime | None) -> tuple[int, int]:
    from botocore.exceptions import ClientError

    from scones.cost.source import capture_objects

    if not target.capture_uri:
        print(
            "scones cost: no capture location (--capture-uri): Data Capture not counted",
            file=sys.stderr,
        )
        return 0, 0
    try:
        return capture_objects(target.s3, target.capture_uri, target.endpoint_name, since)
    except ClientError as exc:
        print(f"scones cost: cannot list {target.capture_uri}: {exc}", file=sys.stderr)
        return 0, 0


@user_errors(_errors)
def handle(args: argparse.Namespace) -> int:
    """Measure, price, print (and draw)."""
    from scones.cost import options as opts
    from scones.cost import source
    from scones.cost.history import count_execution
    from scones.cost.pricing import load_prices
    from scones.cost.report import build_report, render_text
    from scones.cost.usage import Usage, add_execution, read_functions
    from scones.settings import Settings

    if args.images_per_month < 1 or args.instance_count < 1:
        raise CommandError("--images-per-month and --instance-count must be at least 1")
    if not 0 <= args.async_hours <= 24:
        raise CommandError(f"--async-hours {args.async_hours:g}: hours a day, from 0 to 24")
    for flag, value in (
        ("--inference-ms", args.inference_ms),
        ("--training-seconds", args.training_seconds),
    ):
        if value is not None and value < 0:
            raise CommandError(f"{flag} {value:g}: must be 0 or more")
    since = parse_since(args.since) if args.since else None
    settings = Settings.from_env()
    prices = load_prices(args.prices)
    target = source.target_for(settings, args.state_machine, args.capture_uri, args.endpoint)
    region = (
        target.state_machine_arn.split(":")[3] if target.state_machine_arn.count(":") > 3 else ""
    )
    if args.prices is None and region and region != prices.region:
        print(
            f"scones cost: prices are {prices.region}'s; pass --prices FILE for {region}",
            file=sys.stderr,
        )
    functions = read_functions(settings.project_root)
    machine = source.describe_state_machine(target.sfn, target.state_machine_arn)
    executions = source.list_executions(target.sfn, target.state_machine_arn, since)
    if not executions:
        which = f" started in the last {args.since}" if args.since else ""
        raise CommandError(
            f"no executions{which} of {target.state_machine_arn}: nothing to measure"
        )
    usage = Usage(definition_bytes=len(str(machine.get("definition", "")).encode("utf-8")))
    for events in source.histories(target.sfn, executions):
        add_execution(usage, count_execution(events), functions)
    usage.capture_objects, usage.capture_bytes = _capture(target, since)
    use = opts.per_image(usage, args.inference_ms)
    architectures = [f.architecture for f in functions.values()]
    architecture = max(set(architectures), key=architectures.count) if architectures else "arm64"
    options = opts.default_options(
        architecture,
        args.instance_type or DEFAULT_INSTANCES,
        args.instance_count,
        args.serverless_memory,
        args.async_hours,
        args.express_logs,
    )
    priced = [opts.price_option(option, use, prices) for option in options]
    report = build_report(
        state_machine=target.state_machine_arn,
        state_machine_type=str(machine.get("type", "STANDARD")),
        since=since.isoformat(timespec="seconds") if since else None,
        usage=usage,
        use=use,
        priced=priced,
        prices=prices,
        images_per_month=args.images_per_month,
        training=_training(args, settings, prices),
    )
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    if args.output:
        from scones.cost.chart import write_chart

        written = write_chart(args.output, report, priced)
        print(
            f"wrote {', '.join(str(p) for p in written)}",
            file=sys.stderr if args.json else sys.stdout,
        )
    return 0
