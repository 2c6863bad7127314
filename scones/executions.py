"""Step Functions execution histories, shared by ``scones graph``, ``scones cost`` and the console.

The event vocabulary of GetExecutionHistory (a Task state's attempts appear as ``Task*``,
``LambdaFunction*`` or ``Activity*`` events depending on the integration) and reading every page
of one execution's history. Plain boto3 ``stepfunctions`` clients: the twin's or a real account's.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from scones.errors import CommandError

#: Any of these set in the environment means "the user chose an endpoint": use it as it is.
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SFN", "AWS_ENDPOINT_URL_STEPFUNCTIONS", "AWS_ENDPOINT_URL")

# What ListExecutions' statusFilter accepts (and DescribeExecution's status can be).
EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")

# One attempt of a Task state: scheduled, (started), then succeeded or ended badly.
ATTEMPT_SCHEDULED = frozenset({"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"})
ATTEMPT_STARTED = frozenset({"TaskStarted", "LambdaFunctionStarted", "ActivityStarted"})
ATTEMPT_SUCCEEDED = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
ATTEMPT_FAILED = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "TaskStartFailed",
        "TaskSubmitFailed",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "LambdaFunctionStartFailed",
        "LambdaFunctionScheduleFailed",
        "ActivityFailed",
        "ActivityTimedOut",
        "ActivityScheduleFailed",
    }
)
# The execution's own end event -> its status.
EXECUTION_END = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}


def endpoint_chosen(environ: dict[str, str] | None = None) -> bool:
    """Whether the environment names a Step Functions endpoint (``eval "$(scones env)"`` does)."""
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in _ENDPOINT_VARIABLES)


def describe_state_machine(client: Any, arn: str) -> dict[str, Any]:
    """DescribeStateMachine, with a one-line error when it does not exist."""
    try:
        return dict(client.describe_state_machine(stateMachineArn=arn))
    except client.exceptions.StateMachineDoesNotExist:
        raise CommandError(f"no state machine {arn}") from None


def execution_history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, oldest first (all pages of GetExecutionHistory)."""
    events: list[dict[str, Any]] = []
    paginator = client.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn, PaginationConfig={"PageSize": 1000}):
        events.extend(page.get("events", []))
    events.sort(key=lambda event: int(event.get("id", 0)))
    return events


def event_details(event: dict[str, Any]) -> dict[str, Any]:
    """The event's ``...EventDetails`` object (each event has at most one)."""
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def timestamp(value: Any) -> datetime | None:
    """An event's timestamp as an aware datetime (datetime, ISO text or epoch seconds)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
