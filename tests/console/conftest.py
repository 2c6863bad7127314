"""Console fixtures: moto (``mock_aws`` with the ASL interpreter on) holding a state machine with
finished executions of each kind, a capture bucket, and the console's app over them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from console_helpers import PORT, create_machine, start, wait_all, work_item

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class World:
    """The mocked account: clients, the machine, named executions, the console's source."""

    sfn: Any
    s3: Any
    machine: str
    executions: dict[str, str]  # name -> ARN
    source: Any
    report: Path


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """Three finished executions (succeeded, low confidence, not an image) in moto."""
    import boto3
    from moto import mock_aws

    from scones.console.source import Source

    for key in list(AWS_ENV) + ["AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SFN"]:
        monkeypatch.delenv(key, raising=False)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="images")
        machine = create_machine(sfn)
        executions = {
            "ok-bike": start(sfn, machine, "ok-bike", work_item(0, 0.99)),
            "low-moto": start(sfn, machine, "low-moto", work_item(1, 0.61)),
            "broken": start(
                sfn, machine, "broken", work_item(1, 0.99, broken=True, image_data="aGVsbG8=")
            ),
        }
        wait_all(sfn, list(executions.values()))
        source = Source(
            mode="twin",
            sfn=sfn,
            s3=s3,
            state_machine_arn=machine,
            endpoint_name="scones-image-classifier",
            capture_uri="s3://images/data_capture",
            classes=["bicycle", "motorcycle"],
            report=tmp_path / "monitor" / "report.html",
            where="moto (tests)",
        )
        yield World(sfn, s3, machine, executions, source, tmp_path / "monitor" / "report.html")


@pytest.fixture
def app(world: World) -> Iterator[Any]:
    """The console's ASGI app over ``world`` (guarded for 127.0.0.1:8090)."""
    from scones.console.app import close_app, create_app

    guarded = create_app(world.source, PORT)
    yield guarded
    close_app(guarded)
