"""Step Functions operations the twin answers as AWS does where moto 5.2.5 does not.

moto's ``StepFunctionResponse`` picks the method named after the operation, so each operation
here is a method put on that class by ``install()`` (replacing moto's through
``moto_targets.rebind`` where moto has one, listed in ``moto_targets.TARGETS``):

- ``StopExecution`` honours ``error`` / ``cause`` (DescribeExecution and the history's
  ``ExecutionAborted`` event carry them) and answers ``stopDate``;
- ``GetExecutionHistory`` honours ``maxResults`` (+ ``nextToken``), ``reverseOrder`` and
  ``includeExecutionData``;
- ``ValidateStateMachineDefinition`` answers ``result`` OK/FAIL and ``diagnostics`` from moto's
  ASL parser and statelint (codes as AWS documents them where one fits);
- ``TestState`` runs one state (a Task runs the bound handler) with ``inspectionLevel``;
- ``StartSyncExecution`` runs an EXPRESS machine to its end and answers its outcome;
- ``RedriveExecution`` answers AWS's ``ExecutionNotRedrivable`` (the twin does not redrive).

(Operations moto lacks altogether answer AWS's error through ``scones.twin.aws_errors``.)

Imports moto's Step Functions interpreter: import this module inside the functions that need it.
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from typing import Any

from moto.core.exceptions import AWSError
from moto.core.responses import ActionResult
from moto.stepfunctions.exceptions import InvalidToken
from moto.stepfunctions.responses import StepFunctionResponse

from scones.twin import moto_targets

MAX_HISTORY_PAGE = 1000
DEFAULT_HISTORY_PAGE = 100
STOP_WAIT_S = 2.0


class ExecutionNotRedrivable(AWSError):
    """AWS's error for an execution that cannot be redriven."""

    TYPE = "ExecutionNotRedrivable"
    STATUS = 400


class StateMachineTypeNotSupported(AWSError):
    """AWS's error for an operation the machine's type does not support."""

    TYPE = "StateMachineTypeNotSupported"
    STATUS = 400


class InvalidDefinition(AWSError):
    """AWS's error for a definition that does not parse."""

    TYPE = "InvalidDefinition"
    STATUS = 400


class SfnValidationException(AWSError):
    """AWS's ValidationException for a parameter the twin refuses."""

    TYPE = "ValidationException"
    STATUS = 400


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


# ---------------------------------------------------------------------------------- executions


def stop_execution(self: Any) -> ActionResult:
    """StopExecution with ``error`` / ``cause``; answers the execution's ``stopDate``."""
    arn = self._get_param("executionArn")
    error, cause = self._get_param("error"), self._get_param("cause")
    execution = self.stepfunction_backend.describe_execution(arn)
    if execution.status == "RUNNING":
        requested = _now()
        execution.stop(stop_date=requested, error=error, cause=cause)
        deadline = time.monotonic() + STOP_WAIT_S
        while execution.status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.005)  # the worker thread writes ExecutionAborted, then the status
        if execution.status == "ABORTED":
            execution.error, execution.cause = error, cause
        if execution.stop_date is None:
            execution.stop_date = requested
    return ActionResult({"stopDate": execution.stop_date or _now()})


def _page_token(arn: str, offset: int) -> str:
    raw = json.dumps({"arn": arn, "offset": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _page_offset(arn: str, token: str | None) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["arn"] != arn or int(data["offset"]) < 0:
            raise ValueError("token of another execution")
        return int(data["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidToken(f"{token!r} is not a token this execution's history gave") from exc


def _without_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event without the ``input`` / ``output`` of its details (includeExecutionData=false)."""
    copy = dict(event)
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            copy[key] = {k: v for k, v in value.items() if k not in ("input", "output")}
    return copy


def get_execution_history(self: Any) -> ActionResult:
    """GetExecutionHistory with paging, ``reverseOrder`` and ``includeExecutionData``."""
    arn = self._get_param("executionArn")
    size = self._get_int_param("maxResults") or DEFAULT_HISTORY_PAGE
    if not 0 < size <= MAX_HISTORY_PAGE:
        raise SfnValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy"
            f" constraint: Member must have value less than or equal to {MAX_HISTORY_PAGE}"
        )
    history = self.stepfunction_backend.get_execution_history(arn)
    events = list(history["events"])
    if self._get_bool_param("reverseOrder", False):
        events.reverse()
    if self._get_bool_param("includeExecutionData", True) is False:
        events = [_without_data(event) for event in events]
    offset = _page_offset(arn, self._get_param("nextToken"))
    page: dict[str, Any] = {"events": events[offset : offset + size]}
    if offset + size < len(events):
        page["nextToken"] = _page_token(arn, offset + size)
    return ActionResult(page)


def start_execution(self: Any) -> ActionResult:
    """StartExecution; a nameless start gets a UUID name, as on AWS (moto names it None)."""
    arn = self._get_param("stateMachineArn")
    name = self._get_param("name") or str(uuid.uuid4())
    execution_input = self._get_param("input", if_none="{}")
    _check_json(execution_input, "input")  # moto's own check answers an empty error code
    execution = self.stepfunction_backend.start_execution(arn, name, execution_input)
    return ActionResult(
        {"executionArn": execution.execution_arn, "startDate": execution.start_date}
    )


def start_sync_execution(self: Any) -> ActionResult:
    """StartSyncExecution: run an EXPRESS machine to its end in this request, as AWS does."""
    from moto.stepfunctions.parser.backend.execution import SyncExecution

    arn = self._get_param("stateMachineArn")
    machine = self.stepfunction_backend.describe_state_machine(arn)
    if str(getattr(machine, "type", "STANDARD")) != "EXPRESS":
        raise StateMachineTypeNotSupported(
            "This operation is not supported by this type of state machine"
        )
    name = self._get_param("name") or str(uuid.uuid4())
    execution_input = self._get_param("input", if_none="{}")
    _check_json(execution_input, "input")
    region, account = self.region, self.current_account
    execution = SyncExecution(
        name=name,
        sm_type=machine.sm_type,
        role_arn=machine.roleArn,
        exec_arn=f"arn:aws:states:{region}:{account}:express:{machine.name}:{name}:{uuid.uuid4()}",
        account_id=account,
        region_name=region,
        state_machine=machine,
        start_date=_now(),
        cloud_watch_logging_session=None,
        activity_store={},
        input_data=execution_input,
        trace_header=self._get_param("traceHeader"),
    )
    execution.start()  # SyncExecutionWorker runs the program in this thread
    output = dict(execution.to_start_sync_execution_output())
    output["status"] = str(getattr(output.get("status"), "value", output.get("status")))
    return ActionResult(output)


def redrive_execution(self: Any) -> ActionResult:
    """RedriveExecution: the twin does not redrive; AWS's error says so (no retry)."""
    arn = self._get_param("executionArn")
    execution = self.stepfunction_backend.describe_execution(arn)  # ExecutionDoesNotExist
    raise ExecutionNotRedrivable(
        f"Execution {execution.execution_arn} ({execution.status}) cannot be redriven: the"
        " offline twin does not implement RedriveExecution; start a new execution with the"
        " same input"
    )


def _check_json(text: str, field: str) -> None:
    from moto.stepfunctions.exceptions import InvalidExecutionInput

    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
        raise InvalidExecutionInput(f"Invalid State Machine Execution Input: '{exc}'") from None


# -------------------------------------------------------------------------- definitions / tests


def validate_state_machine_definition(self: Any) -> ActionResult:
    """ValidateStateMachineDefinition: result OK/FAIL and AWS-shaped diagnostics."""
    from scones.twin.sfn_validate import diagnostics

    found = diagnostics(
        self._get_param("definition") or "", str(self._get_param("type") or "STANDARD")
    )
    if self._get_param("severity") == "ERROR":
        found = [d for d in found if d["severity"] == "ERROR"]
    limit = self._get_int_param("maxResults") or 100
    failed = any(d["severity"] == "ERROR" for d in found)
    return ActionResult(
        {
            "result": "FAIL" if failed else "OK",
            "diagnostics": found[:limit],
            "truncated": len(found) > limit,
        }
    )


def _state_definition(definition: str, state_name: str | None) -> str:
    """The one state TestState runs: ``definition`` itself, or state ``state_name`` of a
    whole machine's definition."""
    if not state_name:
        return definition
    try:
        machine = json.loads(definition)
        return json.dumps(machine["States"][state_name])
    except (ValueError, KeyError, TypeError):
        raise SfnValidationException(
            f"stateName {state_name!r} is not a state of the definition's States"
        ) from None


def _ending(definition: str) -> tuple[str, str | None]:
    """The state made terminal, and the ``Next`` it had (moto's TestState only ends at an
    ``End`` or a Choice; AWS answers ``nextState`` for any state with ``Next``)."""
    try:
        state = json.loads(definition)
    except ValueError:
        return definition, None
    if not isinstance(state, dict) or state.get("Type") == "Choice" or "Next" not in state:
        return definition, None
    following = state.pop("Next")
    state["End"] = True
    return json.dumps(state), str(following)


def _caught(execution: Any, level: str) -> dict[str, Any]:
    """TestState's answer when the state's Catch caught an error: CAUGHT_ERROR, the catcher's
    Next as ``nextState``, the error and cause, and the output after the catcher's ResultPath."""
    env = execution.exec_worker.env
    error: dict[str, Any] = {}
    for event in reversed(env.event_manager.get_event_history()):
        details = next((v for k, v in event.items() if k.endswith("FailedEventDetails")), None)
        if isinstance(details, dict) and details.get("error"):
            error = details
            break
    answer: dict[str, Any] = {
        "status": "CAUGHT_ERROR",
        "nextState": env.program_state().next_state_name,
        "output": json.dumps(env.states.get_input()),
    }
    answer.update({k: error[k] for k in ("error", "cause") if error.get(k) is not None})
    if level != "INFO":
        answer["inspectionData"] = env.inspection_data
    return answer


def test_state(self: Any) -> ActionResult:
    """TestState: run one state (Task, Pass, Wait, Choice, Succeed, Fail) with its input."""
    from moto.stepfunctions.parser.asl.static_analyser.test_state.test_state_analyser import (
        TestStateStaticAnalyser,
    )
    from moto.stepfunctions.parser.backend.state_machine import TestStateMachine
    from moto.stepfunctions.parser.backend.test_state.execution import TestStateExecution

    if self._get_param("mock"):
        raise SfnValidationException("the offline twin does not implement TestState's mock")
    definition, next_state = _ending(
        _state_definition(self._get_param("definition"), self._get_param("stateName"))
    )
    try:
        TestStateStaticAnalyser().analyse(definition)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the caller's definition
        raise InvalidDefinition(f"Invalid State Machine Definition: '{exc}'") from None
    execution_input = self._get_param("input", if_none="{}")
    _check_json(execution_input, "input")
    region, account = self.region, self.current_account
    name = f"TestState-{uuid.uuid4().hex[:10]}"
    role = self._get_param("roleArn") or f"arn:aws:iam::{account}:role/{name}"
    machine = TestStateMachine(
        name=name,
        arn=f"arn:aws:states:{region}:{account}:stateMachine:{name}",
        role_arn=role,
        definition=definition,
    )
    execution = TestStateExecution(
        name=name,
        role_arn=role,
        exec_arn=f"arn:aws:states:{region}:{account}:execution:{name}:{name}",
        account_id=account,
        region_name=region,
        state_machine=machine,
        start_date=_now(),
        activity_store={},
        input_data=execution_input,
    )
    level = self._get_param("inspectionLevel") or "INFO"
    try:
        execution.start()
    except RuntimeWarning:  # moto ends a state whose Catch caught the error as "still running"
        return ActionResult(_caught(execution, level))
    output = dict(execution.to_test_state_output(inspection_level=level))  # type: ignore[arg-type]
    output["status"] = str(getattr(output.get("status"), "value", output.get("status")))
    if next_state and output["status"] == "SUCCEEDED":
        output["nextState"] = next_state
    if level == "INFO":
        output.pop("inspectionData", None)
    return ActionResult(output)


# ---------------------------------------------------------------------------------- install

#: moto's methods this module replaces (listed in moto_targets.TARGETS) and those it adds.
REPLACED = {
    "stop_execution": stop_execution,
    "get_execution_history": get_execution_history,
    "start_execution": start_execution,
}
ADDED = {
    "start_sync_execution": start_sync_execution,
    "redrive_execution": redrive_execution,
    "validate_state_machine_definition": validate_state_machine_definition,
    "test_state": test_state,
}


def installed() -> bool:
    """Whether ``install()`` has run in this process."""
    return getattr(StepFunctionResponse, "test_state", None) is test_state


def install() -> None:
    """Put the operations on moto's ``StepFunctionResponse`` (once per process)."""
    if installed():
        return
    for name, method in REPLACED.items():
        moto_targets.rebind(StepFunctionResponse, name, method)
    for name, method in ADDED.items():
        if hasattr(StepFunctionResponse, name):
            raise RuntimeError(f"moto now has StepFunctionResponse.{name}: review sfn_api")
        setattr(StepFunctionResponse, name, method)
