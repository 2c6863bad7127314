"""The CommonLayer's checks (functions/common/scones_common.py) at their limits: both sides of the
[0, 1] range and of the sum tolerance, the list length, and the messages a user reads (what
``make mutation`` found untested; docs/testing.md). The layer is imported as the handlers import
it: loading a handler puts it on ``sys.path``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def common(filter_fn: ModuleType) -> ModuleType:
    """``scones_common`` as the handlers see it (after a handler put the layer on sys.path)."""
    import scones_common

    return scones_common


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        (0.0, True),  # at 0
        (-1e-12, False),  # just under
        (1e-12, True),
        (1.0, True),  # at 1
        (1.0 + 1e-12, False),  # just over
        (1.5, False),  # over 1 alone, with nothing negative beside it
        (2.0, False),
        (0, True),
        (1, True),
        (float("inf"), False),
        (float("nan"), False),
    ],
)
def test_the_range_on_both_sides(common: ModuleType, value: float, accepted: bool) -> None:
    if accepted:
        assert common.check_probabilities([value], "p") == [float(value)]
    else:
        with pytest.raises(common.MalformedInferenceError) as caught:
            common.check_probabilities([value], "p")
        assert str(caught.value) == f"p[0] = {float(value)} is not in [0, 1]"


def test_the_index_of_the_bad_value_is_named(common: ModuleType) -> None:
    with pytest.raises(common.MalformedInferenceError) as caught:
        common.check_probabilities([0.25, 0.25, 1.25], "answer")
    assert str(caught.value) == "answer[2] = 1.25 is not in [0, 1]"
    with pytest.raises(common.MalformedInferenceError) as caught:
        common.check_probabilities([0.5, "0.5"], "answer")
    assert str(caught.value) == "answer[1] is not a number: '0.5'"
    with pytest.raises(common.MalformedInferenceError) as caught:
        common.check_probabilities([False], "answer")
    assert str(caught.value) == "answer[0] is not a number: False"


@pytest.mark.parametrize(
    ("values", "minimum", "accepted"),
    [
        ([], 1, False),
        ([1.0], 1, True),
        ([1.0], 2, False),
        ([0.5, 0.5], 2, True),
        ([0.5, 0.5], 3, False),
        ([], 0, True),
    ],
)
def test_the_minimum_length(
    common: ModuleType, values: list[float], minimum: int, accepted: bool
) -> None:
    if accepted:
        assert common.check_probabilities(values, "p", minimum=minimum) == values
    else:
        with pytest.raises(common.MalformedInferenceError) as caught:
            common.check_probabilities(values, "p", minimum=minimum)
        assert str(caught.value) == f"p must hold at least {minimum} class probabilities"


def test_one_value_is_the_default_minimum(common: ModuleType) -> None:
    assert common.check_probabilities([0.5], "p") == [0.5]
    with pytest.raises(common.MalformedInferenceError, match="at least 1 class"):
        common.check_probabilities([], "p")


def test_not_a_list(common: ModuleType) -> None:
    for values, kind in (((0.5, 0.5), "tuple"), ("0.5", "str"), (None, "NoneType")):
        with pytest.raises(common.MalformedInferenceError) as caught:
            common.check_probabilities(values, "p")
        assert str(caught.value) == f"p must be a JSON list, got {kind}"


@pytest.mark.parametrize(
    ("values", "tolerance", "accepted"),
    [
        ([0.5, 0.5], 0.0, True),  # exactly 1 with no tolerance at all: at the bound
        ([0.5, 0.25], 0.0, False),
        ([0.5, 0.25], 0.25, True),  # 0.75: at the tolerance (exact in binary)
        ([0.5, 0.25], 0.2, False),  # just outside
        ([0.75, 0.5], 0.25, True),  # 1.25: at it from above
        ([0.75, 0.5], 0.2, False),
        ([0.3, 0.3], 0.5, True),
        ([0.7, 0.7], None, True),  # no tolerance given: the sum is not checked
        ([0.0, 0.0], None, True),
    ],
)
def test_the_sum_tolerance_on_both_sides(
    common: ModuleType, values: list[float], tolerance: float | None, accepted: bool
) -> None:
    if accepted:
        assert common.check_probabilities(values, "p", sum_tolerance=tolerance) == values
    else:
        with pytest.raises(common.MalformedInferenceError) as caught:
            common.check_probabilities(values, "p", sum_tolerance=tolerance)
        assert str(caught.value) == f"p sums to {sum(values):.4f}, not 1"


def test_the_sum_is_exact(common: ModuleType) -> None:
    """math.fsum: ten 0.1s sum to exactly 1 (a plain sum gives 0.9999999999999999)."""
    assert common.check_probabilities([0.1] * 10, "p", sum_tolerance=0.0) == [0.1] * 10


@pytest.mark.parametrize(
    ("probabilities", "top"),
    [
        ([0.2, 0.8], (1, 0.8)),
        ([0.8, 0.2], (0, 0.8)),
        ([0.3, 0.4, 0.3], (1, 0.4)),
        ([0.5, 0.5], (0, 0.5)),  # a tie: the first
        ([0.25, 0.375, 0.375], (1, 0.375)),
        ([0.0], (0, 0.0)),
    ],
)
def test_top_class(common: ModuleType, probabilities: list[float], top: tuple[int, float]) -> None:
    assert common.top_class(probabilities) == top


@pytest.mark.parametrize(
    ("event", "keys", "hint", "message"),
    [
        ("x", ("a",), "", "event must be a JSON object, got str"),
        (None, (), "", "event must be a JSON object, got NoneType"),
        ({}, ("a",), "", "event is missing a"),
        ({"b": 1}, ("a", "b", "c"), " (hint)", "event is missing a, c (hint)"),
    ],
)
def test_event_object_messages(
    common: ModuleType, event: Any, keys: tuple[str, ...], hint: str, message: str
) -> None:
    with pytest.raises(common.InvalidEventError) as caught:
        common.event_object(event, *keys, hint=hint)
    assert str(caught.value) == message


def test_event_object_adds_no_hint_unless_given(common: ModuleType) -> None:
    with pytest.raises(common.InvalidEventError) as caught:
        common.event_object({"b": 1}, "a")
    assert str(caught.value) == "event is missing a"


def test_event_object_returns_the_event(common: ModuleType) -> None:
    event = {"a": 1, "b": None}
    assert common.event_object(event, "a", "b") is event
    assert common.event_object(event) is event


@pytest.mark.parametrize(
    ("value", "accepted"), [("x", True), (" x ", True), ("", False), ("  ", False), (1, False)]
)
def test_text_field(common: ModuleType, value: Any, accepted: bool) -> None:
    if accepted:
        assert common.text_field(value, "name") is value
    else:
        with pytest.raises(common.InvalidEventError) as caught:
            common.text_field(value, "name")
        assert str(caught.value) == "name must be a non-empty string"
        with pytest.raises(common.InvalidEventError) as caught:
            common.text_field(value, "image_data", "base64 string")
        assert str(caught.value) == "image_data must be a non-empty base64 string"
