"""The S3 -> state machine bridge: an upload under the incoming prefix starts an execution.

On AWS, S3 sends an "Object Created" event to EventBridge and the template's rule (a SAM
``EventBridgeRule`` event on the state machine) starts an execution with the rule's input
transformation. Offline, ``Bridge`` (a thread in the sfn server) polls the deployed bucket's
incoming prefix, builds the same EventBridge event for each new object, matches it against the
rule's pattern (with moto's own EventBridge matcher, ``moto.events.models.EventPattern``), applies
``InputTransformer`` / ``InputPath`` / ``Input`` and starts one execution; the EventBridge part
is ``scones.twin.eventbridge`` (re-exported here). An object whose input cannot be built (a key
an ``InputTemplate`` would break, see there) is logged and skipped, as AWS would deliver it to the
rule's dead-letter queue; it does not hold up the others.

Each object (bucket, key, ETag) is started once: what was seen is kept in
``$SCONES_HOME/bridge/seen.txt`` (one JSON array per line, so a key may hold any character,
newlines included), and objects older than the deployment are not started (on AWS a rule only
sees uploads made after it exists).

The bridge follows new objects instead of listing the whole prefix every second: each second it
lists only the keys after the greatest key seen (``StartAfter``: new uploads whose names sort
last, as time-stamped names and ``scones classify``'s uploads mostly do), and the whole prefix
only as often as keeps that listing under ``FULL_LISTING_CPU_SHARE`` of one core (at least
every ``interval``, at most every ``FULL_LISTING_MAX_S`` seconds), which finds the others. Execution names are deterministic
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
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.settings import Settings
from scones.twin.eventbridge import PATTERN_OPERATORS as PATTERN_OPERATORS
from scones.twin.eventbridge import InvalidInputTransformError as InvalidInputTransformError
from scones.twin.eventbridge import S3Object as S3Object
from scones.twin.eventbridge import UnsupportedPatternError as UnsupportedPatternError
from scones.twin.eventbridge import check_pattern as check_pattern
from scones.twin.eventbridge import execution_input as execution_input
from scones.twin.eventbridge import extract_path as extract_path
from scones.twin.eventbridge import matches as matches
from scones.twin.eventbridge import s3_event as s3_event

LOG = logging.getLogger("scones.twin.bridge")

CONFIG_FILE = "config.json"
SEEN_FILE = "seen.txt"
#: Share of one core the full listings of the prefix may take, on average.
FULL_LISTING_CPU_SHARE = 0.05
#: Longest time between two full listings (an upload whose key sorts before the greatest key
#: seen waits at most this long).
FULL_LISTING_MAX_S = 60.0


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


def list_objects(
    s3: Any, bucket: str, prefix: str, start_after: str | None = None
) -> Iterator[S3Object]:
    """Every object under ``prefix`` (paginated); only keys after ``start_after`` if given."""
    paginator = s3.get_paginator("list_objects_v2")
    extra = {"StartAfter": start_after} if start_after else {}
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **extra):
        for item in page.get("Contents", []):
            yield S3Object(
                bucket=bucket,
                key=item["Key"],
                etag=str(item.get("ETag", "")).strip('"'),
                size=int(item.get("Size", 0)),
                last_modified=item["LastModified"],
            )


# --------------------------------------------------------------------------- the thread


Identity = tuple[str, str, str]


def _identity(obj: S3Object) -> Identity:
    return (obj.bucket, obj.key, obj.etag)


def _seen_line(identity: Identity) -> str:
    """One line of ``seen.txt``: a JSON array, so any key (newlines included) stays one line."""
    return json.dumps(list(identity), ensure_ascii=True)


def _parse_seen(line: str) -> Identity | None:
    """A ``seen.txt`` line: a JSON array, or the tab-separated form of earlier versions."""
    if line.startswith("["):
        try:
            bucket, key, etag = json.loads(line)
            return (str(bucket), str(key), str(etag))
        except (ValueError, TypeError):
            return None  # a line cut short by a crash: the object is looked at again
    parts = line.split("\t")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


class Bridge:
    """Polls the deployed bucket's incoming prefix and starts one execution per new object."""

    def __init__(self, settings: Settings, moto_url: str, interval_s: float = 1.0) -> None:
        self._settings = settings
        self._moto_url = moto_url
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[Identity] = set()
        self._seen_loaded = False
        self._last_key: str | None = None  # the greatest key listed so far
        self._last_full = -math.inf  # monotonic time of the last full listing
        self.full_every_s = interval_s  # grows with the cost of a full listing
        self.started = 0
        self.full_listings = 0

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
            for line in path.read_text(encoding="utf-8").splitlines():
                identity = _parse_seen(line) if line else None
                if identity is not None:
                    self._seen.add(identity)
        self._seen_loaded = True

    def _remember(self, identities: Iterable[Identity]) -> None:
        items = [i for i in identities if i not in self._seen]
        if not items:
            return
        folder = bridge_dir(self._settings)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / SEEN_FILE).open("a", encoding="utf-8") as handle:
            handle.write("".join(_seen_line(i) + "\n" for i in items))
        self._seen.update(items)

    def full_listing_due(self) -> bool:
        """Whether the next poll should list the whole prefix (see the module docstring)."""
        return self._last_key is None or time.monotonic() - self._last_full >= self.full_every_s

    def poll_once(self, s3: Any, sfn: Any, full: bool = True) -> int:
        """One pass over the incoming prefix (``full``), or over the keys after the greatest
        key seen; return how many executions were started."""
        config = read_config(self._settings)
        if config is None or not config.rules:
            return 0
        if not self._seen_loaded:
            self._load_seen()
        full = full or self._last_key is None
        cpu = time.thread_time()
        started = 0
        after = None if full else self._last_key
        for obj in list_objects(s3, config.bucket, config.prefix, start_after=after):
            if self._last_key is None or obj.key > self._last_key:
                self._last_key = obj.key
            started += self._consider(sfn, config, obj)
        if full:
            cost = time.thread_time() - cpu
            self._last_full = time.monotonic()
            self.full_listings += 1
            share = cost / FULL_LISTING_CPU_SHARE
            self.full_every_s = min(FULL_LISTING_MAX_S, max(self._interval, share))
        self.started += started
        return started

    def _consider(self, sfn: Any, config: BridgeConfig, obj: S3Object) -> int:
        """Start ``obj``'s execution when it is new and uploaded after the deployment."""
        identity = _identity(obj)
        if identity in self._seen:
            return 0
        new = False
        if obj.last_modified >= config.since:
            try:
                arn, new = start_for_object(sfn, config, obj)
            except InvalidInputTransformError as exc:  # AWS: the dead-letter queue
                LOG.error("bridge: s3://%s/%s not started: %s", obj.bucket, obj.key, exc)
                arn = None
            if new:
                LOG.info("bridge: s3://%s/%s -> %s", obj.bucket, obj.key, arn)
        self._remember([identity])
        return int(new)

    def _run(self) -> None:
        s3, sfn = self._clients()
        failures = 0
        while not self._stop.is_set():
            try:
                self.poll_once(s3, sfn, full=self.full_listing_due())
                failures = 0
            except Exception as exc:  # noqa: BLE001 - S3 not up yet, bucket gone: keep polling
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    LOG.warning("bridge: poll failed (%s: %s)", type(exc).__name__, exc)
            self._stop.wait(self._interval * (1 if failures == 0 else min(10, failures)))


def deployed_since() -> datetime:
    """The time a deployment starts watching uploads (objects older than this are not started)."""
    return datetime.now(tz=UTC).replace(microsecond=0)
