"""The S3 -> state machine bridge: EventBridge matching (moto's matcher), input transformation,
names, and the polling thread against moto's S3."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from scones.settings import Settings
from scones.twin import bridge
from scones.twin.template import read_app

PROJECT = Path(__file__).resolve().parents[2]
OBJ = bridge.S3Object(
    "scones-images-local", "incoming/a b/cat.png", "abc", 12, datetime(2026, 1, 2, tzinfo=UTC)
)


def _rule() -> dict[str, object]:
    rule = read_app(PROJECT).state_machine.rules[0]
    return {
        "name": rule.name,
        "pattern": rule.pattern,
        "input_transformer": rule.input_transformer,
        "input_path": rule.input_path,
        "input": rule.input,
    }


def _obj(key: str, size: int = 12) -> bridge.S3Object:
    return bridge.S3Object(OBJ.bucket, key, "etag", size, OBJ.last_modified)


def test_real_rule_matches_incoming_uploads_only() -> None:
    pattern: dict[str, Any] = _rule()["pattern"]  # type: ignore[assignment]
    bridge.check_pattern(pattern)  # what deploy checks
    assert bridge.matches(pattern, bridge.s3_event(OBJ, "us-east-1"))
    other_prefix = bridge.S3Object(OBJ.bucket, "data_capture/x.jsonl", "e", 1, OBJ.last_modified)
    assert not bridge.matches(pattern, bridge.s3_event(other_prefix, "us-east-1"))
    other_bucket = bridge.S3Object("elsewhere", OBJ.key, "e", 1, OBJ.last_modified)
    assert not bridge.matches(pattern, bridge.s3_event(other_bucket, "us-east-1"))
    deleted = bridge.s3_event(OBJ, "us-east-1") | {"detail-type": "Object Deleted"}
    assert not bridge.matches(pattern, deleted)
    not_s3 = bridge.s3_event(OBJ, "us-east-1") | {"source": "aws.ec2"}
    assert not bridge.matches(pattern, not_s3)


def test_real_rule_input_is_the_events_detail() -> None:
    event = bridge.s3_event(OBJ, "us-east-1")
    payload = bridge.execution_input(_rule(), event)
    assert json.loads(payload) == event["detail"]  # the ASL reads bucket.name and object.key


KEYS = [
    "incoming/a b/cat.png",
    "incoming/vélo 自転車 🚲.png",
    'incoming/say "cheese".png',
    "incoming/back\\slash\\n.png",
    "incoming/c++ 1+1=2.png",
    "incoming/100% sure %41.png",
    "incoming/tab\tand\nnewline.png",
]


@pytest.mark.parametrize("key", KEYS)
def test_any_key_reaches_the_state_machine_intact(key: str) -> None:
    rule, event = _rule(), bridge.s3_event(_obj(key), "us-east-1")
    assert bridge.matches(rule["pattern"], event)  # type: ignore[arg-type]
    payload = json.loads(bridge.execution_input(rule, event))
    assert (payload["bucket"]["name"], payload["object"]["key"]) == (OBJ.bucket, key)


@pytest.mark.parametrize("key", KEYS)
def test_a_string_template_refuses_the_keys_eventbridge_would_break(key: str) -> None:
    # EventBridge inserts InputPathsMap values unescaped ("Common issues with transforming input")
    rule = {
        "input_transformer": {
            "InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
            "InputTemplate": '{"s3_bucket": <bucket>, "s3_key": <key>}',
        }
    }
    event = bridge.s3_event(_obj(key), "us-east-1")
    if any(c in key for c in '"\\\t\n'):
        with pytest.raises(bridge.InvalidInputTransformError, match="unescaped.*InputPath"):
            bridge.execution_input(rule, event)
    else:
        payload = json.loads(bridge.execution_input(rule, event))
        assert payload == {"s3_bucket": OBJ.bucket, "s3_key": key}


@pytest.mark.parametrize(
    ("key", "size", "starts"),
    [
        ("incoming/some-folder/", 0, False),  # the console's "Create folder"
        ("incoming/a/b/", 0, False),
        ("incoming/empty.png", 0, False),  # no image either
        ("incoming/x.png", 1, True),
        ("incoming/odd-folder/", 5, True),  # has bytes: SerializeImage names it InvalidEventError
        ("elsewhere/x.png", 5, False),
    ],
)
def test_the_real_rule_skips_folder_markers(key: str, size: int, starts: bool) -> None:
    event = bridge.s3_event(_obj(key, size), "us-east-1")
    assert bridge.matches(_rule()["pattern"], event) is starts  # type: ignore[arg-type]


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
        ({"detail": {"object": {"size": [{"numeric": [">", 1, "<=", 12]}]}}}, True),
        ({"detail": {"object": {"size": [{"numeric": [">", 12]}]}}}, False),
        ({"$or": [{"source": ["aws.ec2"]}, {"detail-type": ["Object Created"]}]}, True),
        ({}, True),
    ],
)
def test_pattern_operators(pattern: dict[str, object], expected: bool) -> None:
    assert bridge.matches(pattern, bridge.s3_event(OBJ, "us-east-1")) is expected


def test_unsupported_operator_is_named() -> None:
    # moto's matcher lets an operator it does not know match everything: the bridge refuses it
    with pytest.raises(bridge.UnsupportedPatternError, match="between"):
        bridge.matches(
            {"detail": {"object": {"size": [{"between": [1, 2]}]}}}, bridge.s3_event(OBJ, "r")
        )
    with pytest.raises(bridge.UnsupportedPatternError, match="between"):
        bridge.check_pattern({"$or": [{"source": [{"between": 1}]}]})


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [({"source": "aws.s3"}, "must be an object or an array"), ({"source": []}, "Empty arrays")],
)
def test_invalid_pattern_is_refused_as_putrule_would(pattern: dict[str, Any], reason: str) -> None:
    with pytest.raises(bridge.UnsupportedPatternError, match=reason):
        bridge.check_pattern(pattern)


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


def test_bridge_polls_starts_once_and_remembers(
    app_root: Path, settings_for: Any, moto_server: Any, tmp_path: Path
) -> None:
    """The bridge against moto's S3 (unit tier): new uploads start once, old ones never."""
    from scones.twin.deploy import deploy_workflow

    settings = settings_for(app_root)
    app = read_app(app_root)
    _, machine = deploy_workflow(settings, app)
    kw = {
        "endpoint_url": moto_server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": settings.access_key_id,  # the twin verifies SigV4 signatures
        "aws_secret_access_key": settings.secret_access_key,
    }
    s3, sfn = boto3.client("s3", **kw), boto3.client("stepfunctions", **kw)
    bucket = f"bridge-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/old.png", Body=b"old")
    rules = [
        {
            "name": r.name,
            "pattern": {
                **r.pattern,
                "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": "in/"}]}},
            },
            "input_transformer": r.input_transformer,
        }
        for r in app.state_machine.rules
    ]
    since = datetime.now(tz=UTC).replace(microsecond=0) + timedelta(seconds=1)
    bridge.write_config(
        settings, bridge.BridgeConfig(bucket, "in/", machine, "us-east-1", rules, since)
    )
    first = bridge.Bridge(settings, moto_url=moto_server.url)
    assert first.poll_once(s3, sfn) == 0  # uploaded before the deployment: not started
    time.sleep(max(0.0, (since - datetime.now(tz=UTC)).total_seconds()) + 0.1)
    etag = s3.put_object(Bucket=bucket, Key="in/new.png", Body=b"new")["ETag"].strip('"')
    s3.put_object(Bucket=bucket, Key="elsewhere/x.png", Body=b"x")
    # the sample rule's InputTemplate cannot carry a " (AWS: dead-letter queue): skipped, logged
    s3.put_object(Bucket=bucket, Key='in/a "quoted" key.png', Body=b"q")
    assert first.poll_once(s3, sfn) == 1
    assert first.poll_once(s3, sfn) == 0  # each object once
    assert bridge.Bridge(settings, moto_url=moto_server.url).poll_once(s3, sfn) == 0  # persisted
    obj = bridge.S3Object(bucket, "in/new.png", etag, 3, datetime.now(tz=UTC))
    arn = f"{machine.replace(':stateMachine:', ':execution:')}:{bridge.execution_name(obj)}"
    info = sfn.describe_execution(executionArn=arn)
    assert json.loads(info["input"]) == {"b": bucket, "k": "in/new.png", "note": "key in/new.png"}
    # classify's start for the same object finds the bridge's execution instead of a second one
    found, new = bridge.start_for_object(sfn, bridge.read_config(settings), obj)  # type: ignore[arg-type]
    assert (found, new) == (arn, False)


def test_seen_txt_keeps_any_key_on_one_line(tmp_path: Path) -> None:
    """A newline in a key split its seen.txt line in two (issue 14): lines are JSON arrays
    now, and the tab-separated lines of earlier versions are still read."""
    settings = Settings(project_root=tmp_path, home=tmp_path / "home")
    odd = ("b", "incoming/two\nlines\tand tab.png", "etag1")
    first = bridge.Bridge(settings, moto_url="http://127.0.0.1:1")
    first._remember([odd])
    path = bridge.bridge_dir(settings) / bridge.SEEN_FILE
    with path.open("a", encoding="utf-8") as handle:
        handle.write("b\tincoming/old.png\tetag0\n")  # an earlier version's line
        handle.write('["b", "incoming/cut')  # a line cut short by a crash
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    again = bridge.Bridge(settings, moto_url="http://127.0.0.1:1")
    again._load_seen()
    assert again._seen == {odd, ("b", "incoming/old.png", "etag0")}


def test_bridge_follows_new_keys_and_lists_the_prefix_rarely(
    moto_server: Any, tmp_path: Path
) -> None:
    """Each poll lists only the keys after the greatest seen (StartAfter); the whole prefix is
    listed when due, at most FULL_LISTING_CPU_SHARE of a core (issue 14: 50 % of a core with
    16,000 objects listed every second)."""
    settings = Settings(project_root=tmp_path, home=tmp_path / "home")
    kw = {
        "endpoint_url": moto_server.url,
        "region_name": "us-east-1",
        "aws_access_key_id": settings.access_key_id,
        "aws_secret_access_key": settings.secret_access_key,
    }
    s3 = boto3.client("s3", **kw)
    calls: list[dict[str, Any]] = []
    s3.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    bucket = f"follow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for i in range(30):
        s3.put_object(Bucket=bucket, Key=f"in/{i:03d}.png", Body=b"x")
    never = datetime.now(tz=UTC) + timedelta(days=1)  # nothing is started: sfn is not used
    rules = [{"name": "r", "pattern": {}}]
    bridge.write_config(
        settings, bridge.BridgeConfig(bucket, "in/", "arn", "us-east-1", rules, never)
    )
    follower = bridge.Bridge(settings, moto_url=moto_server.url)
    assert follower.full_listing_due()  # nothing seen yet
    follower.poll_once(s3, None, full=False)  # the first pass lists everything anyway
    assert "StartAfter" not in calls[-1]
    assert len(follower._seen) == 30 and follower.full_listings == 1
    assert follower.full_every_s >= 1.0 and not follower.full_listing_due()
    s3.put_object(Bucket=bucket, Key="in/100.png", Body=b"y")
    s3.put_object(Bucket=bucket, Key="in/000-early.png", Body=b"z")  # sorts before the last
    follower.poll_once(s3, None, full=False)
    assert calls[-1]["StartAfter"] == "in/029.png" and follower.full_listings == 1
    assert (bucket, "in/100.png") in {i[:2] for i in follower._seen}
    assert (bucket, "in/000-early.png") not in {i[:2] for i in follower._seen}
    follower.poll_once(s3, None, full=True)  # the next full listing finds it
    assert (bucket, "in/000-early.png") in {i[:2] for i in follower._seen}
    assert follower.full_listings == 2
