"""The endpoint server's SageMaker control plane (Describe/List endpoints, endpoint configs and
models, DeleteEndpoint): answers parsed with botocore's own JSON parser and the ``sagemaker``
service model, so boto3 reads them as it reads AWS's, and checked against the model's required
members."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_endpoint_app import call, invoke, model_tar

from scones.endpoint import app as es
from scones.endpoint.model import RECHECK_SECONDS
from scones.endpoint.registry import endpoint_dir, register_endpoint
from scones.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> es.EndpointServer:
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri="s3://bkt/dc")
    return es.EndpointServer(settings, None)


@functools.cache
def _service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def control(app: es.EndpointServer, operation: str, request: Any) -> dict[str, Any]:
    """One request as boto3 sends it; the answer as botocore parses it."""
    from botocore.parsers import create_parser

    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    headers = {
        "x-amz-target": f"SageMaker.{operation}",
        "content-type": "application/x-amz-json-1.1",
    }
    status, answer_headers, answer = asyncio.run(call(app, "POST", "/", body, headers))
    model = _service_model()
    shape = (
        model.operation_model(operation).output_shape
        if operation in model.operation_names
        else None
    )
    parsed: dict[str, Any] = create_parser("json").parse(
        {"status_code": status, "headers": answer_headers, "body": answer}, shape
    )
    parsed["status"] = status
    if status == 200 and shape is not None:
        assert missing_required(shape, json.loads(answer)) == [], operation
    return parsed


def missing_required(shape: Any, value: Any, where: str = "") -> list[str]:
    """Members the service model marks required that ``value`` (raw JSON) lacks, recursively,
    and values whose JSON type does not fit the shape (timestamps must be epoch numbers)."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        found = [f"{where}.{m}" for m in shape.required_members if m not in value]
        for name, member in shape.members.items():
            if name in value:
                found += missing_required(member, value[name], f"{where}.{name}")
        return found
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: not a list"]
        return [
            p
            for i, v in enumerate(value)
            for p in missing_required(shape.member, v, f"{where}[{i}]")
        ]
    expected = {
        "timestamp": (int, float),
        "string": (str,),
        "integer": (int,),
        "float": (int, float),
        "boolean": (bool,),
        "map": (dict,),
    }.get(kind, (object,))
    return [] if isinstance(value, expected) else [f"{where}: {value!r} is not a {kind}"]


def test_describe_endpoint(app: es.EndpointServer) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = control(app, "DescribeEndpoint", {"EndpointName": "ep"})
    assert answer["status"] == 200
    assert answer["EndpointName"] == "ep"
    assert answer["EndpointArn"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"
    assert answer["EndpointStatus"] == "InService"
    assert answer["EndpointConfigName"] == "ep"
    variant = answer["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert (variant["CurrentInstanceCount"], variant["DesiredInstanceCount"]) == (1, 1)
    created = answer["CreationTime"]
    assert isinstance(created, datetime) and abs((created - before).total_seconds()) <= 60
    capture = answer["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == "s3://bkt/dc"
    assert (capture["EnableCapture"], capture["CaptureStatus"]) == (True, "Started")
    assert capture["CurrentSamplingPercentage"] == 100
    assert "AsyncInferenceConfig" not in answer


def test_describe_follows_the_registry(settings: Settings, tmp_path: Path) -> None:
    """Sampling, variant, no capture, another region, an async output path: as registered."""
    settings = replace(settings, region="eu-west-2")
    app = es.EndpointServer(settings, None)
    register_endpoint(
        settings,
        "Sampled",
        model_tar(tmp_path, "2"),
        capture_s3_uri="s3://bkt/dc",
        sampling_percentage=25,
        variant="Blue",
    )
    register_endpoint(settings, "plain", model_tar(tmp_path, "3"), capture_s3_uri=None)
    answer = control(app, "DescribeEndpoint", {"EndpointName": "Sampled"})
    assert answer["EndpointArn"] == "arn:aws:sagemaker:eu-west-2:123456789012:endpoint/sampled"
    assert answer["DataCaptureConfig"]["CurrentSamplingPercentage"] == 25
    assert answer["ProductionVariants"][0]["VariantName"] == "Blue"
    assert "DataCaptureConfig" not in control(app, "DescribeEndpoint", {"EndpointName": "plain"})
    path = endpoint_dir(settings, "plain") / "endpoint.json"
    data = json.loads(path.read_text())
    data["async_inference"] = {"s3_output_path": "s3://out/x", "s3_failure_path": "s3://out/f"}
    path.write_text(json.dumps(data))
    answer = control(app, "DescribeEndpoint", {"EndpointName": "plain"})
    assert answer["AsyncInferenceConfig"] == {
        "OutputConfig": {"S3OutputPath": "s3://out/x", "S3FailurePath": "s3://out/f"}
    }
    config = control(app, "DescribeEndpointConfig", {"EndpointConfigName": "plain"})
    assert config["AsyncInferenceConfig"]["OutputConfig"]["S3OutputPath"] == "s3://out/x"


def test_describe_endpoint_config(app: es.EndpointServer) -> None:
    answer = control(app, "DescribeEndpointConfig", {"EndpointConfigName": "ep"})
    assert answer["status"] == 200
    assert answer["EndpointConfigArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/ep"
    )
    variant = answer["ProductionVariants"][0]
    assert (variant["VariantName"], variant["ModelName"]) == ("AllTraffic", "ep")
    assert (variant["InitialInstanceCount"], variant["InstanceType"]) == (1, "ml.m5.large")
    capture = answer["DataCaptureConfig"]
    assert (capture["DestinationS3Uri"], capture["InitialSamplingPercentage"]) == (
        "s3://bkt/dc",
        100,
    )
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    missing = control(app, "DescribeEndpointConfig", {"EndpointConfigName": "nope"})
    assert missing["Error"] == {
        "Code": "ValidationException",
        "Message": 'Could not find endpoint configuration "arn:aws:sagemaker:us-east-1:'
        '123456789012:endpoint-config/nope".',
    }


def test_describe_model(app: es.EndpointServer, tmp_path: Path) -> None:
    answer = control(app, "DescribeModel", {"ModelName": "ep"})
    assert answer["status"] == 200
    assert answer["ModelArn"] == "arn:aws:sagemaker:us-east-1:123456789012:model/ep"
    container = answer["PrimaryContainer"]
    assert container["Image"].startswith(
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:"
    )
    assert container["ModelDataUrl"] == f"file://{(tmp_path / 'model-2.tar.gz').resolve()}"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert answer["ExecutionRoleArn"].startswith("arn:aws:iam::123456789012:role/")
    missing = control(app, "DescribeModel", {"ModelName": "nope"})
    assert missing["Error"]["Message"] == (
        'Could not find model "arn:aws:sagemaker:us-east-1:123456789012:model/nope".'
    )


def test_unknown_endpoint_is_the_validation_error_sagemaker_gives(app: es.EndpointServer) -> None:
    answer = control(app, "DescribeEndpoint", {"EndpointName": "nope"})
    assert answer["status"] == 400
    assert answer["Error"]["Code"] == "ValidationException"
    assert answer["Error"]["Message"] == (
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/nope".'
    )


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


@pytest.fixture
def three(app: es.EndpointServer, settings: Settings) -> es.EndpointServer:
    """Endpoints ep (oldest), blue-one, blue-two (newest), a minute apart (the control plane
    reads only ``endpoint.json``, so the two others are copies of ep's with another name)."""
    names = {"ep": "2026-01-01T00:00:00Z", "blue-one": "2026-01-01T00:01:00Z"}
    names["blue-two"] = "2026-01-01T00:02:00Z"
    for name, created in names.items():
        if name != "ep":
            folder = endpoint_dir(settings, name)
            folder.mkdir(parents=True)
            source = endpoint_dir(settings, "ep") / "endpoint.json"
            data = {**json.loads(source.read_text()), "name": name}
            (folder / "endpoint.json").write_text(json.dumps(data))
        path = endpoint_dir(settings, name) / "endpoint.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "created": created}))
    return app


def _names(answer: dict[str, Any], key: str, field: str) -> list[str]:
    return [e[field] for e in answer[key]]


def test_list_endpoints_sorts_filters_and_pages(three: es.EndpointServer) -> None:
    app = three
    answer = control(app, "ListEndpoints", {})
    assert _names(answer, "Endpoints", "EndpointName") == ["blue-two", "blue-one", "ep"]
    assert {e["EndpointStatus"] for e in answer["Endpoints"]} == {"InService"}
    assert "NextToken" not in answer
    by_name = control(app, "ListEndpoints", {"SortBy": "Name", "SortOrder": "Ascending"})
    assert _names(by_name, "Endpoints", "EndpointName") == ["blue-one", "blue-two", "ep"]
    blue = control(app, "ListEndpoints", {"NameContains": "BLUE"})
    assert _names(blue, "Endpoints", "EndpointName") == ["blue-two", "blue-one"]
    pages, token = [], None
    while True:
        request: dict[str, Any] = {"MaxResults": 1, "SortOrder": "Ascending"}
        if token:
            request["NextToken"] = token
        answer = control(app, "ListEndpoints", request)
        pages.append(_names(answer, "Endpoints", "EndpointName"))
        token = answer.get("NextToken")
        if not token:
            break
    assert pages == [["ep"], ["blue-one"], ["blue-two"]]
    after = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    recent = control(app, "ListEndpoints", {"CreationTimeAfter": after})
    assert _names(recent, "Endpoints", "EndpointName") == ["blue-two", "blue-one"]
    assert control(app, "ListEndpoints", {"StatusEquals": "Failed"})["Endpoints"] == []


@pytest.mark.parametrize(
    "request_body",
    [
        {"SortBy": "Size"},
        {"SortOrder": "Up"},
        {"MaxResults": 0},
        {"MaxResults": 101},
        {"NextToken": "??"},
    ],
)
def test_list_endpoints_refuses_bad_arguments(app: es.EndpointServer, request_body: Any) -> None:
    answer = control(app, "ListEndpoints", request_body)
    assert answer["status"] == 400 and answer["Error"]["Code"] == "ValidationException"


def test_list_models_and_endpoint_configs(three: es.EndpointServer) -> None:
    models = control(three, "ListModels", {"SortBy": "Name", "SortOrder": "Ascending"})
    assert _names(models, "Models", "ModelName") == ["blue-one", "blue-two", "ep"]
    assert models["Models"][0]["ModelArn"].endswith(":model/blue-one")
    configs = control(three, "ListEndpointConfigs", {"NameContains": "two"})
    assert _names(configs, "EndpointConfigs", "EndpointConfigName") == ["blue-two"]
    assert control(three, "ListModels", {"SortBy": "Status"})["Error"]["Code"] == (
        "ValidationException"
    )


@pytest.mark.parametrize(
    ("operation", "request_body", "code"),
    [
        ("CreateEndpoint", {"EndpointName": "x"}, "UnknownOperationException"),
        ("UpdateEndpoint", {"EndpointName": "ep"}, "UnknownOperationException"),
        ("NoSuchOperation", {}, "UnknownOperationException"),
        ("DescribeEndpoint", b"not json", "SerializationException"),
        ("DescribeEndpoint", [], "SerializationException"),
        ("DescribeEndpoint", {"EndpointName": "../../etc"}, "ValidationException"),
        ("DescribeEndpoint", {}, "ValidationException"),
        ("DescribeModel", {"ModelName": 7}, "ValidationException"),
    ],
)
def test_what_the_twin_does_not_answer(
    app: es.EndpointServer, operation: str, request_body: Any, code: str
) -> None:
    answer = control(app, operation, request_body)
    assert answer["status"] == 400 and answer["Error"]["Code"] == code
    if code == "UnknownOperationException":
        assert (
            "DescribeEndpoint, DescribeEndpointConfig, DescribeModel" in answer["Error"]["Message"]
        )


def test_a_request_without_target_is_a_json_error(app: es.EndpointServer) -> None:
    status, headers, body = asyncio.run(call(app, "POST", "/", b"{}", {}))
    assert (status, headers["content-type"]) == (400, "application/x-amz-json-1.1")
    assert json.loads(body)["__type"] == "UnknownOperationException"
