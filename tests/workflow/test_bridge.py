"""The S3 -> state machine bridge: EventBridge matching, input transformation, names."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scones.twin import bridge
from scones.twin.template import read_app

PROJECT = Path(__file__).resolve().parents[2]
OBJ = bridge.S3Object(
    "scones-images-local", "incoming/a b/cat.png", "abc", 12, datetime(2026, 1, 2, tzinfo=UTC)
)


def _rule() -> dict[str, object]:
    rule = read_app(PROJECT).state_machine.rules[0]
    return {"name": rule.name, "pattern": rule.pattern, "input_transformer": rule.input_transformer}


def test_real_rule_matches_incoming_uploads_only() -> None:
    rule = _rule()
    assert bridge.matches(rule["pattern"], bridge.s3_event(OBJ, "us-east-1"))  # type: ignore[arg-type]
    other_prefix = bridge.S3Object(OBJ.bucket, "data_capture/x.jsonl", "e", 1, OBJ.last_modified)
    assert not bridge.matches(rule["pattern"], bridge.s3_event(other_prefix, "us-east-1"))  # type: ignore[arg-type]
    other_bucket = bridge.S3Object("elsewhere", OBJ.key, "e", 1, OBJ.last_modified)
    assert not bridge.matches(rule["pattern"], bridge.s3_event(other_bucket, "us-east-1"))  # type: ignore[arg-type]


def test_real_rule_input_is_what_the_state_machine_expects() -> None:
    payload = bridge.execution_input(_rule(), bridge.s3_event(OBJ, "us-east-1"))
    assert json.loads(payload) == {"s3_bucket": OBJ.bucket, "s3_key": OBJ.key}


def test_event_is_deterministic_and_shaped_like_s3s() -> None:
    event = bridge.s3_event(OBJ, "us-east-1")
    assert event == bridge.s3_event(OBJ, "us-east-1")
    assert event["detail-type"] == "Object Created" and event["source"] == "aws.s3"
    assert event["detail"]["object"] | {"sequencer": ""} == {
        "key": OBJ.key,
        "size": 12,
        "etag": "abc",
        "sequencer": "",
    }
    assert event["time"] == "2026-01-02T00:00:00Z"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"detail": {"object": {"key": [{"suffix": ".png"}]}}}, True),
        ({"detail": {"object": {"key": [{"suffix": ".jpg"}]}}}, False),
        ({"detail": {"object": {"size": [{"exists": True}]}}}, True),
        ({"detail": {"object": {"nope": [{"exists": False}]}}}, True),
        ({"detail": {"object": {"nope": [{"exists": True}]}}}, False),
        ({"source": [{"anything-but": ["aws.s3"]}]}, False),
        ({"source": [{"anything-but": {"prefix": "aws.ec2"}}]}, True),
        ({"detail-type": [{"equals-ignore-case": "object created"}]}, True),
        ({"detail": {"object": {"key": [{"wildcard": "incoming/*.png"}]}}}, True),
        ({"detail": {"object": {"size": [12]}}}, True),
        ({"detail": {"object": {"size": [13]}}}, False),
        ({"missing": ["x"]}, False),
    ],
)
def test_pattern_operators(pattern: dict[str, object], expected: bool) -> None:
    assert bridge.matches(pattern, bridge.s3_event(OBJ, "us-east-1")) is expected


def test_unsupported_operator_is_named() -> None:
    with pytest.raises(bridge.UnsupportedPatternError, match="numeric"):
        bridge.matches(
            {"detail": {"object": {"size": [{"numeric": [">", 1]}]}}}, bridge.s3_event(OBJ, "r")
        )


def test_input_template_quoting_and_other_forms() -> None:
    event = bridge.s3_event(OBJ, "us-east-1")
    rule = {
        "input_transformer": {
            "InputPathsMap": {
                "k": "$.detail.object.key",
                "size": "$.detail.object.size",
                "r": "$.resources[0]",
            },
            "InputTemplate": '{"key": <k>, "text": "file <k> (<size> bytes)", "n": <size>, "r": <r>}',
        }
    }
    assert json.loads(bridge.execution_input(rule, event)) == {
        "key": OBJ.key,
        "text": f"file {OBJ.key} (12 bytes)",
        "n": 12,
        "r": "arn:aws:s3:::scones-images-local",
    }
    assert json.loads(bridge.execution_input({"input_path": "$.detail.bucket"}, event)) == {
        "name": OBJ.bucket
    }
    assert json.loads(bridge.execution_input({"input": '{"fixed": 1}'}, event)) == {"fixed": 1}
    assert json.loads(bridge.execution_input({}, event)) == event
    with pytest.raises(bridge.InvalidInputTransformError):
        bridge.execution_input(
            {"input_transformer": {"InputPathsMap": {}, "InputTemplate": "{<x>"}}, event
        )


def test_execution_names_are_valid_deterministic_and_per_version() -> None:
    name = bridge.execution_name(OBJ)
    assert name == bridge.execution_name(OBJ)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    changed = bridge.S3Object(OBJ.bucket, OBJ.key, "other-etag", 12, OBJ.last_modified)
    assert bridge.execution_name(changed) != name
    long = bridge.S3Object(OBJ.bucket, "incoming/" + "x" * 300 + ".png", "e", 1, OBJ.last_modified)
    assert len(bridge.execution_name(long)) <= 80
