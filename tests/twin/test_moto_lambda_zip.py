"""The twin's Lambda beyond the bound handlers: functions created with their own zip run that
code (never a file a tag names), MarshalError, ``LogType=Tail``, safe unpacking, timeouts."""

from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from sample_deploy import deploy_sample

from scones.settings import Settings
from scones.twin import lambda_logs, lambda_runtime, lambda_zip
from scones.twin.lambda_runtime import HANDLER_FILE_TAG

USER_CODE = """
import json, logging, os
logging.getLogger().setLevel(logging.INFO)

def handler(event, context):
    print("hello from the zip", event.get("n"))
    logging.info("logged by the zip")
    return {"mine": os.environ.get("MINE"), "greeting": os.environ.get("GREETING"),
            "fn": context.function_name}

def raw(event, context):
    return b"bytes cannot be JSON"

def slow(event, context):
    import time
    time.sleep(5)
"""


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _clients(moto_server: Any) -> tuple[Any, str]:
    kw: dict[str, Any] = {
        "endpoint_url": moto_server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": Settings.access_key_id,
        "aws_secret_access_key": Settings.secret_access_key,
        "config": Config(retries={"max_attempts": 1}, read_timeout=30),
    }
    iam = boto3.client("iam", **kw)
    try:
        role = iam.get_role(RoleName="zip-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="zip-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return boto3.client("lambda", **kw), str(role)


def _create(lam: Any, role: str, name: str, handler: str, **extra: Any) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler=handler,
        Code={"ZipFile": _zip({"app.py": USER_CODE})},
        **extra,
    )


def test_a_zip_function_runs_its_code_with_its_own_environment(
    moto_server: Any, app_root: Path, settings_for: Any
) -> None:
    deploy_sample(settings_for(app_root))  # bound functions set GREETING in the shared process
    lam, role = _clients(moto_server)
    _create(lam, role, "user-zip", "app.handler", Environment={"Variables": {"MINE": "yes"}})
    out = lam.invoke(FunctionName="user-zip", Payload=b'{"n": 7}', LogType="Tail")
    assert "FunctionError" not in out
    assert json.loads(out["Payload"].read()) == {"mine": "yes", "greeting": None, "fn": "user-zip"}
    log = base64.b64decode(out["LogResult"]).decode()
    assert log.startswith("START RequestId: ")
    assert "hello from the zip 7" in log and "logged by the zip" in log
    assert "\nEND RequestId: " in log and "\nREPORT RequestId: " in log
    assert "LogResult" not in lam.invoke(FunctionName="user-zip", Payload=b"{}")


def test_a_tag_naming_a_file_never_runs_that_file(moto_server: Any, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(
        f"open({str(marker)!r}, 'w').write('x')\ndef handler(e, c):\n    return 'evil'\n"
    )
    lam, role = _clients(moto_server)
    _create(lam, role, "tagged-zip", "app.handler", Tags={HANDLER_FILE_TAG: str(evil)})
    out = lam.invoke(FunctionName="tagged-zip", Payload=b"{}")
    assert json.loads(out["Payload"].read())["fn"] == "tagged-zip"  # the zip's own code ran
    assert not marker.exists()


def test_new_code_for_a_deployed_function_runs_the_new_code(
    moto_server: Any, app_root: Path, settings_for: Any
) -> None:
    lam, _, arns, _ = deploy_sample(settings_for(app_root))
    lam.update_function_code(FunctionName=arns["OkFunction"], ZipFile=_zip({"app.py": USER_CODE}))
    lam.update_function_configuration(FunctionName=arns["OkFunction"], Handler="app.handler")
    out = lam.invoke(FunctionName=arns["OkFunction"], Payload=b"{}")
    assert json.loads(out["Payload"].read())["fn"] == "scones-Ok"
    deploy_sample(settings_for(app_root))  # deploying again binds the template's handler again
    out = lam.invoke(FunctionName=arns["OkFunction"], Payload=b'{"x": 1}')
    assert json.loads(out["Payload"].read())["greeting"] == "hello"


def test_bytes_result_is_a_marshal_error(moto_server: Any) -> None:
    lam, role = _clients(moto_server)
    _create(lam, role, "raw-zip", "app.raw")
    out = lam.invoke(FunctionName="raw-zip", Payload=b"{}")
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "Runtime.MarshalError"
    assert body["errorMessage"].startswith("Unable to marshal response: ")
    tail = lam.invoke(FunctionName="raw-zip", Payload=b"{}", LogType="Tail")["LogResult"]
    assert "[ERROR] Runtime.MarshalError: Unable to marshal" in base64.b64decode(tail).decode()


def test_in_process_handler_bytes_result_is_a_marshal_error() -> None:
    context = lambda_runtime.LambdaContext(function_name="f")
    result = lambda_runtime.invoke(lambda event, ctx: {"b": b"x"}, {}, context)
    assert result.is_error
    assert result.payload["errorType"] == "Runtime.MarshalError"
    assert result.payload["requestId"] == context.aws_request_id


def test_a_slow_function_is_timed_out(moto_server: Any) -> None:
    lam, role = _clients(moto_server)
    _create(lam, role, "slow-zip", "app.slow", Timeout=1)
    out = lam.invoke(FunctionName="slow-zip", Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert out["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]


def test_missing_module_is_an_import_module_error(moto_server: Any) -> None:
    lam, role = _clients(moto_server)
    _create(lam, role, "nomodule-zip", "nowhere.handler")
    body = json.loads(lam.invoke(FunctionName="nomodule-zip", Payload=b"{}")["Payload"].read())
    assert body["errorType"] == "Runtime.ImportModuleError"


def _raw_zip(name: str, data: bytes = b"x", mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "archive",
    [
        _raw_zip("../escaped.py"),
        _raw_zip("a/../../escaped.py"),
        _raw_zip("/abs/escaped.py"),
        _raw_zip("link.py", b"/etc/passwd", mode=0o120777),  # a symlink member
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink"],
)
def test_unsafe_members_are_refused(tmp_path: Path, archive: bytes) -> None:
    with pytest.raises(lambda_zip.UnsafeArchiveError):
        lambda_zip.unpack(archive, tmp_path / "code" / "f-1")
    assert not (tmp_path / "escaped.py").exists()
    assert not (tmp_path / "code" / "f-1").exists()
    assert list((tmp_path / "code").iterdir()) == []  # the staging folder is gone too


def test_the_unpacked_size_is_capped_while_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lambda_zip, "MAX_UNPACKED_BYTES", 1000)
    bomb = _raw_zip("zeros.bin", b"\0" * 100_000)  # deflate-free: still 100 kB declared
    with pytest.raises(lambda_zip.UnsafeArchiveError, match="over"):
        lambda_zip.unpack(bomb, tmp_path / "f-2")
    assert not (tmp_path / "f-2").exists()


def test_not_a_zip_is_named(tmp_path: Path) -> None:
    with pytest.raises(lambda_zip.InvalidZipFileException):
        lambda_zip.unpack(b"not a zip", tmp_path / "f-3")


def test_log_capture_keeps_concurrent_invocations_apart() -> None:
    logs: dict[str, str] = {}

    def one(tag: str) -> None:
        with lambda_logs.capture(tag) as captured:
            for _ in range(50):
                print(f"line of {tag}")
        logs[tag] = captured.text

    threads = [threading.Thread(target=one, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for tag, text in logs.items():
        assert text.count(f"line of {tag}") == 50
        assert "line of" not in text.replace(f"line of {tag}", "")


def test_log_result_is_the_last_4_kb() -> None:
    text = "a" * 10_000 + "the end\n"
    tail = base64.b64decode(lambda_logs.log_result(text))
    assert len(tail) == 4096 and tail.endswith(b"the end\n")


def test_test_state_runs_a_task_with_the_real_handler(
    moto_server: Any, app_root: Path, settings_for: Any
) -> None:
    _, sfn, arns, _ = deploy_sample(settings_for(app_root))
    state = {"Type": "Task", "Resource": arns["OkFunction"], "ResultPath": "$.out", "Next": "X"}
    out = sfn.test_state(
        definition=json.dumps(state),
        input='{"x": 2}',
        inspectionLevel="DEBUG",
        roleArn="arn:aws:iam::123456789012:role/r",
    )
    assert out["status"] == "SUCCEEDED" and out["nextState"] == "X"
    result = json.loads(out["output"])["out"]
    assert result == {"x": 2, "greeting": "hello", "fn": "scones-Ok"}  # the sample app's handler
    assert json.loads(out["inspectionData"]["input"]) == {"x": 2}


def test_a_bound_handler_returns_its_log_tail(
    moto_server: Any, app_root: Path, settings_for: Any, tmp_path: Path
) -> None:
    lam, _, arns, _ = deploy_sample(settings_for(app_root))
    counter = tmp_path / "counter"
    out = lam.invoke(
        FunctionName=arns["FlakyFunction"],
        Payload=json.dumps({"counter": str(counter), "fatal": True}).encode(),
        LogType="Tail",
    )
    assert out["FunctionError"] == "Unhandled"
    request_id = json.loads(out["Payload"].read())["requestId"]
    log = base64.b64decode(out["LogResult"]).decode()
    assert log.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
    assert f"\nEND RequestId: {request_id}\n" in log and "\tDuration: " in log
    assert "[ERROR] FatalError: fatal on call 1\n" in log
