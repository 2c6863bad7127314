"""The offline twin's subcommands: ``up``, ``down``, ``status``, ``env``, ``deploy``, ``invoke``,
``run`` and ``classify``. Each handler parses, calls the twin's modules, and prints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scones.errors import EXIT_FAILED, CommandError, ErrorTable, user_errors
from scones.settings import Settings, ensure_secret
from scones.twin import services
from scones.twin.classify import classify
from scones.twin.deploy import deploy_local
from scones.twin.report import format_report, redact
from scones.twin.workflow import error_message, invoke_local, run_execution

#: ``scones classify``: it stopped before every image ended (run it again to resume).
EXIT_INCOMPLETE = 3


def _workflow_errors() -> ErrorTable:
    """The errors of deploy / invoke / run / classify a user can act on (exit 1, one line)."""
    from scones.endpoint.registry import (
        InvalidCaptureConfigError,
        InvalidEndpointNameError,
        InvalidModelArchiveError,
    )
    from scones.twin import bridge, lambda_runtime, template

    return [
        (
            (
                template.TemplateError,
                lambda_runtime.HandlerLoadError,
                lambda_runtime.ConflictingEnvironmentError,
                bridge.UnsupportedPatternError,
                bridge.InvalidInputTransformError,
                InvalidModelArchiveError,
                InvalidEndpointNameError,
                InvalidCaptureConfigError,
            ),
            EXIT_FAILED,
        )
    ]


def _service_errors() -> ErrorTable:
    return [(services.ServiceError, EXIT_FAILED)]


def _read_json_arg(value: str) -> Any:
    """JSON given inline, as a file path, or ``-`` for standard input."""
    shown = value if len(value) <= 80 else value[:77] + "..."
    try:
        if value == "-":
            text = sys.stdin.read()
        elif value.lstrip().startswith(("{", "[", '"')) or not Path(value).exists():
            text = value
        else:
            text = Path(value).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{shown!r} is not a text file (JSON is UTF-8 text)") from None
    except OSError as exc:
        raise CommandError(f"cannot read {shown!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"not valid JSON (inline or a file path): {shown!r}: {exc.msg}"
        ) from None
    except RecursionError:
        raise CommandError(f"JSON nested too deeply to read: {shown!r}") from None
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise CommandError(f"JSON value not readable: {shown!r}: {str(exc)[:120]}") from None


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n else "-"


# --------------------------------------------------------------------------- services


@user_errors(_service_errors)
def _cmd_up(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    running = any(services.running_pid(settings, s) for s in services.available_services())
    # a random secret per install (kept across restarts); never swapped under running services
    if not running and ensure_secret(settings.home):
        settings = Settings.from_env()
    missing = services.up(settings, only=args.only)
    for why in missing:
        print(f"scones up: {why}", file=sys.stderr)
    return 1 if missing else 0


@user_errors(_service_errors)
def _cmd_down(args: argparse.Namespace) -> int:
    services.down(Settings.from_env(), timeout=args.timeout)
    return 0


@user_errors(_service_errors)
def _cmd_status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    rows = services.status(settings)
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0 if all(r.healthy for r in rows if r.running) else 1
    print(f"{'service':<10} {'state':<9} {'pid':<8} {'port':<6} {'rss':<9} {'health':<8} url")
    for r in rows:
        state = "running" if r.running else "stopped"
        health = ("ok" if r.healthy else "FAILING") if r.running else "-"
        pid = str(r.pid or "-")
        print(
            f"{r.name:<10} {state:<9} {pid:<8} {r.port:<6} {_mib(r.rss_bytes):<9} {health:<8} {r.url}"
        )
    total = sum(r.rss_bytes for r in rows)
    print(f"total RSS {_mib(total)}; state in {settings.home}; logs in {settings.home / 'logs'}")
    for r in rows:
        if r.capture:
            print("Data Capture records: " + ", ".join(f"{k} {v}" for k, v in r.capture.items()))
    return 0 if all(r.healthy for r in rows if r.running) else 1


@user_errors()
def _cmd_env(args: argparse.Namespace) -> int:
    print("\n".join(services.env_lines(Settings.from_env())))
    return 0


# --------------------------------------------------------------------------- workflow


@user_errors(_workflow_errors)
def _cmd_deploy(args: argparse.Namespace) -> int:
    if not args.local:
        print(
            "To deploy to AWS use the SAM CLI (needs AWS credentials):\n"
            "  sam build && sam deploy --guided\n"
            "To deploy to the offline twin on this machine:\n"
            "  scones up && scones deploy --local [--model PATH]"
        )
        return 0
    from scones.twin.template import parse_parameter_overrides

    settings = Settings.from_env()
    overrides = parse_parameter_overrides(args.parameter_overrides)
    deployed = deploy_local(settings, Path(args.model) if args.model else None, overrides)
    print(f"deployed stack {deployed['stack_name']} to the offline twin ({settings.deployed_file})")
    for logical_id, arn in deployed["functions"].items():
        print(f"  function       {logical_id:<28} {arn}")
    print(f"  state machine  {deployed['state_machine_arn']}")
    print(
        f"  bucket         s3://{deployed['bucket']}  (uploads under {deployed['incoming_prefix']} start executions)"
    )
    print(f"  endpoint       {deployed['endpoint_name']}  (capture to {deployed['capture_uri']})")
    return 0


@user_errors(_workflow_errors)
def _cmd_invoke(args: argparse.Namespace) -> int:
    event = _read_json_arg(args.event) if args.event else {}
    payload, is_error = invoke_local(Settings.from_env(), args.function, event)
    if is_error:
        print(
            json.dumps({"errorType": payload["errorType"], "errorMessage": payload["errorMessage"]})
        )
        return 1
    shown = payload if args.raw else redact(payload)
    print(json.dumps(shown, indent=2) if args.pretty else json.dumps(shown))
    return 0


@user_errors(_workflow_errors)
def _cmd_run(args: argparse.Namespace) -> int:
    outcome = run_execution(Settings.from_env(), _read_json_arg(args.input), args.timeout)
    if outcome.status == "SUCCEEDED":
        print(json.dumps(outcome.output if args.raw else redact(outcome.output), indent=2))
        return 0
    failure = {
        "status": outcome.status,
        "error": outcome.error,
        "cause": outcome.cause,
        "executionArn": outcome.arn,
    }
    print(json.dumps(failure, indent=2))
    print(
        f"execution {outcome.status}: {outcome.error}: {error_message(outcome.cause)}",
        file=sys.stderr,
    )
    return 1


@user_errors(_workflow_errors)
def _cmd_classify(args: argparse.Namespace) -> int:
    report = classify(
        Settings.from_env(),
        args.source,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        progress=not args.json and sys.stderr.isatty() or args.progress,
        rerun=args.rerun,
        wait_s=args.wait,
    )
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    if report.stopped:
        print(
            f"scones classify: stopped early: {report.stopped}; {report.unfinished} of "
            f"{report.images} images did not end. Run the same command again to resume.",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    return 0 if report.all_succeeded else EXIT_FAILED


# --------------------------------------------------------------------------- registration

UP_HELP = """\
Start the offline twin's services that are not already running, and wait until
each answers. Safe to run again. All bind to 127.0.0.1.

  s3        SeaweedFS S3 API on $SCONES_S3_PORT (8333; uses the next 8 ports too)
  sfn       moto Step Functions + Lambda (our handlers) on $SCONES_MOTO_PORT (5055)
  endpoint  SageMaker Runtime with Data Capture on $SCONES_ENDPOINT_PORT (8080)

State, PID files and logs live in $SCONES_HOME (default <project>/.scones).
Then: eval "$(scones env)" to point boto3 and the AWS CLI at the twin."""

DOWN_HELP = """\
Stop the twin's services by PID: SIGTERM, then SIGKILL after --timeout seconds.
The endpoint stops first and writes its buffered Data Capture records to S3.
Data in $SCONES_HOME/s3 is kept for the next `scones up`."""

STATUS_HELP = """\
Show each service of the offline twin: running or not, PID, port, resident
memory (the process and its children) and whether it answers.
Exit status 1 when a running service does not answer."""

ENV_HELP = """\
Print `export` lines that point at the offline twin: local credentials, region,
AWS_ENDPOINT_URL (every service: nothing is sent to AWS), AWS_ENDPOINT_URL_* for S3
(SeaweedFS), SageMaker and SageMaker Runtime (the endpoint server) and the rest (moto),
AWS_DISABLE_HOST_PREFIX_INJECTION (StartSyncExecution, TestState), plus SCONES_BUCKET,
SCONES_STATE_MACHINE_ARN and SCONES_ENDPOINT_NAME once `scones deploy --local` ran.
What the twin answers per service: docs/aws-fidelity.md.

Usage: eval "$(scones env)\""""

DEPLOY_HELP = """\
Deploy the SAM application to the offline twin (--local), exactly as template.yaml and
samconfig.toml describe it: the Lambda functions (bound to the handlers in functions/), the
state machine (statemachine/*.asl.json with its DefinitionSubstitutions), the image bucket,
and the model behind the SageMaker endpoint, with Data Capture to s3://<bucket>/data_capture.
Re-running updates everything in place. Writes $SCONES_HOME/deployed.json.

Without --local it prints how to deploy to AWS with the SAM CLI.
"""

INVOKE_HELP = """\
Invoke one Lambda function of template.yaml in this process, like `sam local invoke` but
without Docker: the function's Environment from the template and the twin's AWS settings
(local S3 and endpoint) are in effect. Prints the result JSON, or the error as AWS reports
it ({"errorType", "errorMessage"}) and exits 1.

example: scones invoke SerializeImageFunction -e events/serialize_image.json
"""

RUN_HELP = """\
Start one execution of the deployed state machine (unique name), wait for it, and print its
output; a failed execution prints its error name and cause and exits 1.

example: scones run --input '{"s3_bucket": "scones-images-local", "s3_key": "incoming/a.png"}'
"""

CLASSIFY_HELP = """\
Classify every image under an S3 prefix (s3://bucket/prefix) or a local folder through the
deployed workflow: one execution per image, many in flight, then a summary of how each
image ended: classified (per class name from the model's classes.json), sent to review
(LowConfidenceError) or failed (with the error name). Every image ends in exactly one row.

A local folder's images (.png .jpg .jpeg .gif .bmp .webp .tif .tiff .heic .heif; phone photos
up to 25 MiB and 50 megapixels) are uploaded first under <incoming prefix><name>-<hash>/ in
the deployed bucket (the same prefix for every run of that folder; files already there with
the same bytes are not uploaded again). The S3 bridge sees those uploads too; both start the
execution under the same deterministic name, so each image runs exactly once.
Images that already ran (same key and ETag) report that execution's result; --rerun runs
them again (e.g. after deploying a new model).

Resumable: each image that ends is written at once to a journal in $SCONES_HOME/classify/.
Executions the sfn server lost when it restarted are started again. If the run stops early
(the sfn server away for longer than --wait, Ctrl-C) it prints what ended and how many did
not; the same command again skips images already classified or sent to review, follows
executions still running, and runs failed ones again (as NAME-r2, ...).

exit status:
  0  every image was classified or sent to review (LowConfidenceError is the designed outcome)
  1  at least one image failed (a named error, ClassifyTimeout), or an AWS/twin error
  2  bad arguments or setup (no such folder, not deployed)
  3  stopped early: the report covers what ended; run the same command again to resume
"""

RAW_HELP = "print image_data too (default: its size)"


def _parser(subparsers: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def register(subparsers: Any) -> None:
    """Add the twin's subcommands to the ``scones`` CLI, services first."""
    _register_services(subparsers)
    _register_workflow(subparsers)


def _register_services(subparsers: Any) -> None:
    help = "start the offline twin (local S3, Lambda/Step Functions, SageMaker endpoint)"
    p = _parser(subparsers, "up", help, UP_HELP)
    p.add_argument(
        "--only",
        action="append",
        choices=[s.name for s in services.SERVICES],
        help="start only this service (repeatable)",
    )
    p.set_defaults(func=_cmd_up)

    p = _parser(subparsers, "down", "stop the offline twin", DOWN_HELP)
    p.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL (15)")
    p.set_defaults(func=_cmd_down)

    help = "show the twin's services: pid, port, memory, health"
    p = _parser(subparsers, "status", help, STATUS_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_status)

    help = "print shell exports that point boto3 / the AWS CLI at the twin"
    _parser(subparsers, "env", help, ENV_HELP).set_defaults(func=_cmd_env)


def _register_workflow(subparsers: Any) -> None:
    p = _parser(
        subparsers, "deploy", "deploy the SAM app (--local: to the offline twin)", DEPLOY_HELP
    )
    p.add_argument(
        "--local", action="store_true", help="deploy to the offline twin (scones up first)"
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="model.tar.gz to serve (default: $SCONES_HOME/model/model.tar.gz)",
    )
    p.add_argument(
        "--parameter-overrides",
        nargs="+",
        metavar="KEY=VALUE",
        help="template parameters, as for `sam deploy` (win over samconfig.toml)",
    )
    p.set_defaults(func=_cmd_deploy)

    p = _parser(subparsers, "invoke", "invoke one Lambda function locally (no Docker)", INVOKE_HELP)
    p.add_argument("function", metavar="FunctionLogicalId", help="logical id in template.yaml")
    p.add_argument(
        "-e",
        "--event",
        metavar="FILE|JSON",
        help="event JSON, a file holding it, or - for stdin (default: {})",
    )
    p.add_argument("--pretty", action="store_true", help="indent the result JSON")
    p.add_argument("--raw", action="store_true", help=RAW_HELP)
    p.set_defaults(func=_cmd_invoke)

    p = _parser(subparsers, "run", "run one execution of the deployed state machine", RUN_HELP)
    p.add_argument(
        "--input", required=True, metavar="JSON|FILE", help="execution input: JSON, a file, or -"
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait (default: %(default)s)"
    )
    p.add_argument("--raw", action="store_true", help=RAW_HELP)
    p.set_defaults(func=_cmd_run)

    help = "classify a folder or S3 prefix of images through the workflow"
    p = _parser(subparsers, "classify", help, CLASSIFY_HELP)
    p.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix or a local folder")
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=32,
        help="executions in flight, at least 1 (default: %(default)s)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the sfn server to answer again before stopping early "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds one execution may run (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="run images again that already ran (default: report their earlier execution)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars even when stderr is not a terminal",
    )
    p.set_defaults(func=_cmd_classify)
