"""FilterInferencesFunction: threshold precedence, confident and low-confidence results, bad input."""

from __future__ import annotations

import copy
from types import ModuleType
from typing import Any

import pytest
from sam_helpers import read_event

from scones.twin.lambda_runtime import LambdaContext


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIDENCE_THRESHOLD", raising=False)


def test_low_confidence_raises(lambda_context: LambdaContext, filter_fn: ModuleType) -> None:
    event = {"s3_bucket": "b", "s3_key": "k", "image_data": "", "inferences": [0.6, 0.4]}
    with pytest.raises(filter_fn.LowConfidenceError, match="0.6000 .*below the threshold 0.9300"):
        filter_fn.lambda_handler(event, lambda_context)


def test_confident_returns_the_event(lambda_context: LambdaContext, filter_fn: ModuleType) -> None:
    event = {"s3_bucket": "b", "s3_key": "k", "image_data": "", "inferences": [0.97, 0.03]}
    before = copy.deepcopy(event)
    assert filter_fn.lambda_handler(event, lambda_context) == before


def test_the_sample_events(lambda_context: LambdaContext, filter_fn: ModuleType) -> None:
    confident = read_event("filter_confident.json")
    assert filter_fn.lambda_handler(confident, lambda_context) == read_event(
        "filter_confident.json"
    )
    with pytest.raises(filter_fn.LowConfidenceError):
        filter_fn.lambda_handler(read_event("filter_low_confidence.json"), lambda_context)


@pytest.mark.parametrize(
    ("inferences", "threshold", "passes"),
    [
        ([0.93, 0.07], 0.93, True),  # equal to the threshold passes
        ([0.9299, 0.0701], 0.93, False),
        ([0.03, 0.97], 0.93, True),  # the top class may be any label
        ([0.4, 0.35, 0.25], 0.4, True),
        ([1, 0], 1.0, True),
    ],
)
def test_threshold_boundary(
    lambda_context: LambdaContext,
    filter_fn: ModuleType,
    inferences: list[float],
    threshold: float,
    passes: bool,
) -> None:
    event = {"inferences": inferences, "threshold": threshold}
    if passes:
        assert filter_fn.lambda_handler(event, lambda_context) is event
    else:
        with pytest.raises(filter_fn.LowConfidenceError):
            filter_fn.lambda_handler(event, lambda_context)


def test_threshold_precedence(filter_fn: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert filter_fn.threshold_for({}) == 0.93
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "0.8")
    assert filter_fn.threshold_for({}) == 0.8
    assert filter_fn.threshold_for({"threshold": 0.5}) == 0.5
    assert filter_fn.threshold_for({"threshold": 1}) == 1.0
    assert filter_fn.threshold_for({"threshold": None}) == 0.8


def test_env_threshold_applies(
    lambda_context: LambdaContext, filter_fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "0.5")
    event = {"inferences": [0.6, 0.4]}
    assert filter_fn.lambda_handler(event, lambda_context) is event


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        (None, "InvalidEventError", "must be a JSON object"),
        ({"s3_bucket": "b"}, "InvalidEventError", "missing inferences"),
        ({"inferences": "0.9"}, "MalformedInferenceError", "must be a JSON list"),
        ({"inferences": []}, "MalformedInferenceError", "is empty"),
        ({"inferences": [0.9, "x"]}, "MalformedInferenceError", "not a number"),
        ({"inferences": [True, False]}, "MalformedInferenceError", "not a number"),
        ({"inferences": [1.5, -0.5]}, "MalformedInferenceError", "not in \\[0, 1\\]"),
        ({"inferences": [float("nan"), 0.5]}, "MalformedInferenceError", "not in \\[0, 1\\]"),
        ({"inferences": [0.97, 0.03], "threshold": "high"}, "InvalidEventError", "threshold"),
        # a numeric string is refused as docs/sam.md says (the ASL sends a number; issue 14)
        ({"inferences": [0.97, 0.03], "threshold": "0.5"}, "InvalidEventError", "JSON number"),
        ({"inferences": [0.97, 0.03], "threshold": [0.5]}, "InvalidEventError", "JSON number"),
        ({"inferences": [0.97, 0.03], "threshold": 0}, "InvalidEventError", "threshold"),
        ({"inferences": [0.97, 0.03], "threshold": 1.5}, "InvalidEventError", "threshold"),
        ({"inferences": [0.97, 0.03], "threshold": True}, "InvalidEventError", "threshold"),
    ],
)
def test_bad_events(
    lambda_context: LambdaContext, filter_fn: ModuleType, event: Any, error: str, message: str
) -> None:
    with pytest.raises(getattr(filter_fn, error), match=message):
        filter_fn.lambda_handler(event, lambda_context)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.01", "nan"])
def test_bad_env_threshold_is_a_configuration_error(
    lambda_context: LambdaContext,
    filter_fn: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", value)
    with pytest.raises(filter_fn.ConfigurationError, match="CONFIDENCE_THRESHOLD"):
        filter_fn.lambda_handler({"inferences": [0.97, 0.03]}, lambda_context)
