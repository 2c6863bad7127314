"""SageMaker's control plane on the twin through unchanged clients: boto3's ``sagemaker`` client,
and the SageMaker Python SDK v2 (``Predictor``) and v3 (``sagemaker-core``'s ``Endpoint``), each
in its own venv (``make install-sdk``), run with the environment ``scones env`` gives and with
every connection off this machine refused and recorded (there must be none)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from scones.endpoint.registry import register_endpoint
from scones.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("sagemaker_sdk_client.py")
SDK_PYTHON = {
    "v2": os.environ.get("SCONES_SDK_V2_PYTHON") or str(PROJECT / ".venv/sdk2/bin/python"),
    "v3": os.environ.get("SCONES_SDK_V3_PYTHON") or str(PROJECT / ".venv/sdk3/bin/python"),
}


def png(color: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def endpoint(twin_settings: Settings, tiny_model_tar: Path, twin_bucket: str) -> str:
    name = f"ep-sdk-{uuid.uuid4().hex[:6]}"
    register_endpoint(
        twin_settings, name, tiny_model_tar, capture_s3_uri=f"s3://{twin_bucket}/sdk_capture"
    )
    return name


@pytest.fixture(scope="module")
def sm(twin_settings: Settings) -> Any:
    return boto3.client("sagemaker")


def test_boto3_describes_the_endpoint_its_config_and_model(
    sm: Any, endpoint: str, twin_bucket: str, twin_settings: Settings
) -> None:
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{twin_bucket}/sdk_capture"
    assert described["EndpointArn"].startswith(f"arn:aws:sagemaker:{twin_settings.region}:")
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint)  # what deploy scripts call
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model_name = config["ProductionVariants"][0]["ModelName"]
    model = sm.describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["ModelDataUrl"].endswith("model.tar.gz")
    names = [
        e["EndpointName"]
        for page in sm.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": 1})
        for e in page["Endpoints"]
    ]
    assert endpoint in names and len(names) == len(set(names))
    assert [m["ModelName"] for m in sm.list_models(NameContains=endpoint)["Models"]] == [endpoint]


def test_boto3_gets_a_json_error_without_retries_for_the_rest(sm: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName="x", EndpointConfigName="y")
    response: dict[str, Any] = exc.value.response  # type: ignore[assignment]
    assert response["Error"]["Code"] == "UnknownOperationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    with pytest.raises(sm.exceptions.ClientError) as missing:
        sm.describe_endpoint(EndpointName="no-such-endpoint")
    assert missing.value.response["Error"]["Code"] == "ValidationException"


def _sdk(
    kind: str, endpoint: str, image: Path, bucket: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    python = SDK_PYTHON[kind]
    if not Path(python).exists():
        pytest.fail(f"the SageMaker SDK {kind} venv is missing ({python}): run make install-sdk")
    done = subprocess.run(
        [python, str(CLIENT), kind, endpoint, str(image), bucket],
        capture_output=True,
        text=True,
        timeout=120,
        env={**(os.environ if env is None else env), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("SDK-RESULT ")]
    assert lines, done.stdout[-3000:]
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("SDK-RESULT "))
    return result


@pytest.mark.parametrize("kind", ["v2", "v3"])
def test_the_sagemaker_sdk_looks_up_and_invokes_the_endpoint(
    kind: str, endpoint: str, twin_bucket: str, tmp_path: Path
) -> None:
    image = tmp_path / "image.png"
    image.write_bytes(png())
    expected = json.loads(
        boto3.client("sagemaker-runtime")
        .invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=image.read_bytes())[
            "Body"
        ]
        .read()
    )
    result = _sdk(kind, endpoint, image, twin_bucket)
    print(f"SageMaker SDK {kind} {result.get('version')}: seconds {result.get('seconds')}")
    assert "error" not in result, result
    assert result["outbound"] == []  # nothing tried to leave the machine
    assert result["status"] == "InService"
    assert result["capture"] == f"s3://{twin_bucket}/sdk_capture"
    assert result["models"] == [endpoint]
    assert result["probabilities"] == pytest.approx(expected)
    if kind == "v2":  # AsyncPredictor: InvokeEndpointAsync, then the SDK's own S3 polling
        assert result["async_probabilities"] == pytest.approx(expected)


def test_the_guard_sees_a_call_that_would_leave(
    endpoint: str, twin_bucket: str, tmp_path: Path
) -> None:
    """The same lookup without the twin's endpoint URLs goes for AWS: the guard must see it."""
    image = tmp_path / "image.png"
    image.write_bytes(png())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env["AWS_MAX_ATTEMPTS"] = "1"  # one refused try is enough
    result = _sdk("v3", endpoint, image, twin_bucket, env)
    assert "error" in result
    assert any(host.endswith("amazonaws.com") for host in result["outbound"]), result
