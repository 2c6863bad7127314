"""Where ``scones graph`` reads from: the Step Functions API through a plain boto3 client.

The same calls work against the offline twin and a real AWS account: DescribeStateMachine,
DescribeExecution, ListExecutions (newest first) and GetExecutionHistory (every page).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scones.errors import CommandError
from scones.executions import describe_state_machine as describe_state_machine  # re-exported
from scones.executions import endpoint_chosen
from scones.settings import Settings

SCAN_LIMIT = 1000  # executions described at most to find one with a given error


class ExecutionNotFoundError(CommandError):
    """No execution matches what the user named."""


@dataclass(frozen=True)
class Target:
    """The state machine to draw and the client that reads it."""

    client: Any
    state_machine_arn: str
    twin: bool


def target_for(settings: Settings, state_machine_arn: str | None) -> Target:
    """The client and state machine for ``scones graph``.

    With ``--state-machine``: a boto3 client from the standard AWS settings (environment,
    profile). Without: the twin's deployed state machine (``deployed.json``), read through the
    standard settings when they name an endpoint, else through the twin's own endpoint.
    """
    import boto3

    if state_machine_arn:
        return Target(boto3.client("stepfunctions"), state_machine_arn, twin=False)
    from scones.twin.deploy import read_deployed

    arn = str(read_deployed(settings)["state_machine_arn"])
    if endpoint_chosen():
        return Target(boto3.client("stepfunctions"), arn, twin=True)
    from scones.twin.clients import twin_clients

    (client,) = twin_clients(settings, "stepfunctions")
    return Target(client, arn, twin=True)


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN of execution ``name`` of a standard state machine (same account and region)."""
    parts = state_machine_arn.split(":")
    if len(parts) < 7 or parts[5] != "stateMachine":
        raise CommandError(f"{state_machine_arn} is not a state machine ARN")
    return ":".join([*parts[:5], "execution", parts[6], name])


def describe_execution(client: Any, arn: str) -> dict[str, Any]:
    """DescribeExecution, with a one-line error when it does not exist."""
    try:
        return dict(client.describe_execution(executionArn=arn))
    except client.exceptions.ExecutionDoesNotExist:
        raise ExecutionNotFoundError(f"no execution {arn}") from None


def resolve_execution(client: Any, state_machine_arn: str, reference: str) -> dict[str, Any]:
    """DescribeExecution of ``reference``: an execution ARN, or the name of an execution of
    ``state_machine_arn``."""
    if reference.startswith("arn:"):
        return describe_execution(client, reference)
    try:
        return describe_execution(client, execution_arn_for(state_machine_arn, reference))
    except ExecutionNotFoundError:
        raise ExecutionNotFoundError(
            f"no execution named {reference!r} of {state_machine_arn}"
        ) from None


def _executions(client: Any, state_machine_arn: str, status: str | None) -> Iterator[str]:
    """Execution ARNs, newest first (ListExecutions, every page)."""
    arguments: dict[str, Any] = {"stateMachineArn": state_machine_arn}
    if status:
        arguments["statusFilter"] = status
    paginator = client.get_paginator("list_executions")
    for page in paginator.paginate(**arguments, PaginationConfig={"PageSize": 100}):
        for item in page.get("executions", []):
            yield str(item["executionArn"])


def latest_execution(
    client: Any, state_machine_arn: str, status: str | None, error: str | None = None
) -> dict[str, Any]:
    """DescribeExecution of the newest execution with ``status`` (any when None) and, when
    given, ``error`` (executions are described newest first, ``SCAN_LIMIT`` at most)."""
    for seen, arn in enumerate(_executions(client, state_machine_arn, status)):
        if seen >= SCAN_LIMIT:
            break
        described = describe_execution(client, arn)
        if error is None or described.get("error") == error:
            return described
    wanted = ([f"status {status}"] if status else []) + ([f"error {error}"] if error else [])
    which = f" with {' and '.join(wanted)}" if wanted else ""
    limit = f" among its newest {SCAN_LIMIT}" if error else ""
    raise ExecutionNotFoundError(f"{state_machine_arn} has no execution{which}{limit}")
