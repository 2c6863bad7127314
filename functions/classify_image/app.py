"""ClassifyImageFunction: send the image to the SageMaker endpoint and read its probabilities.

Input event: ``{"s3_bucket", "s3_key", "image_data": <base64 str>, ...}``; the endpoint is
``event["endpoint_name"]`` when given, else the ``ENDPOINT_NAME`` environment variable.
Output: the event with ``inferences`` (the probabilities in label order), ``label`` (the index of
the largest) and ``confidence`` (its value).

The endpoint is called through boto3's ``sagemaker-runtime`` client (no SageMaker SDK), so the
standard setting ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` can point it at a local endpoint.
Transient endpoint failures raise ``EndpointUnavailableError`` (the state machine retries it);
permanent ones raise ``EndpointError``.

Only the standard library and boto3 are used, so the folder deploys as it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import threading
from typing import Any

logger = logging.getLogger(__name__)

#: InvokeEndpoint accepts request bodies of at most 6 MB.
INVOKE_ENDPOINT_MAX_BYTES = 6 * 1024 * 1024
#: How far the probabilities may sum away from 1 (rounded outputs such as [0.93, 0.06]).
SUM_TOLERANCE = 0.02

# SageMaker Runtime error codes that say "try again later" rather than "this will never work".
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
        "ModelNotReadyException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class InvalidEventError(ValueError):
    """The event does not have the shape this function needs."""


class ConfigurationError(RuntimeError):
    """No endpoint name in the event or in ``ENDPOINT_NAME``."""


class ImageTooLargeError(ValueError):
    """The image is over the 6 MB InvokeEndpoint limit."""


class EndpointError(RuntimeError):
    """The endpoint refused the request or failed on it (retrying will not help)."""


class EndpointUnavailableError(EndpointError):
    """The endpoint is throttled, not ready or unreachable (retrying may help)."""


class MalformedInferenceError(ValueError):
    """The endpoint answered with something that is not a list of class probabilities."""


# --------------------------------------------------------------------------------------------
# event and settings


def decode_image(event: Any) -> bytes:
    """Return the image bytes from ``event["image_data"]`` or raise ``InvalidEventError``."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    if "image_data" not in event:
        raise InvalidEventError("event is missing image_data (run SerializeImage first)")
    text = event["image_data"]
    if not isinstance(text, str) or not text:
        raise InvalidEventError("image_data must be a non-empty base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError("image_data is not valid base64") from None


def endpoint_name(event: dict[str, Any], environ: Any = None) -> str:
    """The endpoint to call: ``event["endpoint_name"]``, else env ``ENDPOINT_NAME``."""
    env = os.environ if environ is None else environ
    name = event.get("endpoint_name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise InvalidEventError("endpoint_name must be a non-empty string")
        return name
    name = env.get("ENDPOINT_NAME", "").strip()
    if not name:
        raise ConfigurationError(
            "no endpoint: set ENDPOINT_NAME or pass endpoint_name in the event"
        )
    return str(name)


def content_type_for(data: bytes) -> str:
    """The request ``ContentType`` for an image, from its magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return "application/x-image"


# --------------------------------------------------------------------------------------------
# the endpoint


def parse_probabilities(body: bytes) -> list[float]:
    """Parse and check the endpoint's answer: a JSON list of >= 2 probabilities summing to ~1."""
    try:
        values = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedInferenceError(
            f"endpoint answer is not JSON (starts with {body[:40]!r})"
        ) from None
    return check_probabilities(values, "endpoint answer")


def check_probabilities(values: Any, what: str) -> list[float]:
    """Return ``values`` as floats when it is a list of >= 2 probabilities summing to ~1."""
    if not isinstance(values, list):
        raise MalformedInferenceError(f"{what} must be a JSON list, got {type(values).__name__}")
    if len(values) < 2:
        raise MalformedInferenceError(f"{what} must hold at least 2 class probabilities")
    probabilities: list[float] = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedInferenceError(f"{what}[{index}] is not a number: {value!r}")
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise MalformedInferenceError(f"{what}[{index}] = {number} is not in [0, 1]")
        probabilities.append(number)
    total = math.fsum(probabilities)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise MalformedInferenceError(f"{what} sums to {total:.4f}, not 1")
    return probabilities


def invoke(runtime: Any, name: str, data: bytes) -> bytes:
    """Call the endpoint with the image; return the raw answer body.

    Raises ``ImageTooLargeError`` before calling when ``data`` is over 6 MB,
    ``EndpointUnavailableError`` on transient failures and ``EndpointError`` otherwise.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if len(data) > INVOKE_ENDPOINT_MAX_BYTES:
        raise ImageTooLargeError(
            f"image is {len(data)} bytes, over the {INVOKE_ENDPOINT_MAX_BYTES}-byte "
            "InvokeEndpoint limit"
        )
    try:
        response = runtime.invoke_endpoint(
            EndpointName=name,
            ContentType=content_type_for(data),
            Accept="application/json",
            Body=data,
        )
        body: bytes = response["Body"].read()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", "")).strip() or str(exc)
        status = exc.response.get("OriginalStatusCode")
        detail = f"endpoint {name!r} failed: {code}: {message}"
        if status is not None:
            detail += f" (model status {status})"
        if code in _TRANSIENT_CODES or status in (429, 503):
            raise EndpointUnavailableError(detail) from None
        raise EndpointError(detail) from None
    except (BotoConnectionError, ReadTimeoutError) as exc:
        raise EndpointUnavailableError(f"endpoint {name!r} unreachable: {exc}") from None
    except BotoCoreError as exc:
        raise EndpointError(f"endpoint {name!r} call failed: {exc}") from None
    return body


def classify(runtime: Any, name: str, data: bytes) -> tuple[list[float], int, float]:
    """Classify one image; return ``(probabilities, label, confidence)``."""
    probabilities = parse_probabilities(invoke(runtime, name, data))
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    return probabilities, label, probabilities[label]


# --------------------------------------------------------------------------------------------
# handler

_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def runtime_client() -> Any:
    """The module's SageMaker Runtime client, created on first use (standard boto3 settings)."""
    with _client_lock:
        if "sagemaker-runtime" not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=70,  # the endpoint itself gives up after 60 s
                retries={"mode": "standard", "max_attempts": 3},
            )
            _clients["sagemaker-runtime"] = boto3.session.Session().client(
                "sagemaker-runtime", config=config
            )
        return _clients["sagemaker-runtime"]


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: the serialized image -> the event plus inferences, label, confidence."""
    data = decode_image(event)
    name = endpoint_name(event)
    probabilities, label, confidence = classify(runtime_client(), name, data)
    logger.info(
        "classified image",
        extra={
            "s3_bucket": event.get("s3_bucket"),
            "s3_key": event.get("s3_key"),
            "endpoint_name": name,
            "label": label,
            "confidence": confidence,
        },
    )
    return {**event, "inferences": probabilities, "label": label, "confidence": confidence}
