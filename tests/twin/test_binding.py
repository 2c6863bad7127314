"""The twin's Lambda binding in moto: real handlers run, errors keep their names, Retry/Catch work.

Against the in-process sfn server (``moto_server``: the production ``start_server``), and
``moto_binding`` directly where a server adds nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from sample_deploy import deploy_sample, run

from scones.settings import Settings
from scones.twin import deploy, moto_binding
from scones.twin.lambda_runtime import ConflictingEnvironmentError, merge_environments


def test_moto_finds_the_bound_backend_where_it_looks(moto_server: Any) -> None:
    from moto.awslambda.utils import get_backend
    from moto.awslambda_simple.models import LambdaSimpleBackend

    backend = get_backend("123456789012", "us-east-1")  # moto's own lookup, config-aware
    assert isinstance(backend, moto_binding.BoundLambdaBackend)
    assert isinstance(backend, LambdaSimpleBackend)
    assert moto_binding.installed()
    moto_binding.install()  # idempotent: the same dictionary, functions kept
    assert get_backend("123456789012", "us-east-1") is backend


def test_invoke_runs_real_handler_with_its_environment(app_root: Path, settings_for: Any) -> None:
    lam, _, arns, _ = deploy_sample(settings_for(app_root))
    out = lam.invoke(FunctionName=arns["OkFunction"], Payload=b'{"x": 1}')
    assert "FunctionError" not in out
    body = json.loads(out["Payload"].read())
    assert body == {"x": 1, "greeting": "hello", "fn": "scones-Ok"}


def test_invoke_error_has_exception_class_name(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, _, arns, _ = deploy_sample(settings_for(app_root))
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
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    counter = tmp_path / "retry"
    out = run(sfn, machine, {"counter": str(counter), "fail_times": 2}, "retry-ok")
    assert out["status"] == "SUCCEEDED"
    result = json.loads(out["output"])
    assert result["calls"] == 3  # two FlakyErrors retried (MaxAttempts 2), then success
    assert result["greeting"] == "hello"  # the second task (a plain function ARN) ran too


def test_retries_exhausted_fall_to_catch_all(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    counter = tmp_path / "exhausted"
    out = run(sfn, machine, {"counter": str(counter), "fail_times": 5}, "retry-exhausted")
    assert out["status"] == "FAILED"
    assert out["error"] == "FlakyError"
    assert counter.read_text() == "3"  # 1 try + 2 retries, no more


def test_catch_by_error_name(app_root: Path, settings_for: Any, tmp_path: Path) -> None:
    _, sfn, _, machine = deploy_sample(settings_for(app_root))
    counter = tmp_path / "fatal"
    out = run(sfn, machine, {"counter": str(counter), "fatal": True}, "catch-fatal")
    assert out["status"] == "FAILED"
    assert out["error"] == "CaughtFatal"
    cause = json.loads(out["cause"])  # as on AWS: the Lambda's error payload, as JSON text
    assert (cause["errorType"], cause["errorMessage"]) == ("FatalError", "fatal on call 1")
    assert counter.read_text() == "1"  # FatalError is not retried


def test_missing_function_is_a_lambda_error(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, sfn, arns, machine = deploy_sample(settings_for(app_root))
    lam.delete_function(FunctionName=arns["FlakyFunction"])
    try:
        out = run(sfn, machine, {"counter": str(tmp_path / "x")}, "missing-fn")
        assert out["status"] == "FAILED"
        assert out["error"] == "Lambda.ResourceNotFoundException"
    finally:
        deploy_sample(settings_for(app_root))


def test_redeploy_is_idempotent_and_updates_environment(app_root: Path, settings_for: Any) -> None:
    settings = settings_for(app_root)
    first = deploy_sample(settings)
    (app_root / "samconfig.toml").write_text(
        '[default.deploy.parameters]\nparameter_overrides = "Greeting=bonjour"\n'
    )
    lam, _, arns, machine = deploy_sample(settings)
    assert arns == first[2] and machine == first[3]
    body = json.loads(lam.invoke(FunctionName=arns["OkFunction"], Payload=b"{}")["Payload"].read())
    assert body["greeting"] == "bonjour"
    (app_root / "samconfig.toml").unlink()
    deploy_sample(settings)


def test_function_not_deployed_by_scones_runs_its_own_zip(moto_server: Any) -> None:
    import io
    import zipfile

    kw = {
        "endpoint_url": moto_server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": Settings.access_key_id,  # the twin's keys: it verifies SigV4
        "aws_secret_access_key": Settings.secret_access_key,
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
    assert out["FunctionError"] == "Unhandled"  # its app.py defines no h, as Lambda says:
    assert json.loads(out["Payload"].read())["errorType"] == "Runtime.HandlerNotFound"


def test_merge_environments_refuses_conflicts() -> None:
    assert merge_environments({"A": {"X": "1"}, "B": {"X": "1", "Y": "2"}}) == {"X": "1", "Y": "2"}
    with pytest.raises(ConflictingEnvironmentError, match="X"):
        merge_environments({"A": {"X": "1"}, "B": {"X": "2"}})


def test_event_invocation_runs_the_handler_in_the_background(
    app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, _, arns, _ = deploy_sample(settings_for(app_root))
    counter = tmp_path / "async"
    event = json.dumps({"counter": str(counter)}).encode()
    out = lam.invoke(FunctionName=arns["FlakyFunction"], InvocationType="Event", Payload=event)
    assert out["StatusCode"] == 202
    deadline = time.monotonic() + 10
    while not counter.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert counter.read_text() == "1"
    dry = lam.invoke(FunctionName=arns["FlakyFunction"], InvocationType="DryRun", Payload=event)
    assert dry["StatusCode"] == 204 and counter.read_text() == "1"  # DryRun runs nothing


def test_invoke_direct_errors_look_like_botocore_errors(app_root: Path, settings_for: Any) -> None:
    _, _, arns, _ = deploy_sample(settings_for(app_root))
    backend = moto_binding.backend_for(arns["OkFunction"], "us-east-1")
    ok = backend.invoke_direct({"FunctionName": arns["OkFunction"], "Payload": b'{"x": 2}'})
    assert ok["StatusCode"] == 200 and ok["Payload"]["x"] == 2 and "FunctionError" not in ok
    with pytest.raises(ClientError) as missing:
        backend.invoke_direct({"FunctionName": "no-such-function", "Payload": b"{}"})
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as bad:
        backend.invoke_direct({"FunctionName": arns["OkFunction"], "Payload": b"{not json"})
    assert bad.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_decode_event_treats_an_empty_body_as_an_empty_object() -> None:
    assert moto_binding.decode_event(None) == {} and moto_binding.decode_event(b"") == {}
    assert moto_binding.decode_event(b'{"a": 1}') == {"a": 1}
    assert moto_binding.decode_event('["x"]') == ["x"]
