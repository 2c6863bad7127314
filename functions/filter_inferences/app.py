"""FilterInferencesFunction: let confident classifications through, stop the others.

Input event: ``{"s3_bucket", "s3_key", "image_data", "inferences": [floats], ...}``.
Output: the event unchanged when ``max(inferences)`` reaches the threshold; otherwise
``LowConfidenceError`` is raised, which the state machine catches and sends to human review.

The threshold is ``event["threshold"]`` when given (a number or a numeric string, as the state
machine's substitutions deliver it), else the ``CONFIDENCE_THRESHOLD`` environment variable,
else 0.93.

Only the standard library is used, so the folder deploys as it is.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.93


class InvalidEventError(ValueError):
    """The event does not have the shape this function needs."""


class ConfigurationError(RuntimeError):
    """``CONFIDENCE_THRESHOLD`` holds an unusable value."""


class MalformedInferenceError(ValueError):
    """``inferences`` is not a list of probabilities."""


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
        try:
            return parse_threshold(event["threshold"], "threshold")
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
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    if "inferences" not in event:
        raise InvalidEventError("event is missing inferences (run ClassifyImage first)")
    values = event["inferences"]
    if not isinstance(values, list):
        raise MalformedInferenceError(f"inferences must be a list, got {type(values).__name__}")
    if not values:
        raise MalformedInferenceError("inferences is empty (run ClassifyImage first)")
    result: list[float] = []
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedInferenceError(f"inferences[{index}] is not a number: {value!r}")
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise MalformedInferenceError(f"inferences[{index}] = {number} is not in [0, 1]")
        result.append(number)
    return result


def check_confidence(inferences: list[float], threshold: float) -> tuple[int, float]:
    """Return ``(label, confidence)`` of the top class, or raise ``LowConfidenceError``."""
    label = max(range(len(inferences)), key=inferences.__getitem__)
    confidence = inferences[label]
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
