"""Step Functions execution histories, shared by ``scones graph``, ``scones cost`` and the console.

The event vocabulary of GetExecutionHistory (a Task state's attempts appear as ``Task*``,
``LambdaFunction*`` or ``Activity*`` events depending on the integration) and reading every page
of one execution's history. Plain boto3 ``stepfunctions`` clients: the twin's or a real account's.
"""

from __future__ import annotations

from typing import Any

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


def execution_history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of the execution, oldest first (all pages of GetExecutionHistory)."""
    events: list[dict[str, Any]] = []
    paginator = client.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn, PaginationConfig={"PageSize": 1000}):
        events.extend(page.get("events", []))
    events.sort(key=lambda event: int(event.get("id", 0)))
    return events
