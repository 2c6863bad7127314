"""ClassifyImageFunction at its limits: the 6 MiB request, base64 with stray characters, every
retryable error code and status, the answers' sum tolerance and the messages a user reads (what
``make mutation`` found untested; docs/testing.md). The retry plan, the client's settings and
the log fields are in test_classify_retry_limits.py. botocore's Stubber and in-process fake
clients: no network.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from limits_helpers import ENDPOINT, PNG_MAGIC, answer


@pytest.fixture
def runtime(aws_env: None) -> Any:
    return boto3.client("sagemaker-runtime", region_name="us-east-1")


# ------------------------------------------------------------------------------ the event


@pytest.mark.parametrize(
    "text",
    [
        "iVBO!Rw0KGgo=",  # a stray character inside
        "iVBORw0KGgo=\n",  # a trailing newline
        "iVBORw0K Ggo=",  # a space
        "iVBORw0KGgo",  # padding missing
        "iVBORw0KGgo=x",  # data after the padding
    ],
)
def test_base64_with_stray_characters_is_refused(classify: ModuleType, text: str) -> None:
    with pytest.raises(classify.InvalidEventError) as caught:
        classify.decode_image({"image_data": text})
    assert str(caught.value) == "image_data is not valid base64"


def test_strict_base64_decodes(classify: ModuleType) -> None:
    assert classify.decode_image({"image_data": "iVBORw0KGgo="}) == PNG_MAGIC


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([], "event must be a JSON object, got list"),
        ({"s3_key": "k"}, "event is missing image_data (run SerializeImage first)"),
        ({"image_data": " "}, "image_data must be a non-empty base64 string"),
        ({"image_data": None}, "image_data must be a non-empty base64 string"),
    ],
)
def test_event_messages(classify: ModuleType, event: Any, message: str) -> None:
    with pytest.raises(classify.InvalidEventError) as caught:
        classify.decode_image(event)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("event", "environ", "expected"),
    [
        ({}, {"ENDPOINT_NAME": "from-env"}, "from-env"),
        ({}, {"ENDPOINT_NAME": "  padded  "}, "padded"),
        ({"endpoint_name": None}, {"ENDPOINT_NAME": "from-env"}, "from-env"),
        ({"endpoint_name": "from-event"}, {"ENDPOINT_NAME": "from-env"}, "from-event"),
        ({"endpoint_name": "from-event"}, {}, "from-event"),
    ],
)
def test_endpoint_name_from_a_given_environment(
    classify: ModuleType, event: dict[str, Any], environ: dict[str, str], expected: str
) -> None:
    assert classify.endpoint_name(event, environ) == expected


@pytest.mark.parametrize("environ", [{}, {"ENDPOINT_NAME": ""}, {"ENDPOINT_NAME": "   "}])
def test_no_endpoint_name_is_a_configuration_error(
    classify: ModuleType, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "in-the-process-env")  # a given environment wins
    with pytest.raises(classify.ConfigurationError) as caught:
        classify.endpoint_name({}, environ)
    assert str(caught.value) == "no endpoint: set ENDPOINT_NAME or pass endpoint_name in the event"


def test_a_blank_event_endpoint_name_is_refused(classify: ModuleType) -> None:
    with pytest.raises(classify.InvalidEventError) as caught:
        classify.endpoint_name({"endpoint_name": " "}, {"ENDPOINT_NAME": "from-env"})
    assert str(caught.value) == "endpoint_name must be a non-empty string"


# ------------------------------------------------------------------------------ 6 MiB request


def test_an_image_of_exactly_6_mib_is_sent(classify: ModuleType, runtime: Any) -> None:
    image = PNG_MAGIC + b"\x00" * (6 * 1024 * 1024 - len(PNG_MAGIC))
    assert len(image) == classify.INVOKE_ENDPOINT_MAX_BYTES == 6 * 1024 * 1024
    with Stubber(runtime) as stub:
        answer(stub, b"[0.25, 0.75]", image)
        assert classify.invoke(runtime, ENDPOINT, image) == b"[0.25, 0.75]"
        stub.assert_no_pending_responses()


def test_one_byte_over_6_mib_is_refused_before_calling(classify: ModuleType, runtime: Any) -> None:
    image = PNG_MAGIC + b"\x00" * (6 * 1024 * 1024 + 1 - len(PNG_MAGIC))
    # nothing queued: a call would fail differently
    with Stubber(runtime), pytest.raises(classify.ImageTooLargeError) as caught:
        classify.invoke(runtime, ENDPOINT, image)
    assert str(caught.value) == (
        "image is 6291457 bytes, over the 6291456-byte InvokeEndpoint limit"
    )


# ------------------------------------------------------------------------------ error codes


TRANSIENT = [
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalDependencyException",
    "ModelNotReadyException",
    "RequestTimeout",
    "RequestTimeoutException",
]


def client_error(runtime: Any, code: str, message: str, status: int, **fields: Any) -> Any:
    """A Stubber that answers the next InvokeEndpoint with this error."""
    stub = Stubber(runtime)
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        modeled_fields=fields,
    )
    return stub


@pytest.mark.parametrize("code", TRANSIENT)
def test_every_transient_code_is_endpoint_unavailable(
    classify: ModuleType, runtime: Any, code: str
) -> None:
    with (
        client_error(runtime, code, "try later", 400),
        pytest.raises(classify.EndpointUnavailableError) as caught,
    ):
        classify.invoke(runtime, ENDPOINT, PNG_MAGIC)
    assert str(caught.value) == f"endpoint {ENDPOINT!r} failed: {code}: try later"
    assert frozenset(TRANSIENT) == classify._TRANSIENT_CODES


@pytest.mark.parametrize(
    "code", ["ValidationError", "ModelError", "AccessDeniedException", "Unknown", "Throttling"]
)
def test_other_codes_are_permanent(classify: ModuleType, runtime: Any, code: str) -> None:
    with client_error(runtime, code, "no", 400), pytest.raises(classify.EndpointError) as caught:
        classify.invoke(runtime, ENDPOINT, PNG_MAGIC)
    assert type(caught.value) is classify.EndpointError
    assert str(caught.value) == f"endpoint {ENDPOINT!r} failed: {code}: no"


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (429, True),
        (503, True),
        (500, False),
        (502, False),
        (415, False),
        (428, False),
        (504, False),
    ],
)
def test_the_models_status_decides_for_model_errors(
    classify: ModuleType, runtime: Any, status: int, transient: bool
) -> None:
    with (
        client_error(runtime, "ModelError", "model said no", 424, OriginalStatusCode=status),
        pytest.raises(classify.EndpointError) as caught,
    ):
        classify.invoke(runtime, ENDPOINT, PNG_MAGIC)
    expected = classify.EndpointUnavailableError if transient else classify.EndpointError
    assert type(caught.value) is expected
    assert str(caught.value) == (
        f"endpoint {ENDPOINT!r} failed: ModelError: model said no (model status {status})"
    )


class Raising:
    """A client whose InvokeEndpoint raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def invoke_endpoint(self, **_: Any) -> Any:
        raise self.error


def test_an_error_without_code_or_message(classify: ModuleType) -> None:
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Message": "  "}}, "InvokeEndpoint")  # type: ignore[typeddict-item]
    with pytest.raises(classify.EndpointError) as caught:
        classify.invoke(Raising(error), ENDPOINT, PNG_MAGIC)
    assert type(caught.value) is classify.EndpointError
    assert str(caught.value) == f"endpoint {ENDPOINT!r} failed: Unknown: {error}"


def test_an_error_without_a_message_shows_the_whole_error(classify: ModuleType) -> None:
    from botocore.exceptions import ClientError

    error = ClientError({"Error": {"Code": "ValidationError"}}, "InvokeEndpoint")  # type: ignore[typeddict-item]
    with pytest.raises(classify.EndpointError) as caught:
        classify.invoke(Raising(error), ENDPOINT, PNG_MAGIC)
    assert str(caught.value) == f"endpoint {ENDPOINT!r} failed: ValidationError: {error}"


def test_a_status_without_a_code_decides_alone(classify: ModuleType) -> None:
    from botocore.exceptions import ClientError

    error = ClientError({"OriginalStatusCode": 429}, "InvokeEndpoint")  # type: ignore[typeddict-unknown-key]
    with pytest.raises(classify.EndpointUnavailableError) as caught:
        classify.invoke(Raising(error), ENDPOINT, PNG_MAGIC)
    assert str(caught.value) == (
        f"endpoint {ENDPOINT!r} failed: Unknown: {error} (model status 429)"
    )


def test_botocore_failures_are_named(classify: ModuleType) -> None:
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        HTTPClientError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    url = "https://runtime.sagemaker.us-east-1.amazonaws.com"
    cases = [
        (ReadTimeoutError(endpoint_url=url), "EndpointUnavailableError", "did not answer in time"),
        (ConnectTimeoutError(endpoint_url=url), "EndpointUnavailableError", "unreachable"),
        (EndpointConnectionError(endpoint_url=url), "EndpointUnavailableError", "unreachable"),
        (HTTPClientError(error="reset"), "EndpointUnavailableError", "unreachable"),
        (NoCredentialsError(), "EndpointError", "call failed"),
    ]
    for error, name, what in cases:
        with pytest.raises(classify.EndpointError) as caught:
            classify.invoke(Raising(error), ENDPOINT, PNG_MAGIC)
        assert type(caught.value).__name__ == name
        assert str(caught.value) == f"endpoint {ENDPOINT!r} {what}: {error}"


# ------------------------------------------------------------------------------ answers


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        (b"[0.4901, 0.49]", True),  # sums to 0.9801: inside the 0.02 tolerance
        (b"[0.4899, 0.49]", False),  # 0.9799: just outside
        (b"[0.5099, 0.51]", True),  # 1.0199
        (b"[0.5101, 0.51]", False),  # 1.0201
        (b"[0.0, 1.0]", True),  # both ends of [0, 1]
        (b"[1, 0]", True),
    ],
)
def test_the_sum_tolerance_on_both_sides(classify: ModuleType, body: bytes, accepted: bool) -> None:
    assert classify.SUM_TOLERANCE == 0.02
    if accepted:
        assert classify.parse_probabilities(body) == [float(v) for v in body[1:-1].split(b",")]
    else:
        with pytest.raises(classify.MalformedInferenceError, match="^endpoint answer sums to "):
            classify.parse_probabilities(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "endpoint answer is not JSON (starts with b'nope')"),
        (b"x" * 50, f"endpoint answer is not JSON (starts with {(b'x' * 40)!r})"),
        (b"[0.5, 1.5]", "endpoint answer[1] = 1.5 is not in [0, 1]"),
        (b"[1.0000001, 0]", "endpoint answer[0] = 1.0000001 is not in [0, 1]"),
        (b"[0.5]", "endpoint answer must hold at least 2 class probabilities"),
        (b"[0.3, 0.3]", "endpoint answer sums to 0.6000, not 1"),
    ],
)
def test_answer_messages(classify: ModuleType, body: bytes, message: str) -> None:
    with pytest.raises(classify.MalformedInferenceError) as caught:
        classify.parse_probabilities(body)
    assert str(caught.value) == message
