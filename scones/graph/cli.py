"""``scones graph``: draw the state machine, or one execution of it, from the Step Functions API;
``--export DIR`` writes the evidence pack (see ``scones.graph.export``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from scones.errors import ErrorTable, user_errors
from scones.executions import execution_history

DESCRIPTION = """\
Draw the workflow as the Step Functions console does, from the API alone (DescribeStateMachine,
ListExecutions, DescribeExecution, GetExecutionHistory): every state by type, Next and Choice
edges, Catch edges labelled with their errors, Retry noted on the task. With an execution, each
state is coloured by what happened (succeeded, failed, caught by a Catch, not run, running) with
its time, retries, and the error and cause where it failed.

Without --state-machine: the twin's deployed state machine (deployed.json), read through the
standard AWS settings when they name an endpoint (eval "$(scones env)"), else through the twin.
With --state-machine: a boto3 client from the standard AWS settings (a real account works).

In the SVG each state's node carries data-state="<name>" and data-status="<status>" (for
scripts and tests). PNG is rendered by D2 itself, offline (no browser).

--export DIR writes the evidence pack: the definition as the console's Export JSON
(<name>.asl.json), describe-state-machine.json, describe-execution.json,
execution-history.json (every page), graph.svg, graph.png, manifest.json.

Examples:
  scones graph --output workflow.svg
  scones graph --latest --status FAILED --output failed.png
  scones graph --latest --status FAILED --error LowConfidenceError --export evidence/review
  scones graph --execution my-run-42 --export evidence/my-run-42
  scones graph --state-machine arn:aws:states:eu-west-1:123456789012:stateMachine:scones \\
      --latest --export evidence/latest
"""


def register(subparsers: Any) -> None:
    """Add ``scones graph``."""
    from scones.executions import EXECUTION_STATUSES

    parser = subparsers.add_parser(
        "graph",
        help="draw the state machine or one execution of it (SVG/PNG), export the evidence pack",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-machine", metavar="ARN", help="default: the twin's deployment")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--execution", metavar="ARN|NAME", help="an execution ARN or name")
    which.add_argument("--latest", action="store_true", help="the newest execution")
    parser.add_argument(
        "--status",
        choices=EXECUTION_STATUSES,
        help="with --latest: the newest execution with this status",
    )
    parser.add_argument(
        "--error",
        metavar="NAME",
        help="with --latest: the newest execution that failed with this error",
    )
    parser.add_argument("--output", type=Path, metavar="FILE.svg|FILE.png", help="write the image")
    parser.add_argument("--export", type=Path, metavar="DIR", help="write the evidence pack")
    parser.set_defaults(func=handle)


def _errors() -> ErrorTable:
    from scones.graph.model import DefinitionError

    return [((DefinitionError,), 2)]


@user_errors(_errors)
def handle(args: argparse.Namespace) -> int:
    """Read, draw, export; print where the files went."""
    from scones.errors import CommandError
    from scones.graph import source
    from scones.graph.export import title_for, write_pack
    from scones.graph.history import execution_end
    from scones.graph.render import write_image
    from scones.settings import Settings

    if (args.status or args.error) and not args.latest:
        raise CommandError("--status and --error go with --latest")
    if not args.output and not args.export:
        raise CommandError("say where to write: --output FILE.svg|FILE.png and/or --export DIR")
    target = source.target_for(Settings.from_env(), args.state_machine)
    machine = source.describe_state_machine(target.client, target.state_machine_arn)
    execution: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None
    if args.execution:
        execution = source.resolve_execution(
            target.client, target.state_machine_arn, args.execution
        )
    elif args.latest:
        execution = source.latest_execution(
            target.client, target.state_machine_arn, args.status, args.error
        )
    if execution is not None:
        events = execution_history(target.client, str(execution["executionArn"]))
        ended = execution_end(events)
        print(
            f"{execution['name']}: {execution['status']}"
            + (f" ({ended['error']})" if ended.get("error") else "")
        )
    if args.output:
        title = title_for(machine, execution, events)
        print(f"wrote {write_image(machine['definition'], events, args.output, title=title)}")
    if args.export:
        written = write_pack(args.export, machine, execution, events)
        print(f"wrote {len(written)} files to {args.export}")
    sys.stdout.flush()
    return 0
