"""The twin's execution history against AWS's: event types, order, previousEventId, timestamps.

The expected sequences are what AWS records for a ``lambda:invoke`` task that succeeds, is
retried, and fails into a Catch (see docs/graph.md, "Fidelity", for the sources). Runs the
sample app in the production sfn server (``moto_server``: binding and every fix applied).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sample_deploy import deploy_sample, run

TASK_OK = ["TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited"]
#: A plain function ARN as Resource: the Lambda event family, as on AWS.
FUNCTION_OK = [
    "TaskStateEntered",
    "LambdaFunctionScheduled",
    "LambdaFunctionStarted",
    "LambdaFunctionSucceeded",
    "TaskStateExited",
]
RETRY = ["TaskScheduled", "TaskStarted", "TaskFailed"]


def history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def check_chain(events: list[dict[str, Any]]) -> None:
    """Ids 1..n; ExecutionStarted and the first state's entry point at 0 (as AWS records them),
    every later event at the one before it; timestamps never go back."""
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "ExecutionStarted" and events[0]["previousEventId"] == 0
    assert events[1]["type"].endswith("StateEntered") and events[1]["previousEventId"] == 0
    for before, event in zip(events[1:], events[2:], strict=False):
        assert event["previousEventId"] == before["id"], event
    times = [e["timestamp"] for e in events]
    assert times == sorted(times)


def check_times(sfn: Any, arn: str, events: list[dict[str, Any]]) -> None:
    """startDate is the ExecutionStarted event's time; stopDate the terminal event's."""
    described = sfn.describe_execution(executionArn=arn)
    start: datetime = described["startDate"]
    assert events[0]["timestamp"] == start
    assert events[-1]["timestamp"] == described["stopDate"]


def test_success_with_retries_has_aws_event_order(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    payload = {"counter": str(tmp_path / "c"), "fail_times": 2}
    out = run(sfn, machine, payload, "history-retried")
    events = history(sfn, out["executionArn"])
    types = [e["type"] for e in events]
    assert types == [
        "ExecutionStarted",
        "TaskStateEntered",
        *RETRY,
        *RETRY,
        *TASK_OK[1:],
        *FUNCTION_OK,
        "ExecutionSucceeded",
    ]
    check_chain(events)
    check_times(sfn, out["executionArn"], events)
    failed = [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]
    assert [f["error"] for f in failed] == ["FlakyError", "FlakyError"]
    assert all((f["resourceType"], f["resource"]) == ("lambda", "invoke") for f in failed)


def test_a_caught_error_exits_the_task_then_enters_the_catch_target(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    out = run(sfn, machine, {"counter": str(tmp_path / "f"), "fatal": True}, "history-caught")
    events = history(sfn, out["executionArn"])
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        *RETRY,
        "TaskStateExited",  # AWS exits a state whose error a Catch handles
        "FailStateEntered",
        "ExecutionFailed",
    ]
    check_chain(events)
    check_times(sfn, out["executionArn"], events)
    exited = json.loads(events[5]["stateExitedEventDetails"]["output"])
    assert exited["error"]["Error"] == "FatalError"  # the Catch's ResultPath
    cause = json.loads(events[4]["taskFailedEventDetails"]["cause"])
    assert list(cause) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert all(line.endswith("\n") for line in cause["stackTrace"])


def test_an_uncaught_error_fails_the_execution_without_exiting_the_state(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, sfn, arns, machine = deploy_sample(settings_for(app_root))
    lam.delete_function(FunctionName=arns["FlakyFunction"])
    try:
        out = run(sfn, machine, {"counter": str(tmp_path / "x")}, "history-missing")
    finally:
        deploy_sample(settings_for(app_root))
    events = history(sfn, out["executionArn"])
    # States.ALL catches it here: Lambda.ResourceNotFoundException -> Other (a Fail state)
    assert [e["type"] for e in events][-4:] == [
        "TaskFailed",
        "TaskStateExited",
        "FailStateEntered",
        "ExecutionFailed",
    ]
    check_chain(events)
    check_times(sfn, out["executionArn"], events)
