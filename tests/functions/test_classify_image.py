"""ClassifyImageFunction: moto's sagemaker-runtime for the happy path, botocore's Stubber for the
exact request and the endpoint's error codes, a closed loopback port for connection errors.

moto 5.2.5's sagemaker-runtime mock decodes the request body as UTF-8 and fails on binary
images such as PNG, so the moto tests send a real 1x1 GIF whose bytes happen to be ASCII; the
PNG request (ContentType image/png) is checked with the Stubber, which validates the call against
the service model.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from sam_helpers import ASCII_GIF, queue_endpoint_results, read_event

from scones.twin.lambda_runtime import LambdaContext

ENDPOINT = "scones-image-classifier"


def event_for(data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "s3_bucket": "b",
        "s3_key": "incoming/a.png",
        "image_data": base64.b64encode(data).decode(),
        "inferences": [],
        **extra,
    }


@pytest.fixture
def runtime(aws_env: None) -> Any:
    return boto3.client("sagemaker-runtime", region_name="us-east-1")


def stub_answer(stub: Stubber, body: bytes, content_type: str, image: bytes) -> None:
    import io

    from botocore.response import StreamingBody

    stub.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        {
            "EndpointName": ENDPOINT,
            "ContentType": content_type,
            "Accept": "application/json",
            "Body": image,
        },
    )


# ------------------------------------------------------------------------------ through moto


def test_classifies_through_moto_with_the_endpoint_from_env(
    lambda_context: LambdaContext, classify: ModuleType, moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    queue_endpoint_results("[0.2, 0.8]")
    event = event_for(ASCII_GIF)

    result = classify.lambda_handler(event, lambda_context)

    assert result["inferences"] == [0.2, 0.8]
    assert result["label"] == 1 and result["confidence"] == 0.8
    assert result["image_data"] == event["image_data"] and result["s3_key"] == event["s3_key"]


def test_malformed_answer_through_moto(
    lambda_context: LambdaContext, classify: ModuleType, moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    queue_endpoint_results("<html>oops</html>", content_type="text/html")
    with pytest.raises(classify.MalformedInferenceError, match="not JSON"):
        classify.lambda_handler(event_for(ASCII_GIF), lambda_context)


def test_the_sample_event_works(
    lambda_context: LambdaContext, classify: ModuleType, moto: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = read_event("classify_image.json")
    image = base64.b64decode(event["image_data"])
    client = classify.runtime_client()
    with Stubber(client) as stub:
        stub_answer(stub, b"[0.97, 0.03]", "image/png", image)
        result = classify.lambda_handler(event, lambda_context)
    assert result["label"] == 0 and result["confidence"] == 0.97


# ------------------------------------------------------------------------------ exact request


@pytest.mark.parametrize(
    ("image", "content_type"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"rest", "image/png"),
        (b"\xff\xd8\xff\xe0" + b"rest", "image/jpeg"),
        (ASCII_GIF, "application/x-image"),
        (b"BM" + b"\x00" * 30, "application/x-image"),
    ],
)
def test_content_type_comes_from_the_magic_bytes(
    classify: ModuleType, runtime: Any, image: bytes, content_type: str
) -> None:
    with Stubber(runtime) as stub:
        stub_answer(stub, b"[0.5, 0.25, 0.25]", content_type, image)
        probabilities, label, confidence = classify.classify(runtime, ENDPOINT, image)
        stub.assert_no_pending_responses()
    assert (probabilities, label, confidence) == ([0.5, 0.25, 0.25], 0, 0.5)


def test_endpoint_name_in_the_event_wins_over_env(
    classify: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "from-env")
    assert classify.endpoint_name({"endpoint_name": "from-event"}) == "from-event"
    assert classify.endpoint_name({}) == "from-env"


def test_env_is_read_at_call_time(classify: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "first")
    assert classify.endpoint_name({}) == "first"
    monkeypatch.setenv("ENDPOINT_NAME", "second")
    assert classify.endpoint_name({}) == "second"


# ------------------------------------------------------------------------------ bad events


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        ("text", "InvalidEventError", "must be a JSON object"),
        ({"s3_bucket": "b"}, "InvalidEventError", "missing image_data"),
        ({"image_data": ""}, "InvalidEventError", "non-empty base64"),
        ({"image_data": 12}, "InvalidEventError", "non-empty base64"),
        ({"image_data": "not base64!"}, "InvalidEventError", "not valid base64"),
        ({"image_data": "iVBORw0KGgo=", "endpoint_name": ""}, "InvalidEventError", "endpoint_name"),
        ({"image_data": "iVBORw0KGgo="}, "ConfigurationError", "set ENDPOINT_NAME"),
    ],
)
def test_bad_events(
    lambda_context: LambdaContext,
    classify: ModuleType,
    aws_env: None,
    event: Any,
    error: str,
    message: str,
) -> None:
    with pytest.raises(getattr(classify, error), match=message):
        classify.lambda_handler(event, lambda_context)


def test_images_over_6_mb_are_refused_before_calling(classify: ModuleType, runtime: Any) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (6 * 1024 * 1024)
    with Stubber(runtime) as stub:  # no responses queued: any call would fail the test
        with pytest.raises(classify.ImageTooLargeError, match="InvokeEndpoint limit"):
            classify.classify(runtime, ENDPOINT, big)
        stub.assert_no_pending_responses()


# ------------------------------------------------------------------------------ endpoint errors


@pytest.mark.parametrize(
    ("code", "status", "extra", "error"),
    [
        ("ValidationError", 400, {}, "EndpointError"),
        ("ModelError", 424, {"OriginalStatusCode": 415}, "EndpointError"),
        ("ModelError", 424, {"OriginalStatusCode": 503}, "EndpointUnavailableError"),
        ("AccessDeniedException", 400, {}, "EndpointError"),
        ("ThrottlingException", 400, {}, "EndpointUnavailableError"),
        ("ServiceUnavailable", 503, {}, "EndpointUnavailableError"),
        ("InternalFailure", 500, {}, "EndpointUnavailableError"),
        ("ModelNotReadyException", 429, {}, "EndpointUnavailableError"),
    ],
)
def test_endpoint_errors_are_named(
    classify: ModuleType, runtime: Any, code: str, status: int, extra: dict[str, Any], error: str
) -> None:
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code=code,
            service_message="it went wrong",
            http_status_code=status,
            modeled_fields=extra,
        )
        with pytest.raises(classify.EndpointError) as caught:
            classify.classify(runtime, ENDPOINT, b"\x89PNG\r\n\x1a\n")
    assert type(caught.value).__name__ == error
    assert code in str(caught.value) and ENDPOINT in str(caught.value)


def test_an_unreachable_endpoint_is_transient(classify: ModuleType, aws_env: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    runtime = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(classify.EndpointUnavailableError, match="unreachable"):
        classify.classify(runtime, ENDPOINT, b"\x89PNG\r\n\x1a\n")


# ------------------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"probabilities": [0.9, 0.1]}', "must be a JSON list"),
        (b"[1.0]", "at least 2"),
        (b"[]", "at least 2"),
        (b'["0.9", "0.1"]', "not a number"),
        (b"[true, false]", "not a number"),
        (b"[1.2, -0.2]", "not in \\[0, 1\\]"),
        (b"[NaN, 0.5]", "not in \\[0, 1\\]"),
        (b"[Infinity, 0]", "not in \\[0, 1\\]"),
        (b"[0.5, 0.2]", "sums to 0.7000"),
        (b"[0.9, 0.9]", "sums to 1.8000"),
    ],
)
def test_malformed_answers(classify: ModuleType, body: bytes, message: str) -> None:
    with pytest.raises(classify.MalformedInferenceError, match=message):
        classify.parse_probabilities(body)


def test_rounded_and_integer_answers_are_accepted(classify: ModuleType) -> None:
    assert classify.parse_probabilities(b"[0.93, 0.06]") == [0.93, 0.06]
    assert classify.parse_probabilities(b"[1, 0]") == [1.0, 0.0]


def test_answers_recorded_from_a_real_sagemaker_endpoint_are_accepted(
    classify: ModuleType, shared_capture: Path
) -> None:
    files = sorted(shared_capture.glob("*.jsonl"))
    assert files, f"no capture files under {shared_capture}"
    count = 0
    for path in files:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            output = record["captureData"]["endpointOutput"]["data"]
            probabilities = classify.parse_probabilities(output.encode())
            assert len(probabilities) == 2
            count += 1
    assert count >= 20
