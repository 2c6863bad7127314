"""Code the workflow's Lambda functions share, deployed once as the SAM layer ``CommonLayer``.

Lambda puts a Python layer's files on ``sys.path`` (``/opt/python``); ``sam build`` copies this
folder there, and the offline twin puts the folder itself on ``sys.path`` before it imports a
handler. Handlers import what they raise from here, so the error names the state machine
catches (``InvalidEventError``, ``ConfigurationError``, ``MalformedInferenceError``,
``S3UnavailableError``) are defined once. Only the standard library is used, so the layer needs no build step of its own.
"""

from __future__ import annotations

import math
from typing import Any


class InvalidEventError(ValueError):
    """The event does not have the shape the function needs."""


class ConfigurationError(RuntimeError):
    """An environment variable of the function is missing or holds an unusable value."""


class S3UnavailableError(ConnectionError):
    """S3 did not answer (connection refused or closed, timeout, 500/503): transient, retried.

    The state machine retries it with backoff long enough to ride out a short S3 outage;
    after the last attempt the execution fails with this name.
    """


#: S3 error codes that mean "try again later", not "this request is wrong".
S3_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "500",
        "502",
        "503",
        "504",
    }
)


class MalformedInferenceError(ValueError):
    """A list of class probabilities is not a list of numbers in [0, 1] (summing to ~1)."""


def event_object(event: Any, *keys: str, hint: str = "") -> dict[str, Any]:
    """Return ``event`` when it is a JSON object holding ``keys``; else ``InvalidEventError``.

    ``hint`` is appended to the message about missing keys, e.g. `` (run SerializeImage first)``.
    """
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    missing = [key for key in keys if key not in event]
    if missing:
        raise InvalidEventError(f"event is missing {', '.join(missing)}{hint}")
    return event


def text_field(value: Any, name: str, kind: str = "string") -> str:
    """Return ``value`` when it is a non-blank string; else ``InvalidEventError`` naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(f"{name} must be a non-empty {kind}")
    return value


def check_probabilities(
    values: Any, what: str, *, minimum: int = 1, sum_tolerance: float | None = None
) -> list[float]:
    """Return ``values`` as floats: a list of at least ``minimum`` numbers, each in [0, 1].

    With ``sum_tolerance`` the numbers must also sum to 1 within it. Anything else raises
    ``MalformedInferenceError`` whose message starts with ``what``.
    """
    if not isinstance(values, list):
        raise MalformedInferenceError(f"{what} must be a JSON list, got {type(values).__name__}")
    if len(values) < minimum:
        raise MalformedInferenceError(f"{what} must hold at least {minimum} class probabilities")
    probabilities: list[float] = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedInferenceError(f"{what}[{index}] is not a number: {value!r}")
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise MalformedInferenceError(f"{what}[{index}] = {number} is not in [0, 1]")
        probabilities.append(number)
    if sum_tolerance is not None:
        total = math.fsum(probabilities)
        if abs(total - 1.0) > sum_tolerance:
            raise MalformedInferenceError(f"{what} sums to {total:.4f}, not 1")
    return probabilities


def top_class(probabilities: list[float]) -> tuple[int, float]:
    """Return ``(label, confidence)``: the index of the largest probability and its value."""
    label = max(range(len(probabilities)), key=probabilities.__getitem__)
    return label, probabilities[label]
