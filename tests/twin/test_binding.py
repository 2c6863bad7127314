"""Lambda binding in moto: real handlers run, errors keep their names, Retry/Catch still work."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from scones.settings import Settings
from scones.twin import deploy, moto_patches
from scones.twin.clients import twin_clients
from scones.twin.lambda_runtime import ConflictingEnvironmentError, merge_environments
from scones.twin.template import read_app


def _clients(settings: Settings) -> tuple[Any, Any, Any]:
    lam, sfn, iam = twin_clients(settings, "lambda", "stepfunctions", "iam")
    return lam, sfn, iam


def _deploy(settings: Settings) -> tuple[Any, Any, dict[str, str], str]:
    app = read_app(settings.project_root, region=settings.region)
    lam, sfn, iam = _clients(settings)
    role = deploy.ensure_role(iam, "test-role")
    arns = {lid: deploy.deploy_function(lam, spec, role) for lid, spec in app.functions.items()}
    machine = deploy.deploy_state_machine(sfn, app.state_machine)
    return lam, sfn, arns, machine


def _wait(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = sfn.describe_execution(executionArn=arn)
        if info["status"] != "RUNNING":
            return dict(info)
        time.sleep(0.02)
    raise AssertionError(f"{arn} still running")


def _start(sfn: Any, machine: str, payload: dict[str, Any], name: str) -> dict[str, Any]:
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))
    return _wait(sfn, arn["executionArn"])


def test_invoke_runs_real_handler_with_its_environment(app_root: Path, settings_for: Any) -> None:
    lam, _, arns, _ = _deploy(settings_for(app_root))
    out = lam.invoke(FunctionName=arns["OkFunction"], Payload=b'{"x": 1}')
    assert "FunctionError" not in out
    body = json.loads(out["Payload"].read())
    assert body == {"x": 1, "greeting": "hello", "fn": "scones-Ok"}


def test_invoke_error_has_exception_class_name(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, _, arns, _ = _deploy(settings_for(app_root))
    event = {"counter": str(tmp_path / "c"), "fatal": True}
    out = lam.invoke(FunctionName=arns["FlakyFunction"], Payload=json.dumps(event).encode())
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "FatalError"
    assert body["errorMessage"] == "fatal on call 1"
    assert any("lambda_handler" in line for line in body["stackTrace"])
    assert not any("lambda_runtime" in line for line in body["stackTrace"])


def test_retry_then_success_counts_attempts(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    _, sfn, _, machine = _deploy(settings_for(app_root))
    counter = tmp_path / "retry"
    out = _start(sfn, machine, {"counter": str(counter), "fail_times": 2}, "retry-ok")
    assert out["status"] == "SUCCEEDED"
    result = json.loads(out["output"])
    assert result["calls"] == 3  # two FlakyErrors retried (MaxAttempts 2), then success
    assert result["greeting"] == "hello"  # the second task (a plain function ARN) ran too


def test_retries_exhausted_fall_to_catch_all(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    _, sfn, _, machine = _deploy(settings_for(app_root))
    counter = tmp_path / "exhausted"
    out = _start(sfn, machine, {"counter": str(counter), "fail_times": 5}, "retry-exhausted")
    assert out["status"] == "FAILED"
    assert out["error"] == "FlakyError"
    assert counter.read_text() == "3"  # 1 try + 2 retries, no more


def test_catch_by_error_name(app_root: Path, settings_for: Any, tmp_path: Path) -> None:
    _, sfn, _, machine = _deploy(settings_for(app_root))
    counter = tmp_path / "fatal"
    out = _start(sfn, machine, {"counter": str(counter), "fatal": True}, "catch-fatal")
    assert out["status"] == "FAILED"
    assert out["error"] == "CaughtFatal"
    cause = json.loads(out["cause"])  # as on AWS: the Lambda's error payload, as JSON text
    assert (cause["errorType"], cause["errorMessage"]) == ("FatalError", "fatal on call 1")
    assert counter.read_text() == "1"  # FatalError is not retried


def test_missing_function_is_a_lambda_error(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, sfn, arns, machine = _deploy(settings_for(app_root))
    lam.delete_function(FunctionName=arns["FlakyFunction"])
    try:
        out = _start(sfn, machine, {"counter": str(tmp_path / "x")}, "missing-fn")
        assert out["status"] == "FAILED"
        assert out["error"] == "Lambda.ResourceNotFoundException"
    finally:
        _deploy(settings_for(app_root))


def test_redeploy_is_idempotent_and_updates_environment(app_root: Path, settings_for: Any) -> None:
    settings = settings_for(app_root)
    first = _deploy(settings)
    (app_root / "samconfig.toml").write_text(
        '[default.deploy.parameters]\nparameter_overrides = "Greeting=bonjour"\n'
    )
    lam, _, arns, machine = _deploy(settings)
    assert arns == first[2] and machine == first[3]
    body = json.loads(lam.invoke(FunctionName=arns["OkFunction"], Payload=b"{}")["Payload"].read())
    assert body["greeting"] == "bonjour"
    (app_root / "samconfig.toml").unlink()
    _deploy(settings)


def test_function_not_deployed_by_scones_reports_error(moto_server: Any) -> None:
    import io
    import zipfile

    kw = {
        "endpoint_url": moto_server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
    }
    lam, iam = boto3.client("lambda", **kw), boto3.client("iam", **kw)
    role = deploy.ensure_role(iam, "plain-role")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "")
    lam.create_function(
        FunctionName="plain",
        Runtime="python3.11",
        Role=role,
        Handler="app.h",
        Code={"ZipFile": buf.getvalue()},
    )
    out = lam.invoke(FunctionName="plain", Payload=b"{}")
    assert out["FunctionError"] == "Unhandled"
    assert json.loads(out["Payload"].read())["errorType"] == "FunctionNotBoundError"


def test_merge_environments_refuses_conflicts() -> None:
    assert merge_environments({"A": {"X": "1"}, "B": {"X": "1", "Y": "2"}}) == {"X": "1", "Y": "2"}
    with pytest.raises(ConflictingEnvironmentError, match="X"):
        merge_environments({"A": {"X": "1"}, "B": {"X": "2"}})


class _Execution:
    def __init__(self, status: str) -> None:
        self.status = status


class _Machine:
    def __init__(self, statuses: list[str]) -> None:
        self.executions = [_Execution(s) for s in statuses]


def test_evict_executions_keeps_running_and_newest() -> None:
    machine = _Machine(["SUCCEEDED", "RUNNING", "FAILED", "SUCCEEDED", "RUNNING"])
    newest = machine.executions[-2:]
    assert moto_patches.evict_executions(machine, 3) == 2
    assert [e.status for e in machine.executions] == ["RUNNING", "SUCCEEDED", "RUNNING"]
    assert machine.executions[-2:] == newest
    assert moto_patches.evict_executions(machine, 3) == 0


def test_executions_kept_are_bounded(app_root: Path, settings_for: Any, tmp_path: Path) -> None:
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    _, sfn, _, machine = _deploy(settings_for(app_root))
    tracked_before = len(StateMachine.instances_tracked)  # type: ignore[attr-defined]
    for i in range(60):  # the fixture keeps 50
        arn = sfn.start_execution(
            stateMachineArn=machine,
            name=f"bound-{i}",
            input=json.dumps({"counter": str(tmp_path / str(i))}),
        )["executionArn"]
        _wait(sfn, arn)
    backend = stepfunctions_parser_backends["123456789012"]["us-east-1"]
    kept = backend.describe_state_machine(machine).executions
    assert len(kept) <= 51
    assert kept[-1].execution_arn == arn
    # moto's per-execution copies of the state machine are not kept by its instance tracker
    assert len(StateMachine.instances_tracked) <= tracked_before + 1  # type: ignore[attr-defined]
