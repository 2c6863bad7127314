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
from sam_helpers import ASCII_GIF, project_app, queue_endpoint_results, read_event

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


def test_the_sample_event_works(classify: ModuleType, moto: None) -> None:
    event = read_event("classify_image.json")
    image = base64.b64decode(event["image_data"])
    client = classify.runtime_client()  # the client of a full attempt (65 s read timeout)
    context = LambdaContext(function_name="scones-ClassifyImage", timeout_s=80)
    with Stubber(client) as stub:
        stub_answer(stub, b"[0.97, 0.03]", "image/png", image)
        result = classify.lambda_handler(event, context)
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


# ------------------------------------------------------------------------------ time budget


def test_the_function_timeout_holds_one_full_attempt(classify: ModuleType) -> None:
    timeout = project_app().functions["ClassifyImageFunction"].timeout
    one_attempt = classify.CONNECT_TIMEOUT_S + classify.READ_TIMEOUT_S
    assert timeout == classify.FUNCTION_TIMEOUT_S == 80
    assert timeout >= one_attempt + classify.DEADLINE_MARGIN_S  # 80 >= 5 + 65 + 5
    assert classify.read_timeout_within(timeout) == classify.READ_TIMEOUT_S
    # SageMaker fails a real-time invocation after 60 s: its error comes before our timeout
    assert classify.READ_TIMEOUT_S > classify.SAGEMAKER_INVOKE_LIMIT_S


@pytest.mark.parametrize(
    ("remaining_s", "read_s"),
    [
        (300, 65),
        (80, 65),
        (75, 65),
        (74.9, 60),
        (30, 20),
        (20, 10),
        (19.9, None),
        (0, None),
        (-3, None),
    ],
)
def test_read_timeout_within(classify: ModuleType, remaining_s: float, read_s: int | None) -> None:
    assert classify.read_timeout_within(remaining_s) == read_s


class FakeClock:
    """Simulated time: the client's failures and the pauses advance it."""

    def __init__(self, timeout_s: float) -> None:
        self.now = 0.0
        self.timeout_s = timeout_s
        self.attempts: list[int] = []

    def remaining_s(self) -> float:
        return self.timeout_s - self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _failing_client(clock: FakeClock, kind: str, read_s: int) -> Any:
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    url = "https://runtime.sagemaker.us-east-1.amazonaws.com"

    class Client:
        def invoke_endpoint(self, **_: Any) -> Any:
            clock.attempts.append(read_s)
            if kind == "slow":  # connects, then nothing within the read timeout
                clock.now += 0.1 + read_s
                raise ReadTimeoutError(endpoint_url=url)
            if kind == "unreachable":
                clock.now += 5  # CONNECT_TIMEOUT_S
                raise ConnectTimeoutError(endpoint_url=url)
            clock.now += 0.05
            error = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}
            raise ClientError(error, "InvokeEndpoint")  # type: ignore[arg-type]

    return Client()


@pytest.mark.parametrize("kind", ["slow", "unreachable", "throttled"])
@pytest.mark.parametrize("timeout_s", [20, 30, 45, 75, 80, 140, 300])
def test_a_failing_endpoint_ends_in_its_named_error_before_the_lambda_timeout(
    classify: ModuleType, kind: str, timeout_s: int
) -> None:
    clock = FakeClock(timeout_s)
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 0.999)
    with pytest.raises(classify.EndpointUnavailableError) as caught:
        classify.invoke_within(
            budget, ENDPOINT, b"\x89PNG", lambda read_s: _failing_client(clock, kind, read_s)
        )
    assert f"{len(clock.attempts)} attempt(s)" in str(caught.value)
    assert 1 <= len(clock.attempts) <= classify.MAX_ATTEMPTS
    # sum of (connect + read + pause) over the attempts never reaches the Lambda timeout
    assert clock.now <= timeout_s - classify.DEADLINE_MARGIN_S, (kind, clock.attempts, clock.now)
    assert all(classify.MIN_READ_TIMEOUT_S <= r <= classify.READ_TIMEOUT_S for r in clock.attempts)
    if kind == "throttled" and timeout_s >= 30:  # fast failures are retried in the invocation
        assert len(clock.attempts) == classify.MAX_ATTEMPTS
    if kind == "slow" and timeout_s == 80:  # one full attempt; the state machine retries
        assert clock.attempts == [65]


def test_with_too_little_time_the_endpoint_is_not_called(
    classify: ModuleType, aws_env: None
) -> None:
    context = LambdaContext(function_name="f", timeout_s=12)
    event = event_for(ASCII_GIF, endpoint_name=ENDPOINT)
    with pytest.raises(classify.ConfigurationError, match="Timeout to at least 75 s"):
        classify.lambda_handler(event, context)


def test_the_budget_comes_from_the_lambda_context(classify: ModuleType) -> None:
    budget = classify.CallBudget.from_context(LambdaContext(function_name="f", timeout_s=80))
    assert 79 < budget.remaining_s() <= 80
    fallback = classify.CallBudget.from_context(None)  # no context: the template's timeout
    assert classify.FUNCTION_TIMEOUT_S - 1 < fallback.remaining_s() <= classify.FUNCTION_TIMEOUT_S


def test_a_read_timeout_is_endpoint_unavailable(classify: ModuleType, aws_env: None) -> None:
    with socket.socket() as server:  # accepts the connection (backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        runtime = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=1),
        )
        with pytest.raises(classify.EndpointUnavailableError, match="did not answer in time"):
            classify.invoke(runtime, ENDPOINT, b"\x89PNG\r\n\x1a\n")


def test_clients_differ_only_by_read_timeout_and_never_retry_themselves(
    classify: ModuleType, aws_env: None
) -> None:
    full, short = classify.runtime_client(), classify.runtime_client(20)
    assert full is classify.runtime_client(65) and short is not full
    assert (full.meta.config.read_timeout, short.meta.config.read_timeout) == (65, 20)
    assert full.meta.config.connect_timeout == classify.CONNECT_TIMEOUT_S
    assert full.meta.config.retries["total_max_attempts"] == 1
