"""ClassifyImageFunction: send the image to the SageMaker endpoint and read its probabilities.

Input event: ``{"s3_bucket", "s3_key", "image_data": <base64 str>, ...}``; the endpoint is
``event["endpoint_name"]`` when given, else the ``ENDPOINT_NAME`` environment variable.
Output: the event with ``inferences`` (the probabilities in label order), ``label`` (the index of
the largest) and ``confidence`` (its value).

The endpoint is called through boto3's ``sagemaker-runtime`` client (no SageMaker SDK), so the
standard setting ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` can point it at a local endpoint.
Transient endpoint failures raise ``EndpointUnavailableError`` (the state machine retries it);
permanent ones raise ``EndpointError``.

Every call fits the function's own time: the attempts, their timeouts and the pauses between them
are derived from the Lambda context's remaining time (``CallBudget``), so a slow or unreachable
endpoint ends in ``EndpointUnavailableError``, never in a Lambda timeout (see ``docs/sam.md``).

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
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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

# Time budget of one invocation. SageMaker gives a real-time endpoint's container 60 s to answer
# InvokeEndpoint, then fails the call itself. One attempt costs at most
# CONNECT_TIMEOUT_S + READ_TIMEOUT_S = 5 + 65 = 70 s (the read timeout is a little over SageMaker's
# 60 s, so SageMaker's own timeout error arrives before ours). An attempt starts only when
# connect + read + DEADLINE_MARGIN_S fit in the time the function has left, its read timeout cut
# to fit (in READ_TIMEOUT_STEP_S steps, never below MIN_READ_TIMEOUT_S), so every attempt, and
# the pause before it, ends at least DEADLINE_MARGIN_S before the Lambda timeout. Hence:
#   sum over attempts of (connect + read + pause) <= function timeout - DEADLINE_MARGIN_S
# and the template's Timeout of 80 s >= 5 + 65 + 5 = 75 s gives the first attempt the full 65 s.
# A second and third attempt (MAX_ATTEMPTS) happen only after failures fast enough to leave room:
# throttling or a 503 is retried here; a 65 s read timeout is not (the state machine's Retry on
# EndpointUnavailableError takes over, with a fresh 80 s).
#: SageMaker's own limit for a real-time endpoint to answer InvokeEndpoint.
SAGEMAKER_INVOKE_LIMIT_S = 60
#: TCP connect timeout of one attempt.
CONNECT_TIMEOUT_S = 5
#: Longest read timeout of one attempt: over SageMaker's 60 s, so its error arrives first.
READ_TIMEOUT_S = 65
#: Shortest read timeout worth an attempt (a healthy endpoint answers in well under a second).
MIN_READ_TIMEOUT_S = 10
#: Read timeouts are cut to fit in steps of this size (a handful of cached clients at most).
READ_TIMEOUT_STEP_S = 5
#: Kept back from the Lambda deadline for the error, the log line and the response.
DEADLINE_MARGIN_S = 5
#: Attempts per invocation, at most (each only when it fits the remaining time).
MAX_ATTEMPTS = 3
#: Pause before attempt n (n >= 2): up to min(cap, base * 2 ** (n - 2)) s, full jitter.
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 2.0
#: The function's Timeout in template.yaml; the budget when no Lambda context tells the time left.
FUNCTION_TIMEOUT_S = 80

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
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ReadTimeoutError
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
    except ReadTimeoutError as exc:
        raise EndpointUnavailableError(f"endpoint {name!r} did not answer in time: {exc}") from None
    except (BotoConnectionError, HTTPClientError) as exc:  # refused, reset, connect timeout
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
# the time budget (the arithmetic is next to the constants at the top)


def read_timeout_within(remaining_s: float) -> int | None:
    """The read timeout an attempt may use with ``remaining_s`` seconds left, or None.

    ``CONNECT_TIMEOUT_S + read + DEADLINE_MARGIN_S <= remaining_s``, with ``read`` at most
    ``READ_TIMEOUT_S``, rounded down to a multiple of ``READ_TIMEOUT_STEP_S``, and None when
    that leaves less than ``MIN_READ_TIMEOUT_S``.
    """
    room = remaining_s - CONNECT_TIMEOUT_S - DEADLINE_MARGIN_S
    read = min(READ_TIMEOUT_S, int(room // READ_TIMEOUT_STEP_S) * READ_TIMEOUT_STEP_S)
    return read if read >= MIN_READ_TIMEOUT_S else None


def backoff_s(attempt: int, jitter: float) -> float:
    """The pause before attempt number ``attempt`` (2, 3, ...), ``jitter`` in [0, 1)."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 2)) * jitter


@dataclass
class CallBudget:
    """The time this invocation may still spend on the endpoint, and how it waits."""

    remaining_s: Callable[[], float]
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    @classmethod
    def from_context(cls, context: Any) -> CallBudget:
        """The Lambda context's remaining time; without one, ``FUNCTION_TIMEOUT_S`` from now."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining_ms):
            return cls(lambda: float(remaining_ms()) / 1000.0)
        deadline = time.monotonic() + FUNCTION_TIMEOUT_S
        return cls(lambda: deadline - time.monotonic())


def invoke_within(
    budget: CallBudget, name: str, data: bytes, client_for: Callable[[int], Any] | None = None
) -> bytes:
    """Call the endpoint, retrying transient failures while ``budget`` leaves room for it.

    ``client_for(read_timeout_s)`` gives the client of an attempt (default ``runtime_client``).
    Raises ``EndpointUnavailableError`` (the last one) when no further attempt fits, and
    ``ConfigurationError`` when not even the first does: the function's Timeout is too short.
    """
    make_client = client_for or runtime_client
    last: EndpointUnavailableError | None = None
    made = 0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        pause = backoff_s(attempt, budget.jitter()) if attempt > 1 else 0.0
        read = read_timeout_within(budget.remaining_s() - pause)
        if read is None:
            break
        if pause:
            budget.sleep(pause)
        made += 1
        try:
            return invoke(make_client(read), name, data)
        except EndpointUnavailableError as exc:
            last = exc
            logger.warning(
                "endpoint attempt failed",
                extra={"attempt": attempt, "read_timeout_s": read, "error": str(exc)},
            )
    if last is None:
        needed = CONNECT_TIMEOUT_S + READ_TIMEOUT_S + DEADLINE_MARGIN_S
        raise ConfigurationError(
            f"only {budget.remaining_s():.1f} s of the function's time left, less than one call "
            f"to the endpoint needs: set the function's Timeout to at least {needed} s"
        )
    raise EndpointUnavailableError(f"{last} ({made} attempt(s) in this invocation)") from None


# --------------------------------------------------------------------------------------------
# handler

_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def runtime_client(read_timeout_s: int = READ_TIMEOUT_S) -> Any:
    """The module's SageMaker Runtime client for one read timeout, created on first use.

    Standard boto3 settings otherwise, and no retries of botocore's own: ``invoke_within``
    retries, within the function's time.
    """
    key = f"sagemaker-runtime:{read_timeout_s}"
    with _client_lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=read_timeout_s,
                retries={"mode": "standard", "total_max_attempts": 1},
            )
            _clients[key] = boto3.session.Session().client("sagemaker-runtime", config=config)
        return _clients[key]


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: the serialized image -> the event plus inferences, label, confidence."""
    data = decode_image(event)
    name = endpoint_name(event)
    body = invoke_within(CallBudget.from_context(context), name, data)
    probabilities = parse_probabilities(body)
    label, confidence = top_class(probabilities)
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
