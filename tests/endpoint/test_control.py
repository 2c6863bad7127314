"""The endpoint server's SageMaker control-plane subset (DescribeEndpoint, DeleteEndpoint,
ListEndpoints): answers parsed with botocore's own JSON parser and the ``sagemaker`` service model,
so boto3 reads them as it reads AWS's."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_endpoint_app import call, invoke, model_tar

from scones.endpoint import app as es
from scones.endpoint.model import RECHECK_SECONDS
from scones.endpoint.registry import register_endpoint
from scones.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> es.EndpointServer:
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri="s3://bkt/dc")
    return es.EndpointServer(settings, None)


def control(app: es.EndpointServer, operation: str, request: Any) -> dict[str, Any]:
    """One request as boto3 sends it; the answer as botocore parses it."""
    import botocore.session
    from botocore.parsers import create_parser

    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    headers = {
        "x-amz-target": f"SageMaker.{operation}",
        "content-type": "application/x-amz-json-1.1",
    }
    status, answer_headers, answer = asyncio.run(call(app, "POST", "/", body, headers))
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = (
        model.operation_model(operation).output_shape
        if operation in model.operation_names
        else None
    )
    parsed: dict[str, Any] = create_parser("json").parse(
        {"status_code": status, "headers": answer_headers, "body": answer}, shape
    )
    parsed["status"] = status
    return parsed


def test_describe_endpoint(app: es.EndpointServer) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = control(app, "DescribeEndpoint", {"EndpointName": "ep"})
    assert answer["status"] == 200
    assert answer["EndpointName"] == "ep"
    assert answer["EndpointArn"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"
    assert answer["EndpointStatus"] == "InService"
    assert answer["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    created = answer["CreationTime"]
    assert isinstance(created, datetime) and abs((created - before).total_seconds()) <= 60
    assert answer["DataCaptureConfig"]["DestinationS3Uri"] == "s3://bkt/dc"


def test_unknown_endpoint_is_the_validation_error_sagemaker_gives(app: es.EndpointServer) -> None:
    answer = control(app, "DescribeEndpoint", {"EndpointName": "nope"})
    assert answer["status"] == 400
    assert answer["Error"]["Code"] == "ValidationException"
    assert answer["Error"]["Message"].startswith("Could not find endpoint")


def test_delete_endpoint_stops_serving_it(
    app: es.EndpointServer, settings: Settings, tmp_path: Path
) -> None:
    assert invoke(app, b"1")[0] == 200
    assert control(app, "DeleteEndpoint", {"EndpointName": "ep"})["status"] == 200
    app.endpoints.loaded["ep"].checked -= RECHECK_SECONDS  # within a second, as the worker looks
    status, headers, _ = invoke(app, b"1")
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationError")
    again = control(app, "DeleteEndpoint", {"EndpointName": "ep"})
    assert again["Error"]["Code"] == "ValidationException"
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri=None)  # back
    assert invoke(app, b"1")[0] == 200


def test_list_endpoints(app: es.EndpointServer, settings: Settings, tmp_path: Path) -> None:
    register_endpoint(settings, "second", model_tar(tmp_path, "3"), capture_s3_uri=None)
    answer = control(app, "ListEndpoints", {})
    assert [e["EndpointName"] for e in answer["Endpoints"]] == ["ep", "second"]
    assert {e["EndpointStatus"] for e in answer["Endpoints"]} == {"InService"}


@pytest.mark.parametrize(
    ("operation", "request_body", "code"),
    [
        ("CreateEndpoint", {"EndpointName": "x"}, "UnknownOperationException"),
        ("DescribeEndpoint", b"not json", "SerializationException"),
        ("DescribeEndpoint", [], "SerializationException"),
        ("DescribeEndpoint", {"EndpointName": "../../etc"}, "ValidationException"),
        ("DescribeEndpoint", {}, "ValidationException"),
    ],
)
def test_what_the_twin_does_not_answer(
    app: es.EndpointServer, operation: str, request_body: Any, code: str
) -> None:
    answer = control(app, operation, request_body)
    assert answer["status"] == 400 and answer["Error"]["Code"] == code
