"""The S3 -> state machine bridge: an upload under the incoming prefix starts an execution.

On AWS, S3 sends an "Object Created" event to EventBridge and the template's rule (a SAM
``EventBridgeRule`` event on the state machine) starts an execution with the rule's input
transformation. Offline, ``Bridge`` (a thread in the sfn server) polls the deployed bucket's
incoming prefix, builds the same EventBridge event for each new object, matches it against the
rule's pattern (with moto's own EventBridge matcher, ``moto.events.models.EventPattern``), applies
``InputTransformer`` / ``InputPath`` / ``Input`` and starts one execution.

Each object (bucket, key, ETag) is started once: what was seen is kept in
``$SCONES_HOME/bridge/seen.txt``, and objects older than the deployment are not started (on AWS
a rule only sees uploads made after it exists). Execution names are deterministic
(``execution_name``) and the event is built from the object's listing alone, so ``scones
classify`` starts the very same execution with the same name and input: whoever comes first
starts it, the other gets the existing execution (Step Functions' name idempotency), and no
image runs twice. Turn the bridge off with ``SCONES_BRIDGE=0`` (or ``--no-bridge``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from scones.settings import Settings

LOG = logging.getLogger("scones.twin.bridge")

CONFIG_FILE = "config.json"
SEEN_FILE = "seen.txt"


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


@dataclass(frozen=True)
class BridgeConfig:
    """What ``scones deploy --local`` tells the bridge (``$SCONES_HOME/bridge/config.json``)."""

    bucket: str
    prefix: str
    state_machine_arn: str
    region: str
    rules: list[dict[str, Any]]
    since: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "state_machine_arn": self.state_machine_arn,
            "region": self.region,
            "rules": self.rules,
            "since": self.since.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BridgeConfig:
        return cls(
            bucket=data["bucket"],
            prefix=data["prefix"],
            state_machine_arn=data["state_machine_arn"],
            region=data.get("region", "us-east-1"),
            rules=list(data.get("rules") or []),
            since=datetime.fromisoformat(data["since"]),
        )


def bridge_dir(settings: Settings) -> Path:
    """The bridge's state folder under ``$SCONES_HOME``."""
    return settings.home / "bridge"


def write_config(settings: Settings, config: BridgeConfig) -> Path:
    """Write the bridge configuration atomically (the running bridge picks it up)."""
    folder = bridge_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFIG_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(config.to_json(), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_config(settings: Settings) -> BridgeConfig | None:
    """The deployed bridge configuration, or None before the first deploy."""
    path = bridge_dir(settings) / CONFIG_FILE
    try:
        return BridgeConfig.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


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
        values["aws.events.event"] = event
        values["aws.events.event.json"] = event
        values["aws.events.rule-name"] = rule_name
        template = transformer.get("InputTemplate")
        if template is None:
            raise InvalidInputTransformError("InputTransformer has no InputTemplate")
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


def execution_name(obj: S3Object) -> str:
    """A valid, deterministic execution name for one object version (at most 80 characters)."""
    digest = hashlib.sha256(f"{obj.bucket}/{obj.key}@{obj.etag}".encode()).hexdigest()[:24]
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", obj.key.rsplit("/", 1)[-1])[:50]
    return f"{stem}-{digest}"


def start_for_object(
    sfn: Any, config: BridgeConfig, obj: S3Object, name_suffix: str = ""
) -> tuple[str | None, bool]:
    """Start (or find) the execution for ``obj``; return (execution ARN or None, newly started).

    None means no rule matches the object. An existing execution of the same name (started by
    the bridge or ``scones classify``) is returned, not started again. A ``name_suffix`` gives a
    fresh name, so the object runs again.
    """
    event = s3_event(obj, config.region)
    for index, rule in enumerate(config.rules):
        if not matches(rule.get("pattern") or {}, event):
            continue
        payload = execution_input(rule, event, str(rule.get("name") or f"rule{index}"))
        name = execution_name(obj)
        if name_suffix:
            name = f"{name[: 79 - len(name_suffix)]}-{name_suffix}"
        try:
            arn = sfn.start_execution(
                stateMachineArn=config.state_machine_arn, name=name, input=payload
            )["executionArn"]
            return arn, True
        except sfn.exceptions.ExecutionAlreadyExists:
            machine = config.state_machine_arn.split(":stateMachine:")
            return f"{machine[0]}:execution:{machine[1]}:{name}", False
    return None, False


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[S3Object]:
    """Every object under ``prefix`` (paginated)."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield S3Object(
                bucket=bucket,
                key=item["Key"],
                etag=str(item.get("ETag", "")).strip('"'),
                size=int(item.get("Size", 0)),
                last_modified=item["LastModified"],
            )


# --------------------------------------------------------------------------- the thread


def _identity(obj: S3Object) -> str:
    return f"{obj.bucket}\t{obj.key}\t{obj.etag}"


class Bridge:
    """Polls the deployed bucket's incoming prefix and starts one execution per new object."""

    def __init__(self, settings: Settings, moto_url: str, interval_s: float = 1.0) -> None:
        self._settings = settings
        self._moto_url = moto_url
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[str] = set()
        self._seen_loaded = False
        self.started = 0

    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="scones-bridge", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _clients(self) -> tuple[Any, Any]:
        from scones.twin.clients import twin_clients

        s3, sfn = twin_clients(self._settings, "s3", "stepfunctions", moto_url=self._moto_url)
        return s3, sfn

    def _load_seen(self) -> None:
        path = bridge_dir(self._settings) / SEEN_FILE
        with contextlib.suppress(FileNotFoundError):
            self._seen.update(
                line for line in path.read_text(encoding="utf-8").splitlines() if line
            )
        self._seen_loaded = True

    def _remember(self, identities: Iterable[str]) -> None:
        items = [i for i in identities if i not in self._seen]
        if not items:
            return
        folder = bridge_dir(self._settings)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / SEEN_FILE).open("a", encoding="utf-8") as handle:
            handle.write("".join(i + "\n" for i in items))
        self._seen.update(items)

    def poll_once(self, s3: Any, sfn: Any) -> int:
        """One pass over the incoming prefix; return how many executions were started."""
        config = read_config(self._settings)
        if config is None or not config.rules:
            return 0
        if not self._seen_loaded:
            self._load_seen()
        started = 0
        for obj in list_objects(s3, config.bucket, config.prefix):
            identity = _identity(obj)
            if identity in self._seen:
                continue
            if obj.last_modified >= config.since:
                arn, new = start_for_object(sfn, config, obj)
                if new:
                    started += 1
                    LOG.info("bridge: s3://%s/%s -> %s", obj.bucket, obj.key, arn)
            self._remember([identity])
        self.started += started
        return started

    def _run(self) -> None:
        s3, sfn = self._clients()
        failures = 0
        while not self._stop.is_set():
            try:
                self.poll_once(s3, sfn)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - S3 not up yet, bucket gone: keep polling
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    LOG.warning("bridge: poll failed (%s: %s)", type(exc).__name__, exc)
            self._stop.wait(self._interval * (1 if failures == 0 else min(10, failures)))


def deployed_since() -> datetime:
    """The time a deployment starts watching uploads (objects older than this are not started)."""
    return datetime.now(tz=UTC).replace(microsecond=0)
