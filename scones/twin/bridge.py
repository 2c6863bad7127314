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
                try:
                    arn, new = start_for_object(sfn, config, obj)
                except InvalidInputTransformError as exc:  # AWS: the dead-letter queue
                    LOG.error("bridge: s3://%s/%s not started: %s", obj.bucket, obj.key, exc)
                    arn, new = None, False
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
