"""Lambda through the AWS CLI against the twin: a user's own zip, LogType Tail, MarshalError."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from awscli_helpers import zip_file

pytestmark = pytest.mark.stack

CODE = """
import os

def handler(event, context):
    print("user code says", event["n"])
    return {"mine": os.environ.get("MINE"), "n": event["n"]}

def raw(event, context):
    return b"not JSON"
"""


@pytest.fixture(scope="module")
def function(aws: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("lambda-zip")
    evil = folder / "evil.py"
    evil.write_text(f"open({str(folder / 'ran')!r}, 'w')\ndef handler(e, c):\n    return 1\n")
    role = aws(
        "iam", "create-role", "--role-name", "awscli-lambda", "--assume-role-policy-document", "{}"
    )
    for name, handler in (("user-fn", "app.handler"), ("user-raw", "app.raw")):
        aws(
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "python3.13",
            "--role",
            role.ok()["Role"]["Arn"],
            "--handler",
            handler,
            "--zip-file",
            f"fileb://{zip_file(folder, {'app.py': CODE})}",
            "--environment",
            "Variables={MINE=yes}",
            "--tags",
            f"scones:handler-file={evil}",  # a tag naming a file: never run
        ).ok()
    return str(folder)


def _invoke(aws: Any, name: str, payload: dict[str, Any], out: Path, *extra: str) -> Any:
    return aws(
        "lambda",
        "invoke",
        "--function-name",
        name,
        "--payload",
        json.dumps(payload),
        *extra,
        str(out),
    ).ok()


def test_a_users_zip_runs_with_its_environment_and_tail_log(
    aws: Any, function: str, tmp_path: Path
) -> None:
    answer = _invoke(aws, "user-fn", {"n": 5}, tmp_path / "out.json", "--log-type", "Tail")
    assert "FunctionError" not in answer
    assert json.loads((tmp_path / "out.json").read_text()) == {"mine": "yes", "n": 5}
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "user code says 5" in log and log.startswith("START RequestId:")
    assert not (Path(function) / "ran").exists()  # the tagged file did not run


def test_bytes_result_is_runtime_marshal_error(aws: Any, function: str, tmp_path: Path) -> None:
    answer = _invoke(aws, "user-raw", {}, tmp_path / "out.json")
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads((tmp_path / "out.json").read_text())
    assert error["errorType"] == "Runtime.MarshalError"
    assert error["errorMessage"].startswith("Unable to marshal response:")
