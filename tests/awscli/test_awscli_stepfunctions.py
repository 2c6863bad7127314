"""Step Functions through the AWS CLI against the twin: what issue 13 found missing."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.stack

WAIT = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 60, "End": True}}}
PASSES = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "B"},
        "B": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture(scope="module")
def role(aws: Any) -> str:
    done = aws(
        "iam", "create-role", "--role-name", "awscli-sfn", "--assume-role-policy-document", "{}"
    )
    return str(done.ok()["Role"]["Arn"])


def _machine(aws: Any, role: str, definition: dict[str, Any], kind: str = "STANDARD") -> str:
    done = aws(
        "stepfunctions",
        "create-state-machine",
        "--name",
        f"cli-{uuid.uuid4().hex[:8]}",
        "--definition",
        json.dumps(definition),
        "--role-arn",
        role,
        "--type",
        kind,
    )
    return str(done.ok()["stateMachineArn"])


def _finished(aws: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out: dict[str, Any] = aws(
            "stepfunctions", "describe-execution", "--execution-arn", arn
        ).ok()
        if out["status"] != "RUNNING":
            return out
        time.sleep(0.2)
    raise AssertionError(f"{arn} still running")


def test_nameless_start_execution_works_every_time(aws: Any, role: str) -> None:
    machine = _machine(aws, role, PASSES)
    arns = [
        aws("stepfunctions", "start-execution", "--state-machine-arn", machine).ok()["executionArn"]
        for _ in range(2)
    ]
    names = [arn.rsplit(":", 1)[1] for arn in arns]
    assert names[0] != names[1] and all(str(uuid.UUID(n)) == n for n in names)


def test_stop_with_error_and_cause_then_history_options(aws: Any, role: str) -> None:
    machine = _machine(aws, role, WAIT)
    arn = aws(
        "stepfunctions",
        "start-execution",
        "--state-machine-arn",
        machine,
        "--input",
        '{"secret": 7}',
    ).ok()["executionArn"]
    stop = aws(
        "stepfunctions",
        "stop-execution",
        "--execution-arn",
        arn,
        "--error",
        "Ops.Stop",
        "--cause",
        "by hand",
    ).ok()
    described = _finished(aws, arn)
    assert (described["status"], described["error"], described["cause"]) == (
        "ABORTED",
        "Ops.Stop",
        "by hand",
    )
    assert stop["stopDate"] == described["stopDate"]

    history = ["stepfunctions", "get-execution-history", "--execution-arn", arn]
    page = aws(*history, "--no-paginate", "--max-results", "2").ok()
    assert [e["id"] for e in page["events"]] == [1, 2] and page["nextToken"]
    rest = aws(*history, "--no-paginate", "--next-token", page["nextToken"]).ok()
    assert [e["type"] for e in rest["events"]] == ["ExecutionAborted"]
    newest_first = aws(*history, "--reverse-order").ok()["events"]
    assert [e["id"] for e in newest_first] == [3, 2, 1]
    assert newest_first[0]["executionAbortedEventDetails"] == {
        "error": "Ops.Stop",
        "cause": "by hand",
    }
    assert "secret" in json.dumps(aws(*history).ok())
    assert "secret" not in json.dumps(aws(*history, "--no-include-execution-data").ok())


def test_validate_state_machine_definition(aws: Any, cli_twin: Any) -> None:
    good = aws(
        "stepfunctions", "validate-state-machine-definition", "--definition", json.dumps(PASSES)
    )
    assert good.ok()["result"] == "OK"
    deployed = aws(
        "stepfunctions",
        "describe-state-machine",
        "--state-machine-arn",
        cli_twin.exports["SCONES_STATE_MACHINE_ARN"],
    ).ok()["definition"]
    assert aws(
        "stepfunctions", "validate-state-machine-definition", "--definition", deployed
    ).ok() == {
        "result": "OK",
        "diagnostics": [],
        "truncated": False,
    }
    bad = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Gone"}}}
    out = aws(
        "stepfunctions", "validate-state-machine-definition", "--definition", json.dumps(bad)
    ).ok()
    assert out["result"] == "FAIL"
    assert {d["code"] for d in out["diagnostics"]} == {
        "MISSING_TRANSITION_TARGET",
        "MISSING_END_STATE",
    }


def test_test_state_runs_the_real_filter_inferences_handler(aws: Any, cli_twin: Any) -> None:
    deployed = aws(
        "stepfunctions",
        "describe-state-machine",
        "--state-machine-arn",
        cli_twin.exports["SCONES_STATE_MACHINE_ARN"],
    ).ok()
    event = {
        "s3_bucket": "b",
        "s3_key": "incoming/x.png",
        "image_data": "",
        "inferences": [0.97, 0.03],
    }
    out = aws(
        "stepfunctions",
        "test-state",
        "--definition",
        deployed["definition"],
        "--state-name",
        "FilterInferences",
        "--role-arn",
        deployed["roleArn"],
        "--input",
        json.dumps(event),
        "--inspection-level",
        "DEBUG",
    ).ok()
    assert out["status"] == "SUCCEEDED", out
    assert json.loads(out["output"])["inferences"] == [0.97, 0.03]
    assert json.loads(out["inspectionData"]["input"]) == event
    unsure = aws(
        "stepfunctions",
        "test-state",
        "--definition",
        deployed["definition"],
        "--state-name",
        "FilterInferences",
        "--input",
        json.dumps({**event, "inferences": [0.6, 0.4]}),
    ).ok()
    assert (unsure["status"], unsure["error"]) == ("CAUGHT_ERROR", "LowConfidenceError")
    assert unsure["nextState"] == "RecordForHumanReview"


def test_start_sync_execution_on_an_express_machine(aws: Any, role: str) -> None:
    machine = _machine(aws, role, PASSES, kind="EXPRESS")
    out = aws(
        "stepfunctions",
        "start-sync-execution",
        "--state-machine-arn",
        machine,
        "--input",
        '{"x": 1}',
    ).ok()
    assert out["status"] == "SUCCEEDED" and json.loads(out["output"]) == {"x": 1, "a": 1}


def test_redrive_and_unimplemented_operations_answer_aws_errors_at_once(
    aws: Any, role: str
) -> None:
    machine = _machine(aws, role, PASSES)
    arn = aws("stepfunctions", "start-execution", "--state-machine-arn", machine).ok()[
        "executionArn"
    ]
    _finished(aws, arn)
    redrive = aws("stepfunctions", "redrive-execution", "--execution-arn", arn, "--debug")
    assert redrive.code != 0 and "(ExecutionNotRedrivable)" in redrive.stderr
    assert redrive.stderr.count("Sending http request") == 1  # answered once, not retried
    versions = aws(
        "stepfunctions", "list-state-machine-versions", "--state-machine-arn", machine, "--debug"
    )
    assert versions.code != 0 and "(UnknownOperationException)" in versions.stderr
    assert versions.stderr.count("Sending http request") == 1
    assert "<html" not in versions.stderr.lower()
