"""The idle-endpoint guard offline: the endpoint server publishes its Invocations metric to the
twin's CloudWatch (moto), answers DescribeEndpoint / DeleteEndpoint, and the guard's real handler
decides with plain boto3 clients from ``scones env``'s settings."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from scones.endpoint.registry import endpoint_dir, register_endpoint, unregister_endpoint
from scones.settings import Settings
from scones.twin import lambda_runtime
from scones.twin.template import read_app

PROJECT = Path(__file__).resolve().parents[2]


def png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (20, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (the twin publishes every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"{what} did not happen within {timeout:.0f} s"
            return value
        time.sleep(0.25)


def invocations(cloudwatch: Any, endpoint: str) -> float:
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=2),
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(point["Sum"] for point in answer["Datapoints"]))


def age(settings: Settings, name: str, days: int) -> None:
    """Make a registered endpoint look ``days`` old (its registration time, in endpoint.json)."""
    path = endpoint_dir(settings, name) / "endpoint.json"
    config = json.loads(path.read_text())
    config["created"] = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config))
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def guard_handler() -> Any:
    """The guard's real handler, loaded as ``scones invoke`` loads it (layer on sys.path)."""
    app = read_app(PROJECT, parameter_overrides={"IdleEndpointGuard": "enabled"})
    spec = app.function("IdleEndpointGuardFunction")
    return lambda_runtime.load_handler(spec.handler_file, spec.handler_name, spec.layers)


def run_guard(handler: Any, endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import sys

    module = sys.modules[handler.__module__]
    monkeypatch.setattr(module, "_clients", {})  # clients made from this environment
    monkeypatch.setenv("ENDPOINT_NAME", endpoint)
    monkeypatch.setenv("IDLE_HOURS", "24")
    context = lambda_runtime.LambdaContext(function_name="scones-IdleEndpointGuard")
    result: dict[str, Any] = handler({}, context)
    return result


def test_invocations_reach_the_twins_cloudwatch_and_keep_the_endpoint(
    twin_settings: Settings,
    tiny_model_tar: Path,
    guard_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"busy-{uuid.uuid4().hex[:8]}"
    register_endpoint(twin_settings, name, tiny_model_tar, capture_s3_uri=None)
    try:
        runtime = boto3.client("sagemaker-runtime")
        for _ in range(3):
            runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
        cloudwatch = boto3.client("cloudwatch")
        eventually(lambda: invocations(cloudwatch, name) == 3, "3 invocations in CloudWatch")
        age(twin_settings, name, days=2)
        result = run_guard(guard_handler, name, monkeypatch)
        assert result["action"] == "kept" and result["invocations"] == 3, result
        described = boto3.client("sagemaker").describe_endpoint(EndpointName=name)
        assert described["EndpointStatus"] == "InService"
    finally:
        unregister_endpoint(twin_settings, name, missing_ok=True)


def test_an_idle_endpoint_is_deleted_and_comes_back_from_its_model(
    twin_settings: Settings,
    tiny_model_tar: Path,
    guard_handler: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"idle-{uuid.uuid4().hex[:8]}"
    register_endpoint(twin_settings, name, tiny_model_tar, capture_s3_uri=None)
    try:
        young = run_guard(guard_handler, name, monkeypatch)
        assert young["action"] == "kept" and "created" in young["reason"], young
        age(twin_settings, name, days=2)
        result = run_guard(guard_handler, name, monkeypatch)
        assert result["action"] == "deleted", result
        sagemaker = boto3.client("sagemaker")
        with pytest.raises(ClientError) as info:
            sagemaker.describe_endpoint(EndpointName=name)
        assert info.value.response["Error"]["Code"] == "ValidationException"
        runtime = boto3.client("sagemaker-runtime")

        def refused() -> bool:
            try:
                runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
            except ClientError as exc:
                return exc.response["Error"]["Code"] == "ValidationError"
            return False

        eventually(refused, "the deleted endpoint refusing invocations", timeout=10)
        assert run_guard(guard_handler, name, monkeypatch)["action"] == "none"  # gone: no error
        assert tiny_model_tar.is_file()  # what `scones deploy --local` registers again
        register_endpoint(twin_settings, name, tiny_model_tar, capture_s3_uri=None)
        answer = runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
        assert len(json.loads(answer["Body"].read())) == 2
    finally:
        unregister_endpoint(twin_settings, name, missing_ok=True)
