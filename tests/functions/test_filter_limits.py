"""FilterInferencesFunction at its limits: both sides of every bound, the messages a user reads
and the log fields operations count on (what ``make mutation`` found untested; docs/testing.md).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import pytest

from scones.twin.lambda_runtime import LambdaContext


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIDENCE_THRESHOLD", raising=False)


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    """The log records whose message is ``message`` (an event name operations filter on)."""
    return [r for r in caplog.records if r.getMessage() == message]


# ------------------------------------------------------------------------------ threshold bounds


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (0.0, False),
        (-0.0, False),
        (1e-9, True),  # just over 0: the bound is open
        (0.5, True),
        (1.0, True),  # at 1: the bound is closed
        (1.0000001, False),  # just over 1
        (2.0, False),
        (float("inf"), False),
        (float("-inf"), False),
        (float("nan"), False),
    ],
)
def test_parse_threshold_on_both_sides_of_its_bounds(
    filter_fn: ModuleType, value: float, accepted: bool
) -> None:
    if accepted:
        assert filter_fn.parse_threshold(value, "t") == value
    else:
        with pytest.raises(ValueError, match=r"^t must be a number in \(0, 1\], got "):
            filter_fn.parse_threshold(value, "t")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "CONFIDENCE_THRESHOLD must be a number in (0, 1], got True"),
        ("abc", "CONFIDENCE_THRESHOLD must be a number in (0, 1], got 'abc'"),
        (None, "CONFIDENCE_THRESHOLD must be a number in (0, 1], got None"),
        ("1.5", "CONFIDENCE_THRESHOLD must be a number in (0, 1], got 1.5"),
    ],
)
def test_parse_threshold_says_what_it_got(filter_fn: ModuleType, value: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        filter_fn.parse_threshold(value, "CONFIDENCE_THRESHOLD")
    assert str(caught.value) == message


def test_numeric_strings_parse_for_the_environment(filter_fn: ModuleType) -> None:
    assert filter_fn.parse_threshold(" 0.75 ", "CONFIDENCE_THRESHOLD") == 0.75
    assert filter_fn.parse_threshold(1, "CONFIDENCE_THRESHOLD") == 1.0


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, 0.93),
        ({"CONFIDENCE_THRESHOLD": ""}, 0.93),
        ({"CONFIDENCE_THRESHOLD": "   "}, 0.93),
        ({"CONFIDENCE_THRESHOLD": "0.6"}, 0.6),
        ({"CONFIDENCE_THRESHOLD": " 1 "}, 1.0),
    ],
)
def test_threshold_from_a_given_environment(
    filter_fn: ModuleType, environ: dict[str, str], expected: float
) -> None:
    assert filter_fn.threshold_for({}, environ) == expected
    assert filter_fn.threshold_for({"threshold": None}, environ) == expected
    assert filter_fn.threshold_for({"threshold": 0.25}, environ) == 0.25  # the event wins


def test_a_given_environment_wins_over_the_process_one(
    filter_fn: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIDENCE_THRESHOLD", "0.4")
    assert filter_fn.threshold_for({}) == 0.4
    assert filter_fn.threshold_for({}, {}) == filter_fn.DEFAULT_THRESHOLD == 0.93
    assert filter_fn.threshold_for({}, {"CONFIDENCE_THRESHOLD": "0.7"}) == 0.7


def test_a_bad_environment_threshold_names_the_variable(filter_fn: ModuleType) -> None:
    with pytest.raises(filter_fn.ConfigurationError) as caught:
        filter_fn.threshold_for({}, {"CONFIDENCE_THRESHOLD": "0"})
    assert str(caught.value) == "CONFIDENCE_THRESHOLD must be a number in (0, 1], got 0.0"


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("0.5", "threshold must be a JSON number in (0, 1], got str '0.5'"),
        (False, "threshold must be a JSON number in (0, 1], got bool False"),
        ([0.5], "threshold must be a JSON number in (0, 1], got list [0.5]"),
        (0, "threshold must be a number in (0, 1], got 0.0"),
        (1.01, "threshold must be a number in (0, 1], got 1.01"),
    ],
)
def test_a_bad_event_threshold_says_what_it_got(
    filter_fn: ModuleType, threshold: Any, message: str
) -> None:
    with pytest.raises(filter_fn.InvalidEventError) as caught:
        filter_fn.threshold_for({"threshold": threshold}, {"CONFIDENCE_THRESHOLD": "0.5"})
    assert str(caught.value) == message


# ------------------------------------------------------------------------------ the decision


@pytest.mark.parametrize(
    ("inferences", "threshold", "label", "passes"),
    [
        ([0.93, 0.07], 0.93, 0, True),  # at the threshold
        ([0.9300001, 0.0699999], 0.93, 0, True),  # just over
        ([0.9299999, 0.0700001], 0.93, 0, False),  # just under
        ([0.2, 0.8], 0.8, 1, True),
        ([0.5, 0.5], 0.5, 0, True),  # a tie: the first label
        ([1e-9], 1e-9, 0, True),
    ],
)
def test_check_confidence_on_both_sides(
    filter_fn: ModuleType, inferences: list[float], threshold: float, label: int, passes: bool
) -> None:
    if passes:
        assert filter_fn.check_confidence(inferences, threshold) == (label, max(inferences))
    else:
        with pytest.raises(filter_fn.LowConfidenceError):
            filter_fn.check_confidence(inferences, threshold)


def test_the_low_confidence_message(filter_fn: ModuleType) -> None:
    with pytest.raises(filter_fn.LowConfidenceError) as caught:
        filter_fn.check_confidence([0.1, 0.61234, 0.27766], 0.93)
    assert str(caught.value) == (
        "top confidence 0.6123 (label 1) is below the threshold 0.9300: needs human review"
    )


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        (["x"], "InvalidEventError", "event must be a JSON object, got list"),
        ({}, "InvalidEventError", "event is missing inferences (run ClassifyImage first)"),
        (
            {"inferences": []},
            "MalformedInferenceError",
            "inferences is empty (run ClassifyImage first)",
        ),
        ({"inferences": {}}, "MalformedInferenceError", "inferences must be a JSON list, got dict"),
        (
            {"inferences": [0.5, 1.01]},
            "MalformedInferenceError",
            "inferences[1] = 1.01 is not in [0, 1]",
        ),
        (
            {"inferences": [-0.01]},
            "MalformedInferenceError",
            "inferences[0] = -0.01 is not in [0, 1]",
        ),
        (
            {"inferences": [0.2, None]},
            "MalformedInferenceError",
            "inferences[1] is not a number: None",
        ),
    ],
)
def test_parse_inferences_messages(
    filter_fn: ModuleType, event: Any, error: str, message: str
) -> None:
    with pytest.raises(getattr(filter_fn, error)) as caught:
        filter_fn.parse_inferences(event)
    assert str(caught.value) == message


def test_inferences_need_not_sum_to_one(filter_fn: ModuleType) -> None:
    """FilterInferences checks each value, not the sum (ClassifyImage checked it)."""
    assert filter_fn.parse_inferences({"inferences": [1, 1.0, 0]}) == [1.0, 1.0, 0.0]
    assert filter_fn.parse_inferences({"inferences": [0.0]}) == [0.0]


# ------------------------------------------------------------------------------ log fields


def test_a_confident_result_logs_its_fields(
    filter_fn: ModuleType, lambda_context: LambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    event = {"s3_bucket": "bkt", "s3_key": "incoming/a.png", "inferences": [0.04, 0.96]}
    with caplog.at_level(logging.INFO):
        assert filter_fn.lambda_handler(event, lambda_context) is event
    (record,) = records(caplog, "confident")
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k, "missing") for k in ("s3_bucket", "s3_key", "label")}
    assert fields == {"s3_bucket": "bkt", "s3_key": "incoming/a.png", "label": 1}
    assert (record.confidence, record.threshold) == (0.96, 0.93)  # type: ignore[attr-defined]
    assert not records(caplog, "low confidence")


def test_a_low_confidence_result_logs_its_fields(
    filter_fn: ModuleType, lambda_context: LambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    event = {"s3_bucket": "bkt", "s3_key": "incoming/b.png", "inferences": [0.3, 0.7]}
    with caplog.at_level(logging.INFO), pytest.raises(filter_fn.LowConfidenceError):
        filter_fn.lambda_handler({**event, "threshold": 0.75}, lambda_context)
    (record,) = records(caplog, "low confidence")
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k, "missing") for k in ("s3_bucket", "s3_key", "confidence")}
    assert fields == {"s3_bucket": "bkt", "s3_key": "incoming/b.png", "confidence": 0.7}
    assert record.threshold == 0.75  # type: ignore[attr-defined]
    assert not records(caplog, "confident")


def test_log_fields_are_none_without_a_location(
    filter_fn: ModuleType, lambda_context: LambdaContext, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        filter_fn.lambda_handler({"inferences": [1.0, 0.0]}, lambda_context)
    (record,) = records(caplog, "confident")
    assert (record.s3_bucket, record.s3_key, record.label) == (None, None, 0)  # type: ignore[attr-defined]
