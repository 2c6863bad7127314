"""ClassifyImageFunction: send the image to the SageMaker endpoint and read its probabilities.

Input event: ``{"s3_bucket", "s3_key", "image_data": <base64 str>, ...}``; the endpoint is
``event["endpoint_name"]`` when given, else the ``ENDPOINT_NAME`` environment variable.
Output: the event with ``inferences`` (the probabilities in label order), ``label`` (the index of
the largest) and ``confidence`` (its value).

The endpoint is called through boto3's ``sagemaker-runtime`` client (no SageMaker SDK), so the
standard setting ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` can point it at a local endpoint.
Transient endpoint failures raise ``EndpointUnavailableError`` (the state machine retries it);
permanent ones raise ``EndpointError``.

The errors it shares with the other functions and the probability check come from the
``CommonLayer`` (``functions/common/scones_common.py``); otherwise only the standard library
and boto3 are used, so nothing needs installing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from typing import Any

from scones_common import (
    ConfigurationError,
    InvalidEventError,
    MalformedInferenceError,
    check_probabilities,
    event_object,
    text_field,
    top_class,
)

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


class ImageTooLargeError(ValueError):
    """The image is over the 6 MB InvokeEndpoint limit."""


class EndpointError(RuntimeError):
    """The endpoint refused the request or failed on it (retrying will not help)."""


class EndpointUnavailableError(EndpointError):
    """The endpoint is throttled, not ready or unreachable (retrying may help)."""


# --------------------------------------------------------------------------------------------
# event and settings


def decode_image(event: Any) -> bytes:
    """Return the image bytes from ``event["image_data"]`` or raise ``InvalidEventError``."""
    event = event_object(event, "image_data", hint=" (run SerializeImage first)")
    text = text_field(event["image_data"], "image_data", "base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError("image_data is not valid base64") from None


def endpoint_name(event: dict[str, Any], environ: Any = None) -> str:
    """The endpoint to call: ``event["endpoint_name"]``, else env ``ENDPOINT_NAME``."""
    env = os.environ if environ is None else environ
    name = event.get("endpoint_name")
    if name is not None:
        return text_field(name, "endpoint_name")
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
    return check_probabilities(values, "endpoint answer", minimum=2, sum_tolerance=SUM_TOLERANCE)


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
    label, confidence = top_class(probabilities)
    return probabilities, label, confidence


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
