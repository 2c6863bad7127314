"""FilterInferencesFunction: let confident classifications through, stop the others.

Input event: ``{"s3_bucket", "s3_key", "image_data", "inferences": [floats], ...}``.
Output: the event unchanged when ``max(inferences)`` reaches the threshold; otherwise
``LowConfidenceError`` is raised, which the state machine catches and sends to human review.

The threshold is ``event["threshold"]`` when given (a JSON number: the state machine turns its
``${ConfidenceThreshold}`` substitution into one with ``States.StringToJson``; a string such as
``"0.5"`` is refused), else the ``CONFIDENCE_THRESHOLD`` environment variable (a string, as
Lambda's environment holds it), else 0.93.

The errors it shares with the other functions and the probability check come from the
``CommonLayer`` (``functions/common/scones_common.py``); otherwise only the standard library
is used.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from scones_common import (
    ConfigurationError,
    InvalidEventError,
    MalformedInferenceError,
    check_probabilities,
    event_object,
    top_class,
)

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.93


class LowConfidenceError(RuntimeError):
    """The most likely class is below the confidence threshold."""


def parse_threshold(value: Any, source: str) -> float:
    """Return ``value`` as a threshold in (0, 1]; raise ``ValueError`` naming ``source``."""
    if isinstance(value, bool):
        raise ValueError(f"{source} must be a number in (0, 1], got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a number in (0, 1], got {value!r}") from None
    if not (math.isfinite(number) and 0.0 < number <= 1.0):
        raise ValueError(f"{source} must be a number in (0, 1], got {number}")
    return number


def threshold_for(event: dict[str, Any], environ: Any = None) -> float:
    """The threshold: ``event["threshold"]``, else env ``CONFIDENCE_THRESHOLD``, else 0.93."""
    if event.get("threshold") is not None:
        value = event["threshold"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEventError(
                f"threshold must be a JSON number in (0, 1], got {type(value).__name__} {value!r}"
            )
        try:
            return parse_threshold(value, "threshold")
        except ValueError as exc:
            raise InvalidEventError(str(exc)) from None
    env = os.environ if environ is None else environ
    raw = env.get("CONFIDENCE_THRESHOLD", "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    try:
        return parse_threshold(raw, "CONFIDENCE_THRESHOLD")
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def parse_inferences(event: Any) -> list[float]:
    """Return ``event["inferences"]`` as floats or raise a named error."""
    event = event_object(event, "inferences", hint=" (run ClassifyImage first)")
    if event["inferences"] == []:
        raise MalformedInferenceError("inferences is empty (run ClassifyImage first)")
    return check_probabilities(event["inferences"], "inferences")


def check_confidence(inferences: list[float], threshold: float) -> tuple[int, float]:
    """Return ``(label, confidence)`` of the top class, or raise ``LowConfidenceError``."""
    label, confidence = top_class(inferences)
    if confidence < threshold:
        raise LowConfidenceError(
            f"top confidence {confidence:.4f} (label {label}) is below the threshold "
            f"{threshold:.4f}: needs human review"
        )
    return label, confidence


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: return the event when it is confident enough."""
    inferences = parse_inferences(event)
    threshold = threshold_for(event)
    extra = {"s3_bucket": event.get("s3_bucket"), "s3_key": event.get("s3_key")}
    try:
        label, confidence = check_confidence(inferences, threshold)
    except LowConfidenceError:
        logger.info(
            "low confidence",
            extra={**extra, "confidence": max(inferences), "threshold": threshold},
        )
        raise
    logger.info(
        "confident",
        extra={**extra, "label": label, "confidence": confidence, "threshold": threshold},
    )
    return event
