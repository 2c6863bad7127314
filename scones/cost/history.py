"""What one execution used, counted from its GetExecutionHistory events (pure Python, no I/O).

**State transitions, as AWS bills them.** AWS's Step Functions pricing page (read 2026-11-28,
https://aws.amazon.com/step-functions/pricing/): "Step Functions counts a state transition each
time a step of your workflow is executed ... including retries", and "each retry will be charged
as an additional state transition". Counted here as:

    state_transitions = state entries (every ``*StateEntered`` event)
                      + retries (every ``TaskScheduled`` / ``LambdaFunctionScheduled`` /
                        ``ActivityScheduled`` after the first within one entry of a Task state)

A Choice, Pass or Fail state is a step like a Task: each entry counts. A Catch that leads to
another state is that state's entry. Some third-party guides also count the execution's start
and end; AWS's page does not say so, and ``scones cost`` does not count them.

**Lambda invocations and billed durations.** An attempt that reached ``TaskStarted`` /
``LambdaFunctionStarted`` invoked the function; its duration is from that event to the attempt's
end (``...Succeeded``, ``...Failed``, ``...TimedOut``), rounded up to the millisecond as Lambda
bills (https://aws.amazon.com/lambda/pricing/: "rounded up to the nearest 1 ms"). It includes
the invocation's round trip, so it is an upper bound of Lambda's own Billed Duration (the
function's REPORT log line holds the exact figure).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scones.executions import ATTEMPT_FAILED as _ENDED_BADLY
from scones.executions import ATTEMPT_SCHEDULED as _SCHEDULED
from scones.executions import ATTEMPT_STARTED as _STARTED
from scones.executions import ATTEMPT_SUCCEEDED as _SUCCEEDED
from scones.executions import EXECUTION_END as _EXECUTION_END
from scones.executions import event_details as _details
from scones.executions import timestamp


@dataclass
class Attempt:
    """One scheduled call of a Task state (a Lambda invocation when it started)."""

    state: str
    function: str | None  # FunctionName or ARN as the history names it; None: not Lambda
    payload: Any = None  # what the function was sent (parsed JSON)
    started: datetime | None = None
    ended: datetime | None = None
    succeeded: bool = False
    result: Any = None  # the function's result (the Payload of lambda:invoke), parsed
    error: str | None = None

    @property
    def invoked(self) -> bool:
        """Whether the function ran (the attempt reached its Started event)."""
        return self.started is not None

    @property
    def billed_ms(self) -> int:
        """Started -> end, rounded up to the millisecond (at least 1 ms); 0 when not invoked."""
        if self.started is None or self.ended is None:
            return 0
        return max(1, math.ceil((self.ended - self.started).total_seconds() * 1000 - 1e-6))


@dataclass
class ExecutionCount:
    """What one execution used."""

    state_entries: int = 0
    retries: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    status: str | None = None
    error: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    largest_payload_bytes: int = 0  # the largest state input/output (Express memory)
    history_bytes: int = 0  # the events as JSON (logging at level ALL, with execution data)
    error_log_bytes: int = 0  # the failure events as JSON (logging at level ERROR)

    @property
    def state_transitions(self) -> int:
        """Billable state transitions: every state entry plus every retry."""
        return self.state_entries + self.retries

    @property
    def duration_ms(self) -> int | None:
        """ExecutionStarted -> the terminal event, in ms (None while running)."""
        if self.started is None or self.ended is None:
            return None
        return max(0, round((self.ended - self.started).total_seconds() * 1000))


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _scheduled_attempt(state: str, kind: str, details: dict[str, Any]) -> Attempt:
    """The attempt a Scheduled event opens: the function and payload it names."""
    if kind == "LambdaFunctionScheduled":
        return Attempt(state, str(details.get("resource", "")), _json(details.get("input")))
    if kind == "TaskScheduled" and details.get("resourceType") == "lambda":
        parameters = _json(details.get("parameters"))
        if isinstance(parameters, dict):
            name = parameters.get("FunctionName")
            return Attempt(state, str(name) if name else None, parameters.get("Payload"))
    return Attempt(state, None)


def _result(kind: str, details: dict[str, Any]) -> Any:
    """A successful attempt's result: lambda:invoke wraps it in ``{"Payload": ...}``."""
    output = _json(details.get("output"))
    if kind == "TaskSucceeded" and isinstance(output, dict) and "Payload" in output:
        return output["Payload"]
    return output


def _size(text: Any) -> int:
    return len(text.encode("utf-8")) if isinstance(text, str) else 0


def _event_json_bytes(event: dict[str, Any]) -> int:
    return len(json.dumps(event, default=str, separators=(",", ":")).encode("utf-8"))


def count_execution(events: list[dict[str, Any]]) -> ExecutionCount:
    """Count what the execution whose history is ``events`` (any order) used."""
    count = ExecutionCount()
    state: str | None = None
    attempts_in_entry = 0
    current: Attempt | None = None
    for event in sorted(events, key=lambda e: int(e.get("id", 0))):
        kind = str(event.get("type", ""))
        when = timestamp(event.get("timestamp"))
        details = _details(event)
        size = _event_json_bytes(event)
        count.history_bytes += size
        for key in ("input", "output"):
            count.largest_payload_bytes = max(count.largest_payload_bytes, _size(details.get(key)))
        if kind == "ExecutionStarted":
            count.started = when
        elif kind.endswith("StateEntered"):
            count.state_entries += 1
            state, attempts_in_entry, current = str(details.get("name", "")), 0, None
        elif kind in _SCHEDULED:
            attempts_in_entry += 1
            if attempts_in_entry > 1:
                count.retries += 1
            current = _scheduled_attempt(state or "", kind, details)
            count.attempts.append(current)
        elif kind in _STARTED and current is not None:
            current.started = when
        elif kind in _SUCCEEDED and current is not None:
            current.ended, current.succeeded = when, True
            current.result = _result(kind, details)
        elif kind in _ENDED_BADLY:
            count.error_log_bytes += size
            if current is not None:
                current.ended, current.error = when, details.get("error")
        elif kind in _EXECUTION_END:
            count.status, count.ended = _EXECUTION_END[kind], when
            count.error = details.get("error")
            if kind != "ExecutionSucceeded":
                count.error_log_bytes += size
    return count
