"""EventBridge's part of the S3 -> state machine path, for the offline twin's bridge.

What S3 sends (``s3_event``: the "Object Created" event of one listed object), how a rule's
pattern matches it (moto's own matcher, ``moto.events.models.EventPattern``, with the operators
it lacks refused) and what the rule's target gets (``execution_input``: ``InputTransformer``,
``InputPath`` or ``Input``, as EventBridge applies them). ``scones.twin.bridge`` uses these and
re-exports them.

EventBridge inserts the values of an ``InputTransformer``'s ``InputPathsMap`` into its
``InputTemplate`` without escaping them (AWS's "Common issues with transforming input"): a ``"``
in an S3 key makes the target's input invalid JSON, a backslash turns into a JSON escape (a
newline for ``\\n``) or invalid JSON, a control character breaks it. ``execution_input``
refuses such a value with ``InvalidInputTransformError`` instead of sending what AWS would;
``InputPath`` passes the same value intact.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast


class UnsupportedPatternError(Exception):
    """The rule's event pattern is invalid, or uses an operator moto's matcher does not implement."""


class InvalidInputTransformError(Exception):
    """The rule's InputTransformer / InputPath / Input cannot be applied to the event."""


@dataclass(frozen=True)
class S3Object:
    """One listed object: what an S3 "Object Created" event says about it."""

    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime


# --------------------------------------------------------------------------- events


def s3_event(obj: S3Object, region: str, account: str = "123456789012") -> dict[str, Any]:
    """The EventBridge "Object Created" event S3 sends for ``obj`` (deterministic per object)."""
    identity = f"{obj.bucket}/{obj.key}@{obj.etag}"
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "s3-event:" + identity)),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": obj.last_modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:s3:::{obj.bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": obj.bucket},
            "object": {
                "key": obj.key,
                "size": obj.size,
                "etag": obj.etag,
                "sequencer": hashlib.sha1(identity.encode()).hexdigest()[:18].upper(),
            },
            "request-id": hashlib.sha1(("req:" + identity).encode()).hexdigest()[:16].upper(),
            "requester": account,
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject",
        },
    }


# Operators moto's ``EventPattern`` implements; it lets any other operator match everything.
PATTERN_OPERATORS = frozenset(
    (
        "prefix",
        "suffix",
        "equals-ignore-case",
        "anything-but",
        "numeric",
        "exists",
        "cidr",
        "wildcard",
    )
)


def check_pattern(pattern: dict[str, Any]) -> None:
    """Refuse a rule pattern the bridge cannot match as EventBridge would (as ``PutRule`` does on
    AWS): not a pattern of objects and non-empty arrays, or an operator moto does not implement."""
    from moto.events.exceptions import InvalidEventPatternException
    from moto.events.models import EventPattern

    try:
        EventPattern.load(json.dumps(pattern))
    except InvalidEventPatternException as exc:
        raise UnsupportedPatternError(exc.message) from None
    _check_operators(pattern)


def _check_operators(pattern: dict[str, Any]) -> None:
    for key, value in pattern.items():
        if isinstance(value, dict):
            _check_operators(value)
        elif key == "$or":
            for alternative in value:
                _check_operators(alternative)
        else:
            for matcher in value:
                unknown = set(matcher) - PATTERN_OPERATORS if isinstance(matcher, dict) else set()
                if unknown:
                    raise UnsupportedPatternError(
                        f"event pattern operator {sorted(unknown)} is not supported offline"
                    )


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge pattern matching, by moto's ``EventPattern`` (an empty pattern matches all)."""
    if not pattern:
        return True  # classify's own starts: no need to load moto
    from moto.events.models import EventPattern

    check_pattern(pattern)
    matcher = EventPattern(json.dumps(pattern), pattern)
    return bool(matcher.matches_event(cast(Any, event)))  # moto types the event as a TypedDict


def extract_path(path: str, data: Any) -> Any:
    """Evaluate a simple JSONPath (``$``, ``$.a.b``, ``$.a[0]``) as EventBridge's InputPath does."""
    if path == "$":
        return data
    if not path.startswith("$"):
        raise InvalidInputTransformError(f"path must start with $: {path!r}")
    current = data
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        try:
            current = current[int(index)] if index else current[name]
        except (KeyError, IndexError, TypeError):
            return None
    return current


#: What EventBridge would insert into an InputTemplate unescaped, breaking or changing its JSON.
_UNSAFE_IN_TEMPLATE = re.compile(r'["\\\x00-\x1f]')


def _check_template_values(template: str, values: dict[str, Any]) -> None:
    """Refuse an InputPathsMap value the template uses that EventBridge would not escape."""
    for name, value in values.items():
        if isinstance(value, str) and f"<{name}>" in template and _UNSAFE_IN_TEMPLATE.search(value):
            raise InvalidInputTransformError(
                f"<{name}> is {value!r}: EventBridge inserts InputPathsMap values into the "
                'InputTemplate unescaped, so a ", a \\ or a control character gives the target '
                "invalid JSON or a different string; pass such values with InputPath instead"
            )


def _render_template(template: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    in_string = False
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "\\" and in_string:
            out.append(template[i : i + 2])
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        if ch == "<":
            end = template.find(">", i)
            name = template[i + 1 : end] if end > 0 else ""
            if name in values:
                value = values[name]
                if in_string:
                    text = value if isinstance(value, str) else json.dumps(value)
                    out.append(json.dumps(text)[1:-1])
                else:
                    out.append(json.dumps(value))
                i = end + 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def execution_input(rule: dict[str, Any], event: dict[str, Any], rule_name: str = "rule") -> str:
    """The execution input the rule's target gets for ``event`` (a JSON string)."""
    transformer = rule.get("input_transformer")
    if transformer:
        paths = transformer.get("InputPathsMap") or {}
        values = {name: extract_path(str(p), event) for name, p in paths.items()}
        template = transformer.get("InputTemplate")
        if template is None:
            raise InvalidInputTransformError("InputTransformer has no InputTemplate")
        _check_template_values(str(template), values)
        values["aws.events.event"] = event
        values["aws.events.event.json"] = event
        values["aws.events.rule-name"] = rule_name
        text = _render_template(str(template), values)
    elif rule.get("input") is not None:
        text = str(rule["input"])
    elif rule.get("input_path"):
        text = json.dumps(extract_path(str(rule["input_path"]), event))
    else:
        text = json.dumps(event)
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True)
    except json.JSONDecodeError as exc:
        raise InvalidInputTransformError(f"InputTemplate does not give valid JSON: {exc}") from None
