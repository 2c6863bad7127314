"""GetExecutionHistory events -> what happened to each state, on synthetic histories shaped as
AWS records them (ids, previousEventId, detail objects)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scones.graph.history import execution_end, state_runs, timestamp, transitions
from scones.graph.model import END, START

DEFINITION = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ok", "IsPresent": True, "Next": "Work"}],
            "Default": "Bad",
        },
        "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 3}],
            "Catch": [
                {"ErrorEquals": ["Known"], "Next": "Review"},
                {"ErrorEquals": ["States.ALL"], "Next": "Bad"},
            ],
            "Next": "Done",
        },
        "Review": {"Type": "Pass", "Next": "Bad"},
        "Done": {"Type": "Succeed"},
        "Bad": {"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"},
    },
}
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class History:
    """Build an event list one event at a time (ids and previousEventId as AWS chains them)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, seconds: float, **details: Any) -> History:
        event = {
            "id": len(self.events) + 1,
            "previousEventId": len(self.events),
            "type": kind,
            "timestamp": T0 + timedelta(seconds=seconds),
            **details,
        }
        self.events.append(event)
        return self

    def state(self, kind: str, name: str, start: float, end: float | None = None) -> History:
        self.add(
            f"{kind}StateEntered", start, stateEnteredEventDetails={"name": name, "input": "{}"}
        )
        if end is not None:
            self.add(
                f"{kind}StateExited", end, stateExitedEventDetails={"name": name, "output": "{}"}
            )
        return self

    def attempt(self, at: float, error: str | None = None) -> History:
        self.add("TaskScheduled", at).add("TaskStarted", at)
        if error:
            return self.add(
                "TaskFailed",
                at + 0.5,
                taskFailedEventDetails={"error": error, "cause": f"{error} cause"},
            )
        return self.add("TaskSucceeded", at + 0.5, taskSucceededEventDetails={"output": "{}"})


def started() -> History:
    return History().add("ExecutionStarted", 0).state("Choice", "Check", 0, 0.1)


def test_success_with_two_retries() -> None:
    h = (
        started()
        .state("Task", "Work", 0.1)
        .attempt(0.2, "Flaky")
        .attempt(1.2, "Flaky")
        .attempt(3.2)
    )
    h.add("TaskStateExited", 3.8, stateExitedEventDetails={"name": "Work", "output": "{}"})
    h.state("Succeed", "Done", 3.8).add("ExecutionSucceeded", 3.9)
    runs = state_runs(DEFINITION, h.events)
    assert runs["Work"].status == "succeeded" and runs["Work"].retries == 2
    assert runs["Work"].error is None
    assert runs["Work"].seconds == 3.7
    assert runs["Done"].status == "succeeded"
    assert (runs["Review"].status, runs["Bad"].status) == ("not-run", "not-run")
    assert transitions(h.events) == [
        (START, "Check"),
        ("Check", "Work"),
        ("Work", "Done"),
        ("Done", END),
    ]


def test_caught_by_the_matching_catch_then_fail_state() -> None:
    h = started().state("Task", "Work", 0.1).attempt(0.2, "Known")
    h.add("TaskStateExited", 0.8, stateExitedEventDetails={"name": "Work", "output": "{}"})
    h.state("Pass", "Review", 0.8, 0.9).state("Fail", "Bad", 0.9)
    h.add("ExecutionFailed", 1.0, executionFailedEventDetails={"error": "Known", "cause": "why"})
    runs = state_runs(DEFINITION, h.events)
    assert runs["Work"].status == "caught" and runs["Work"].caught_by == ["Known"]
    assert (runs["Work"].error, runs["Work"].cause) == ("Known", "Known cause")
    assert runs["Review"].status == "succeeded"
    assert (runs["Bad"].status, runs["Bad"].error, runs["Bad"].cause) == ("failed", "Known", "why")
    assert runs["Bad"].seconds == 0.1
    assert execution_end(h.events) == {"status": "FAILED", "error": "Known", "cause": "why"}


def test_caught_by_states_all() -> None:
    h = started().state("Task", "Work", 0.1).attempt(0.2, "Other")
    h.add("TaskStateExited", 0.8, stateExitedEventDetails={"name": "Work", "output": "{}"})
    h.state("Fail", "Bad", 0.8).add(
        "ExecutionFailed", 0.9, executionFailedEventDetails={"error": "Other"}
    )
    assert state_runs(DEFINITION, h.events)["Work"].caught_by == ["States.ALL"]


def test_an_uncaught_failure_fails_the_task() -> None:
    definition = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": "arn:x", "End": True}},
    }
    h = History().add("ExecutionStarted", 0).state("Task", "Work", 0).attempt(0.1, "Boom")
    h.add("ExecutionFailed", 0.7, executionFailedEventDetails={"error": "Boom", "cause": "c"})
    work = state_runs(definition, h.events)["Work"]
    assert (work.status, work.error, work.seconds) == ("failed", "Boom", 0.6)


def test_a_running_execution() -> None:
    h = started().state("Task", "Work", 0.1).add("TaskScheduled", 0.2).add("TaskStarted", 0.2)
    runs = state_runs(DEFINITION, h.events)
    assert runs["Work"].status == "running" and runs["Check"].status == "succeeded"
    assert execution_end(h.events)["status"] is None


def test_a_retry_in_progress_is_running_not_failed() -> None:
    h = started().state("Task", "Work", 0.1).attempt(0.2, "Flaky")
    assert state_runs(DEFINITION, h.events)["Work"].status == "running"


def test_lambda_function_events_count_as_attempts() -> None:
    h = started().state("Task", "Work", 0.1)
    h.add("LambdaFunctionScheduled", 0.2).add(
        "LambdaFunctionFailed", 0.3, lambdaFunctionFailedEventDetails={"error": "Flaky"}
    )
    h.add("LambdaFunctionScheduled", 1.3).add("LambdaFunctionSucceeded", 1.4)
    h.add("TaskStateExited", 1.5, stateExitedEventDetails={"name": "Work"})
    work = state_runs(DEFINITION, h.events)["Work"]
    assert (work.status, work.retries) == ("succeeded", 1)


def test_events_as_json_text_in_any_order() -> None:
    h = started().state("Task", "Work", 0.1).attempt(0.2)
    h.add("TaskStateExited", 0.8, stateExitedEventDetails={"name": "Work"})
    as_json = [
        {**e, "timestamp": e["timestamp"].isoformat().replace("+00:00", "Z")} for e in h.events
    ]
    runs = state_runs(DEFINITION, list(reversed(as_json)))
    assert runs["Work"].status == "succeeded" and runs["Work"].seconds == 0.7


def test_timestamps_in_every_form() -> None:
    assert timestamp("2026-11-28T12:00:00.250Z") == T0 + timedelta(seconds=0.25)
    assert timestamp(T0.timestamp()) == T0
    assert timestamp(T0.replace(tzinfo=None)) == T0
    assert timestamp("not a time") is None and timestamp(None) is None


def test_a_parallel_box_failing_into_its_catch() -> None:
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Inner",
                        "States": {"Inner": {"Type": "Task", "Resource": "arn:x", "End": True}},
                    }
                ],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Bad"}],
                "End": True,
            },
            "Bad": {"Type": "Fail", "Error": "E"},
        },
    }
    h = (
        History()
        .add("ExecutionStarted", 0)
        .state("Parallel", "Both", 0)
        .add("ParallelStateStarted", 0)
    )
    h.state("Task", "Inner", 0.1).attempt(0.1, "Boom")
    h.add(
        "ParallelStateFailed", 0.7, parallelStateFailedEventDetails={"error": "Boom", "cause": "c"}
    )
    h.add("ParallelStateExited", 0.7, stateExitedEventDetails={"name": "Both"})
    h.state("Fail", "Bad", 0.8).add(
        "ExecutionFailed", 0.9, executionFailedEventDetails={"error": "E"}
    )
    runs = state_runs(definition, h.events)
    assert (runs["Both"].status, runs["Both"].caught_by) == ("caught", ["States.ALL"])
    assert runs["Both"].error == "Boom" and runs["Bad"].status == "failed"
    assert runs["Inner"].status == "failed"  # branch states are reported too (not drawn)
