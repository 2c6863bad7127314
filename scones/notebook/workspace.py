"""Step 1 of the walkthrough: where the workflow runs (the offline twin or AWS), and the settings
that point every AWS client in the kernel at it (``scones env``, applied to ``os.environ``).

``open_workspace("twin")`` starts the twin's services that are not running (``scones up``) and
applies ``scones env``; ``open_workspace("aws")`` reads the caller's identity and the deployed
stack's outputs. The ``Workspace`` it returns is what every later step takes: its clients, its
working folder, when it started (so monitoring and cost look at this notebook's runs only), and
the billed resources it created (for the clean-up cell).
"""

from __future__ import annotations

import os
import re
import shlex
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.notebook import display
from scones.settings import Settings

TARGETS = ("twin", "aws")
_SECRET = re.compile(r"SECRET|TOKEN|PASSWORD", re.IGNORECASE)


@dataclass
class Workspace:
    """Where this notebook's workflow runs, and what it did there."""

    target: str  # "twin" or "aws"
    settings: Settings
    workdir: Path
    run_id: str
    started: datetime  # UTC, whole seconds: monitoring and cost read from here on
    region: str
    stack: str = "scones"  # aws: the deployed SAM stack
    bucket: str | None = None  # aws: the bucket for data, code, models and Data Capture
    prefix: str = "scones"  # aws: the key prefix in that bucket
    role: str | None = None  # aws: the SageMaker execution role ARN
    services: list[Any] = field(default_factory=list)  # twin: ServiceStatus rows
    identity: dict[str, str] = field(default_factory=dict)  # aws: GetCallerIdentity
    stack_outputs: dict[str, str] = field(default_factory=dict)  # aws
    environment: dict[str, str] = field(default_factory=dict)  # what was applied to os.environ
    endpoint_calls: int = 0  # invocations this notebook caused (for the monitoring step)
    executions: int = 0  # executions this notebook started (numbers their names)
    billed: list[str] = field(default_factory=list)  # aws: billed resources created, in order
    uploads: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key) put by this run
    training_seconds: float | None = None  # aws: BillableTimeInSeconds of the training job
    model_data: str | None = None  # aws: s3://.../model.tar.gz the training job wrote
    deployment: Any = None  # scones.notebook.workflow.Deployment, once deployed
    classes: list[str] = field(default_factory=list)  # the model's class names, once trained
    clients: dict[str, Any] = field(default_factory=dict, repr=False)  # boto3, one per service

    @property
    def twin(self) -> bool:
        """Whether this runs against the offline twin."""
        return self.target == "twin"

    def client(self, service: str) -> Any:
        """A boto3 client (made once per service, again after the environment changes): the
        applied environment decides where it goes."""
        if service not in self.clients:
            import boto3

            session = boto3.session.Session(region_name=self.region)
            self.clients[service] = session.client(service)
        return self.clients[service]

    def note_billed(self, what: str) -> None:
        """Record a billed resource this notebook created (shown again by the clean-up cell)."""
        if not self.twin:
            self.billed.append(what)

    def _repr_html_(self) -> str:
        title = (
            f"offline twin in {self.settings.home}"
            if self.twin
            else f"AWS account {self.identity.get('Account', '?')}, region {self.region}"
        )
        parts = [
            display.heading(f"target: {self.target} ({title}); run {self.run_id}"),
            f"<p>working folder <code>{display.esc(self.workdir)}</code>; this run's executions"
            f" and captures are those after {display.esc(self.started.isoformat())}</p>",
        ]
        if self.services:
            rows = [
                [
                    s.title,
                    "running" if s.running else "stopped",
                    s.pid or "-",
                    s.url,
                    f"{s.rss_bytes / 2**20:.0f} MiB" if s.rss_bytes else "-",
                    "yes" if s.healthy else "no",
                ]
                for s in self.services
            ]
            header = ["service", "state", "pid", "url", "memory", "answers"]
            parts.append(display.table(rows, header, what="twin-services"))
        if self.identity:
            parts.append(display.table(self.identity.items(), ["identity", ""], what="identity"))
        if self.stack_outputs:
            outputs = sorted(self.stack_outputs.items())
            parts.append(display.table(outputs, [f"stack {self.stack} output", ""], what="stack"))
        if self.environment:
            parts.append(display.heading("applied to os.environ (what `scones env` prints)"))
            parts.append(env_table(self.environment))
        return "".join(parts)


def env_table(environment: dict[str, str]) -> str:
    """The variables as a table, secrets masked."""
    rows = [(k, "****" if _SECRET.search(k) else v) for k, v in environment.items()]
    return display.table(rows, ["variable", "value"], what="environment")


def _aws_region() -> str:
    """The region of the standard AWS settings (profile or ``AWS_*``)."""
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise CommandError(
            "no AWS region: set AWS_REGION in the parameters cell or AWS_DEFAULT_REGION"
        )
    return str(region)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _run_id(started: datetime) -> str:
    return f"nb-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def twin_environment(settings: Settings) -> dict[str, str]:
    """What ``scones env`` exports for ``settings``: the AWS endpoints and credentials, plus
    ``SCONES_BUCKET``, ``SCONES_STATE_MACHINE_ARN`` and ``SCONES_ENDPOINT_NAME`` once deployed."""
    from scones.twin.services import env_lines

    found: dict[str, str] = {}
    for line in env_lines(settings):
        if line.startswith("export "):
            name, _, value = shlex.split(line)[1].partition("=")
            found[name] = value
    return found


def apply_environment(values: dict[str, str]) -> dict[str, str]:
    """Put ``values`` into ``os.environ`` (boto3's cached default session is dropped)."""
    import boto3

    os.environ.update(values)
    boto3.DEFAULT_SESSION = None
    return dict(values)


def apply_twin_env(workspace: Workspace) -> dict[str, str]:
    """``eval "$(scones env)"`` inside the kernel; returns (and records) what was set."""
    workspace.environment = apply_environment(twin_environment(workspace.settings))
    workspace.clients.clear()
    return workspace.environment


def open_workspace(
    target: str = "twin",
    *,
    workdir: str | Path | None = None,
    start_twin: bool = True,
    stack: str = "scones",
    bucket: str | None = None,
    prefix: str = "scones",
    role: str | None = None,
    region: str | None = None,
) -> Workspace:
    """Open the workspace for ``target`` ("twin" or "aws") and point the kernel's AWS clients at it.

    twin: the settings come from the environment (``SCONES_HOME``, ``SCONES_*_PORT``); services
    not running are started (``start_twin``), then ``scones env`` is applied to ``os.environ``.
    aws: the standard AWS settings (profile, ``AWS_*``); ``bucket`` and ``role`` are what
    ``scones sagemaker`` needs (``role`` defaults to ``$SCONES_SAGEMAKER_ROLE``).
    ``workdir`` defaults to ``$SCONES_HOME/notebook``.
    """
    if target not in TARGETS:
        raise CommandError(f"TARGET must be one of {', '.join(TARGETS)}, not {target!r}")
    settings = Settings.from_env()
    started = _now()
    folder = Path(workdir) if workdir else settings.home / "notebook"
    folder.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(
        target=target,
        settings=settings,
        workdir=folder.resolve(),
        run_id=_run_id(started),
        started=started,
        region=region or (settings.region if target == "twin" else _aws_region()),
        stack=stack,
        bucket=bucket,
        prefix=prefix,
        role=role or os.environ.get("SCONES_SAGEMAKER_ROLE") or None,
    )
    if target == "twin":
        _open_twin(workspace, start_twin)
    else:
        from scones.notebook.aws import open_aws

        open_aws(workspace)
    return workspace


def _open_twin(workspace: Workspace, start_twin: bool) -> None:
    from scones.twin import services

    if start_twin:
        messages: list[str] = []
        missing = services.up(workspace.settings, out=messages.append)
        if missing:
            raise CommandError("; ".join(missing))
    apply_twin_env(workspace)
    workspace.services = services.status(workspace.settings)
    down = [s.title for s in workspace.services if not (s.running and s.healthy)]
    if down:
        raise CommandError(
            f"the twin is not fully up ({', '.join(down)}): start it with `scones up`"
            f" (logs in {workspace.settings.home / 'logs'})"
        )
