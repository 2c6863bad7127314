"""The Step Functions operations the twin answers as AWS does (``scones.twin.sfn_api``), through
boto3 against the production sfn server in-process (``moto_server``)."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scones.settings import Settings
from scones.twin import sfn_validate

WAIT = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 30, "End": True}}}
PASSES = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.a", "Next": "B"},
        "B": {"Type": "Pass", "End": True},
    },
}


def _client(moto_server: Any, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        aws_access_key_id=Settings.access_key_id,
        aws_secret_access_key=Settings.secret_access_key,
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )


@pytest.fixture
def sfn(moto_server: Any) -> Any:
    return _client(moto_server, "stepfunctions")


def _machine(moto_server: Any, sfn: Any, definition: dict[str, Any], kind: str = "STANDARD") -> str:
    iam = _client(moto_server, "iam")
    name = f"m-{uuid.uuid4().hex[:8]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return str(
        sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=role, type=kind
        )["stateMachineArn"]
    )


def _finished(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if out["status"] != "RUNNING":
            return out
        time.sleep(0.02)
    raise AssertionError(f"{arn} still running")


def test_nameless_starts_get_distinct_uuid_names(moto_server: Any, sfn: Any) -> None:
    machine = _machine(moto_server, sfn, PASSES)
    arns = [sfn.start_execution(stateMachineArn=machine)["executionArn"] for _ in range(3)]
    names = [arn.rsplit(":", 1)[1] for arn in arns]
    assert len(set(names)) == 3
    for name in names:
        assert str(uuid.UUID(name)) == name  # a UUID, as AWS names it (moto: "None")


def test_stop_execution_keeps_error_and_cause_and_answers_stop_date(
    moto_server: Any, sfn: Any
) -> None:
    machine = _machine(moto_server, sfn, WAIT)
    arn = sfn.start_execution(stateMachineArn=machine, name="to-stop")["executionArn"]
    stopped = sfn.stop_execution(executionArn=arn, error="Operator.Abort", cause="changed my mind")
    described = _finished(sfn, arn)
    assert described["status"] == "ABORTED"
    assert (described["error"], described["cause"]) == ("Operator.Abort", "changed my mind")
    assert stopped["stopDate"] == described["stopDate"]
    last = sfn.get_execution_history(executionArn=arn, reverseOrder=True)["events"][0]
    assert last["type"] == "ExecutionAborted"
    assert last["executionAbortedEventDetails"] == {
        "error": "Operator.Abort",
        "cause": "changed my mind",
    }


def test_history_pages_in_order_and_reverse(moto_server: Any, sfn: Any) -> None:
    machine = _machine(moto_server, sfn, PASSES)
    arn = sfn.start_execution(stateMachineArn=machine, input='{"x": 1}')["executionArn"]
    _finished(sfn, arn)
    everything = sfn.get_execution_history(executionArn=arn)["events"]
    assert [e["id"] for e in everything] == [1, 2, 3, 4, 5, 6]  # started, 2 x entered/exited, ended
    pages, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = sfn.get_execution_history(executionArn=arn, maxResults=4 if token else 2, **extra)
        pages.append([e["id"] for e in page["events"]])
        token = page.get("nextToken")
        if not token:
            break
    assert pages == [[1, 2], [3, 4, 5, 6]]
    paginated = [
        e["id"]
        for page in sfn.get_paginator("get_execution_history").paginate(
            executionArn=arn, reverseOrder=True, PaginationConfig={"PageSize": 3}
        )
        for e in page["events"]
    ]
    assert paginated == [6, 5, 4, 3, 2, 1]


def test_history_without_execution_data_drops_inputs_and_outputs(
    moto_server: Any, sfn: Any
) -> None:
    machine = _machine(moto_server, sfn, PASSES)
    arn = sfn.start_execution(stateMachineArn=machine, input='{"secret": 1}')["executionArn"]
    _finished(sfn, arn)
    full = json.dumps(sfn.get_execution_history(executionArn=arn)["events"], default=str)
    bare = sfn.get_execution_history(executionArn=arn, includeExecutionData=False)["events"]
    assert "secret" in full
    assert "secret" not in json.dumps(bare, default=str)
    assert [e["type"] for e in bare][0] == "ExecutionStarted"


def test_history_refuses_a_foreign_token(moto_server: Any, sfn: Any) -> None:
    machine = _machine(moto_server, sfn, PASSES)
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    _finished(sfn, arn)
    with pytest.raises(ClientError) as caught:
        sfn.get_execution_history(executionArn=arn, nextToken="bm90IGEgdG9rZW4=")
    assert caught.value.response["Error"]["Code"] == "InvalidToken"


def test_validate_answers_ok_and_fail_with_diagnostics(sfn: Any) -> None:
    assert sfn.validate_state_machine_definition(definition=json.dumps(PASSES))["result"] == "OK"
    bad = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    out = sfn.validate_state_machine_definition(definition=json.dumps(bad))
    assert out["result"] == "FAIL" and out["truncated"] is False
    codes = {(d["code"], d.get("location")) for d in out["diagnostics"]}
    assert ("MISSING_TRANSITION_TARGET", "/States/A/Next") in codes
    assert all(d["severity"] == "ERROR" for d in out["diagnostics"])
    broken = sfn.validate_state_machine_definition(definition="{not json")
    assert [d["code"] for d in broken["diagnostics"]] == ["INVALID_JSON_DESCRIPTION"]
    limited = sfn.validate_state_machine_definition(definition=json.dumps(bad), maxResults=1)
    assert len(limited["diagnostics"]) == 1 and limited["truncated"] is True


def test_validate_runs_the_project_definition_clean() -> None:
    from pathlib import Path

    text = (
        Path(__file__).parents[2] / "statemachine" / "image_classification.asl.json"
    ).read_text()
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    definition = re.sub(r"\$\{[A-Za-z]+\}", arn, text)
    assert sfn_validate.diagnostics(definition) == []


def test_test_state_runs_a_pass_state_with_inspection(sfn: Any) -> None:
    state = {"Type": "Pass", "Result": {"b": 2}, "ResultPath": "$.r", "Next": "Later"}
    out = sfn.test_state(definition=json.dumps(state), input='{"a": 1}', inspectionLevel="DEBUG")
    assert out["status"] == "SUCCEEDED"
    assert json.loads(out["output"]) == {"a": 1, "r": {"b": 2}}
    assert out["nextState"] == "Later"
    assert json.loads(out["inspectionData"]["afterResultPath"]) == {"a": 1, "r": {"b": 2}}
    info = sfn.test_state(definition=json.dumps(state), input="{}")
    assert "inspectionData" not in info


def test_test_state_names_a_state_of_a_whole_machine(sfn: Any) -> None:
    out = sfn.test_state(definition=json.dumps(PASSES), stateName="A", input="{}")
    assert out["status"] == "SUCCEEDED" and out["nextState"] == "B"


def test_test_state_reports_a_fail_state(sfn: Any) -> None:
    state = {"Type": "Fail", "Error": "LowConfidenceError", "Cause": "0.5 < 0.93"}
    out = sfn.test_state(definition=json.dumps(state), input="{}")
    assert (out["status"], out["error"], out["cause"]) == (
        "FAILED",
        "LowConfidenceError",
        "0.5 < 0.93",
    )


def test_start_sync_execution_runs_express_and_refuses_standard(moto_server: Any, sfn: Any) -> None:
    express = _machine(moto_server, sfn, PASSES, kind="EXPRESS")
    out = sfn.start_sync_execution(stateMachineArn=express, input='{"x": 1}')
    assert out["status"] == "SUCCEEDED"
    assert json.loads(out["output"]) == {"x": 1, "a": {"a": 1}}
    assert ":express:" in out["executionArn"] and out["stopDate"] >= out["startDate"]
    standard = _machine(moto_server, sfn, PASSES)
    with pytest.raises(ClientError) as caught:
        sfn.start_sync_execution(stateMachineArn=standard)
    assert caught.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"


def test_redrive_is_an_aws_error_not_a_crash(moto_server: Any, sfn: Any) -> None:
    machine = _machine(moto_server, sfn, PASSES)
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    _finished(sfn, arn)
    with pytest.raises(ClientError) as caught:
        sfn.redrive_execution(executionArn=arn)
    assert caught.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_unknown_operations_are_aws_shaped_400s_in_each_protocol(moto_server: Any) -> None:
    quotas = _client(moto_server, "service-quotas")  # JSON protocol, an operation moto lacks
    with pytest.raises(ClientError) as caught:
        quotas.list_services()
    error = caught.value.response
    assert error["Error"]["Code"] == "UnknownOperationException"
    assert (
        error["ResponseMetadata"]["HTTPStatusCode"],
        error["ResponseMetadata"]["RetryAttempts"],
    ) == (400, 0)
    watch = _client(moto_server, "cloudwatch")  # CloudWatch's protocol, an op moto lacks
    with pytest.raises(ClientError) as caught:
        watch.describe_anomaly_detectors()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400, error
    assert error["Error"]["Code"] in ("UnknownOperationException", "InvalidAction")


@pytest.mark.parametrize(
    ("service", "operation", "code", "status"),
    [
        ("sts", "decode_authorization_message", "InvalidAction", 400),  # query protocol
        ("logs", "describe_import_tasks", "UnknownOperationException", 400),  # JSON protocol
        ("lambda", "get_account_settings", "UnknownOperationException", 404),  # a REST path
        ("pricing", "describe_services", "UnknownOperationException", 400),  # no moto backend
    ],
)
def test_what_moto_lacks_is_a_named_error_answered_once(
    moto_server: Any, service: str, operation: str, code: str, status: int
) -> None:
    client = _client(moto_server, service)
    args = {"EncodedMessage": "x"} if operation == "decode_authorization_message" else {}
    with pytest.raises(ClientError) as caught:
        getattr(client, operation)(**args)
    response = caught.value.response
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"].startswith("The offline twin does not implement")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["RetryAttempts"] == 0


def test_test_state_reports_a_caught_error_and_the_catchers_next(sfn: Any) -> None:
    missing = "arn:aws:lambda:us-east-1:123456789012:function:no-such-function"
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": missing},
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Review"}],
        "End": True,
    }
    out = sfn.test_state(definition=json.dumps(state), input='{"a": 1}')
    assert (out["status"], out["nextState"]) == ("CAUGHT_ERROR", "Review")
    assert out["error"] == "Lambda.ResourceNotFoundException"
    assert json.loads(out["output"])["err"]["Error"] == "Lambda.ResourceNotFoundException"
