"""``scones console``: serve the read-only web console on 127.0.0.1 (uvicorn).

Thin: parse, pick the source (the twin's deployment, or AWS with ``--aws`` or when nothing is
deployed to the twin), check the port, serve ``scones.console.app.create_app`` until Ctrl-C.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from scones.errors import CommandError, user_errors
from scones.settings import LOOPBACK

DEFAULT_PORT = 8090

DESCRIPTION = """\
A local, read-only web page showing what the AWS Step Functions console shows for the
workflow, built from the same API calls (ListExecutions, DescribeExecution,
GetExecutionHistory, DescribeStateMachine, S3 for Data Capture):

  /                      executions: status, start, duration, label and confidence or the
                         error; filter by status; pages of 25 (?size= up to 100)
  /execution?arn=ARN     the graph coloured by what happened, each state's input and output
                         (images as thumbnails), the events table; reloads while running
  /endpoint              the newest Data Capture records with thumbnails, and a link to
  /monitor/report.html   the latest `scones monitor` report ($SCONES_HOME/monitor/report.html)

By default it shows the offline twin's deployment ($SCONES_HOME/deployed.json, the twin's
endpoints and local credentials). With --aws, or when nothing is deployed to the twin, it uses
your own AWS credentials and region (profile, AWS_* variables, SSO) with the same calls.
It binds 127.0.0.1 only, answers only GET, and refuses requests for any other host name.

Examples:
  scones console                      the twin, on http://127.0.0.1:8090/
  scones console --port 9000
  scones console --aws --state-machine arn:aws:states:eu-west-1:123456789012:stateMachine:scones-ImageClassification
"""


def register(subparsers: Any) -> None:
    """Add ``scones console`` to the CLI."""
    parser = subparsers.add_parser(
        "console",
        help="local read-only web console: executions, graphs, Data Capture (127.0.0.1:8090)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default %(default)s)"
    )
    parser.add_argument(
        "--host",
        default=LOOPBACK,
        help="address to bind: only 127.0.0.1 is accepted (the console is for this machine)",
    )
    parser.add_argument(
        "--aws", action="store_true", help="read your AWS account instead of the offline twin"
    )
    parser.add_argument(
        "--state-machine", metavar="ARN", help="with --aws: which state machine (default: listed)"
    )
    parser.add_argument(
        "--endpoint",
        metavar="NAME",
        help="with --aws: the SageMaker endpoint whose Data Capture to show"
        " (default scones-image-classifier)",
    )
    parser.add_argument(
        "--classes",
        metavar="A,B",
        help="class names in label order for --aws (the twin reads its model's classes.json)",
    )
    parser.set_defaults(func=handle)


def check_address(host: str, port: int) -> None:
    """Refuse anything but 127.0.0.1 and a port that is taken (one clear line each)."""
    if host not in (LOOPBACK, "localhost"):
        raise CommandError(
            f"--host {host}: the console binds 127.0.0.1 only (it shows your AWS data)"
        )
    if not 1 <= port <= 65535:
        raise CommandError(f"--port {port}: not a port number (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            raise CommandError(f"port {port} on 127.0.0.1 is taken: use --port N") from None


def pick_source(args: argparse.Namespace) -> Any:
    """The twin's deployment, else (or with ``--aws``) the user's AWS account."""
    from scones.console.source import DEFAULT_ENDPOINT, aws_source, twin_source
    from scones.settings import Settings

    settings = Settings.from_env()
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else None
    if not args.aws:
        try:
            return twin_source(settings)
        except CommandError as exc:
            print(f"scones console: {exc}; showing AWS with your credentials", file=sys.stderr)
    return aws_source(
        settings,
        state_machine=args.state_machine,
        endpoint=args.endpoint or DEFAULT_ENDPOINT,
        classes=classes,
    )


@user_errors()
def handle(args: argparse.Namespace) -> int:
    """Run ``scones console`` until interrupted."""
    import uvicorn

    from scones.console.app import close_app, create_app

    check_address(args.host, args.port)
    source = pick_source(args)
    app = create_app(source, args.port)
    print(f"scones console: {source.where}")
    print(f"scones console: http://127.0.0.1:{args.port}/  (Ctrl-C to stop)", flush=True)
    try:
        uvicorn.run(app, host=LOOPBACK, port=args.port, log_level="warning", access_log=False)
    finally:
        close_app(app)
    return 0
