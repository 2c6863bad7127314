"""``scones cost`` end to end against moto (``mock_aws`` with the ASL interpreter on): a state
machine of the workflow's three Lambda tasks (moto's Lambda echoes its event), executions,
Data Capture objects in S3; the --json shape, --since, the chart files, the one-line errors."""

from __future__ import annotations

import io
import json
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scones.cli import main
from scones.twin.lambda_runtime import HANDLER_FILE_TAG

ACCOUNT, REGION = "123456789012", "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
IMAGE_B64 = "iVBORw0KGgo="  # 8 bytes
TASKS = ("SerializeImage", "ClassifyImage", "FilterInferences")


@dataclass
class Account:
    sfn: Any
    machine: str
    executions: list[str]


ECHO_HANDLER = "def lambda_handler(event, context):\n    return event\n"


def _echo_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("app.py", ECHO_HANDLER)
    return buf.getvalue()


def _definition(functions: dict[str, str]) -> dict[str, Any]:
    states: dict[str, Any] = {"ReadInput": {"Type": "Pass", "Next": TASKS[0]}}
    for task, following in zip(TASKS, [*TASKS[1:], None], strict=True):
        states[task] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": functions[task], "Payload.$": "$"},
            "OutputPath": "$.Payload",
            **({"Next": following} if following else {"End": True}),
        }
    return {"StartAt": "ReadInput", "States": states}


def _wait(sfn: Any, arns: list[str]) -> None:
    deadline = time.monotonic() + 60
    while any(sfn.describe_execution(executionArn=a)["status"] == "RUNNING" for a in arns):
        assert time.monotonic() < deadline, "executions still running"
        time.sleep(0.02)


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Account]:
    """Three finished executions and two Data Capture files in a mocked account."""
    import boto3
    from moto import mock_aws

    for key in [*AWS_ENV, "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SFN"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SCONES_HOME", str(tmp_path / "home"))  # no training report there
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    # The echo handler as a file, tagged as `scones deploy --local` tags functions: moto's own
    # simple backend echoes the event, and the twin's binding (installed process-wide once another
    # test has used it) runs this file, so the histories are the same in either case.
    echo = tmp_path / "echo" / "app.py"
    echo.parent.mkdir()
    echo.write_text(ECHO_HANDLER, encoding="utf-8")
    with mock_aws(config=config):
        role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")
        lam = boto3.client("lambda")
        functions = {
            task: lam.create_function(
                FunctionName=f"scones-{task}",
                Runtime="python3.13",
                Role=role["Role"]["Arn"],
                Handler="app.lambda_handler",
                Code={"ZipFile": _echo_zip()},
                Tags={HANDLER_FILE_TAG: str(echo)},
            )["FunctionArn"]
            for task in TASKS
        }
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="scones-ImageClassification",
            definition=json.dumps(_definition(functions)),
            roleArn=role["Role"]["Arn"],
        )["stateMachineArn"]
        item = {"s3_key": "incoming/a.png", "image_data": IMAGE_B64, "inferences": [0.97, 0.03]}
        arns = [
            sfn.start_execution(stateMachineArn=machine, name=f"run-{i}", input=json.dumps(item))[
                "executionArn"
            ]
            for i in range(3)
        ]
        _wait(sfn, arns)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="images")
        for i in range(2):
            key = f"data_capture/scones-image-classifier/AllTraffic/2026/11/28/10/{i}.jsonl"
            s3.put_object(Bucket="images", Key=key, Body=b"x" * 100)
        yield Account(sfn, machine, arns)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["cost", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _common(account: Account) -> list[str]:
    return [
        "--state-machine",
        account.machine,
        "--capture-uri",
        "s3://images/data_capture",
        "--endpoint",
        "scones-image-classifier",
    ]


def test_json_has_the_issue_shape_and_the_measured_counts(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, *_common(account), "--json", "--images-per-month", "1000")
    assert code == 0
    report = json.loads(out)
    assert report["state_machine_type"] == "STANDARD"
    usage = report["usage"]
    # ReadInput + three tasks, no retry, per execution
    assert (usage["executions"], usage["state_transitions"], usage["retries"]) == (3, 12, 0)
    assert usage["lambda_invocations"] == 9
    assert {k: v["invocations"] for k, v in usage["lambda"].items()} == {
        "ClassifyImageFunction": 3,
        "FilterInferencesFunction": 3,
        "SerializeImageFunction": 3,
    }
    filter_fn = usage["lambda"]["FilterInferencesFunction"]
    assert (filter_fn["memory_mb"], filter_fn["architecture"]) == (128, "arm64")  # template.yaml
    assert (usage["endpoint_invocations"], usage["endpoint_bytes_in"]) == (3, 3 * 8)
    assert usage["endpoint_bytes_out"] == 3 * len("[0.97, 0.03]")
    assert (usage["capture_objects"], usage["capture_bytes"]) == (2, 200)
    assert report["images_per_month"] == 1000
    assert len(report["options"]) == 7
    for option in report["options"]:
        assert {"name", "per_1000_images_usd", "monthly_usd", "floor_usd"} <= set(option)
        assert option["monthly_usd"] >= option["floor_usd"] >= 0
    standard = report["options"][0]
    assert standard["name"] == "Standard, arm64, real-time 1 x ml.m5.large"
    assert standard["floor_usd"] == pytest.approx(0.115 * 730, abs=0.01)
    # 4 transitions per image at $0.025 per 1,000
    assert report["workflow_per_1000_images"]["standard_usd"] == pytest.approx(0.1)
    assert report["training"]["usd"] is None


def test_since_prices_only_what_ran_in_the_window(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(ACCOUNT, REGION)  # the interpreter's backend while it is on
    (machine,) = [m for m in backend.state_machines if m.arn == account.machine]
    old = next(e for e in machine.executions if e.execution_arn == account.executions[0])
    old.start_date = old.start_date - timedelta(hours=2)
    code, out, _ = _run(capsys, *_common(account), "--json", "--since", "1h")
    assert code == 0
    assert json.loads(out)["usage"]["executions"] == 2
    code, out, _ = _run(capsys, *_common(account), "--json")
    assert json.loads(out)["usage"]["executions"] == 3  # no --since: every listed execution


def test_text_report_names_standard_and_express_per_1000_images(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "model.tar.gz"
    metrics = json.dumps({"train_seconds": 72.0}).encode()
    with tarfile.open(report, "w:gz") as archive:
        info = tarfile.TarInfo("metrics.json")
        info.size = len(metrics)
        archive.addfile(info, io.BytesIO(metrics))
    code, out, _ = _run(capsys, *_common(account), "--model", str(report))
    assert code == 0
    assert "state transitions: 12 (12 state entries + 0 retries) = 4 per image" in out
    assert "Step Functions per 1,000 images: Standard $0.1000, Express $" in out
    assert "Standard, x86_64, real-time 1 x ml.m5.large" in out
    assert "no Data Capture on serverless endpoints" in out
    assert "execution logs at level ALL with data (ExecutionLogs=auto for Express)" in out
    # 72 s on ml.m5.xlarge at $0.23 an hour
    assert "training: 72 s on ml.m5.xlarge = $0.0046" in out


def test_output_writes_the_chart_and_its_page(
    account: Account, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "cost"
    code, out, _ = _run(capsys, *_common(account), "--output", str(folder))
    assert code == 0 and f"wrote {folder / 'cost.png'}" in out
    png = (folder / "cost.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    page = (folder / "cost.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in page
    assert "Standard, arm64, real-time 1 x ml.m5.large" in page
    assert "issue text, unverified" in page  # every price's source is on the page
    assert "Break-even volumes" in page


def test_errors_are_one_line(account: Account, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, *_common(account), "--since", "soon")
    assert code == 2 and err.strip() == (
        "scones cost: --since 'soon': use a number and s, m, h, d or w (such as 1h)"
    )
    missing = account.machine.replace("scones-ImageClassification", "other")
    code, _, err = _run(capsys, "--state-machine", missing)
    assert code == 2 and err.strip() == f"scones cost: no state machine {missing}"
    empty = account.sfn.create_state_machine(
        name="empty",
        definition=json.dumps(_definition({t: "x" for t in TASKS})),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    code, _, err = _run(capsys, "--state-machine", empty)
    assert code == 2 and "no executions of" in err


def test_twin_without_a_deployment_says_to_deploy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCONES_HOME", str(tmp_path))
    code, _, err = _run(capsys)
    assert code == 2 and "run `scones deploy --local`" in err


def test_bad_counts_and_training_reports_are_one_line(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, *_common(account), "--images-per-month", "0")
    assert code == 2 and err.strip() == (
        "scones cost: --images-per-month and --instance-count must be at least 1"
    )
    broken = tmp_path / "model.tar.gz"
    broken.write_bytes(b"not a tar file")
    code, _, err = _run(capsys, *_common(account), "--model", str(broken))
    assert code == 2 and err.startswith(
        f"scones cost: cannot read the training report from {broken}:"
    )
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, *_common(account), "--async-hours", "25")
    assert code == 2 and err.strip() == "scones cost: --async-hours 25: hours a day, from 0 to 24"
    code, _, err = _run(capsys, *_common(account), "--inference-ms=-5")
    assert code == 2 and err.strip() == "scones cost: --inference-ms -5: must be 0 or more"
