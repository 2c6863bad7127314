"""The ASL -> graph model on the real definition (read by the twin's template reader) and on
small definitions of every state type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scones.graph.d2source import d2_source, quote, retry_line
from scones.graph.model import END, START, DefinitionError, build_graph, rule_text
from scones.twin.template import read_app

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def definition() -> str:
    """The deployed definition of statemachine/image_classification.asl.json, substituted as
    ``scones deploy --local`` substitutes it."""
    return read_app(PROJECT).state_machine.definition


def test_every_state_is_a_node_with_its_type(definition: str) -> None:
    graph = build_graph(definition)
    states = json.loads(definition)["States"]
    assert list(graph.nodes) == list(states)
    assert {n: node.type for n, node in graph.nodes.items()} == {
        n: s["Type"] for n, s in states.items()
    }


def test_edges_next_default_choice_catch_start_end(definition: str) -> None:
    graph = build_graph(definition)
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[(START, "ReadInput")] == "start"
    assert kinds[("SerializeImage", "ClassifyImage")] == "next"
    assert kinds[("ReadInput", "CheckS3Event")] == "choice"
    assert kinds[("CheckS3Event", "MissingImageLocation")] == "default"
    assert kinds[("FilterInferences", "RecordForHumanReview")] == "catch"
    assert kinds[("FilterInferences", END)] == "end"
    catch = next(e for e in graph.edges if e.target == "EndpointFailed")
    assert catch.label == "Catch EndpointError, EndpointUnavailableError"
    assert catch.errors == ("EndpointError", "EndpointUnavailableError")


def test_retry_is_noted_on_the_task(definition: str) -> None:
    classify = build_graph(definition).nodes["ClassifyImage"]
    assert [r.errors for r in classify.retriers][1] == ("EndpointUnavailableError",)
    assert [retry_line(r) for r in classify.retriers] == [
        "Retry Lambda.* (5) x4",
        "Retry EndpointUnavailableError x4",
    ]
    assert classify.retriers[1].describe() == "Retry EndpointUnavailableError x4 (2 s, x2)"


def test_catchers_match_by_name_and_states_all(definition: str) -> None:
    catchers = build_graph(definition).catchers_of("SerializeImage")
    assert catchers[4].matches("NotAnImageError") and not catchers[4].matches("Other")
    assert catchers[-1].matches("Anything")


def test_choice_rules_read_as_short_text() -> None:
    rule = {
        "Or": [
            {"Variable": "$.a", "IsPresent": True},
            {"Not": {"Variable": "$.b", "IsPresent": True}},
        ]
    }
    assert rule_text(rule) == "$.a present or $.b not present"
    assert rule_text({"Variable": "$.n", "NumericGreaterThan": 3}) == "$.n NumericGreaterThan 3"
    assert rule_text({"Variable": "$.s", "StringEquals": "x" * 80}).endswith("...")


def test_all_state_types_and_parallel_map_as_boxes() -> None:
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 1, "Next": "Par"},
            "Par": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "End": True}}}],
                "Next": "M",
            },
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Y", "States": {"Y": {"Type": "Pass", "End": True}}},
                "Next": "C",
            },
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "BooleanEquals": True, "Next": "S"}],
                "Default": "F",
            },
            "S": {"Type": "Succeed"},
            "F": {"Type": "Fail", "Error": "E"},
        },
    }
    graph = build_graph(definition)
    assert list(graph.nodes) == ["P", "W", "Par", "M", "C", "S", "F"]  # no branch states
    source = d2_source(graph).source
    assert "multiple: true" in source and "shape: hexagon" in source
    assert ("S", END) in {(e.source, e.target) for e in graph.edges}


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[]",
        json.dumps({"StartAt": "A", "States": {}}),
        json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}),
    ],
)
def test_a_broken_definition_is_refused_with_the_reason(bad: str) -> None:
    with pytest.raises(DefinitionError):
        build_graph(bad)


def test_labels_are_escaped_for_d2() -> None:
    assert quote('a "b" $.c ${D}\nx\\y') == '"a \\"b\\" \\$.c \\${D}\\nx\\\\y"'
