"""Where the console reads from: the offline twin, or an AWS account with the user's credentials.

Both give the same boto3 clients (``stepfunctions``, ``s3``, ``sagemaker``) and the console makes
the same calls on either. For the twin the clients carry the twin's endpoints and local
credentials (``Settings.aws_env()``: ``scones.twin.clients.twin_clients``), and the state
machine, endpoint and capture location come from ``deployed.json``. On AWS they come from the
user's session, ``--state-machine`` (or ListStateMachines) and the endpoint's DescribeEndpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.settings import Settings

DEFAULT_ENDPOINT = "scones-image-classifier"


@dataclass
class Source:
    """What one console serves: clients, the state machine(s), the endpoint and its capture."""

    mode: str  # "twin" or "aws"
    sfn: Any
    s3: Any
    sagemaker: Any = None
    state_machine_arn: str | None = None  # the default one (None: the first listed)
    endpoint_name: str | None = None
    capture_uri: str | None = None  # s3://bucket/prefix the endpoint captures to
    classes: list[str] = field(default_factory=list)
    report: Path | None = None  # the latest `scones monitor` report.html
    where: str = ""  # a few words for the page header

    def class_name(self, label: Any) -> str:
        """``label`` with its class name when known (``1 (motorcycle)``)."""
        if isinstance(label, bool) or not isinstance(label, int):
            return "" if label is None else str(label)
        if 0 <= label < len(self.classes):
            return f"{label} ({self.classes[label]})"
        return str(label)

    def state_machines(self) -> list[dict[str, Any]]:
        """Every state machine of the account and region (ListStateMachines, all pages)."""
        found: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("list_state_machines").paginate():
            found.extend(page.get("stateMachines", []))
        return found

    def capture_location(self) -> tuple[str | None, str]:
        """The endpoint's capture URI, or None and why it is unknown."""
        if self.capture_uri:
            return self.capture_uri, ""
        if self.sagemaker is None or not self.endpoint_name:
            return None, "no endpoint named (use --endpoint NAME)"
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            info = self.sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
        except (ClientError, BotoCoreError) as exc:
            return None, f"DescribeEndpoint {self.endpoint_name}: {exc}"
        config = info.get("DataCaptureConfig") or {}
        uri = config.get("DestinationS3Uri")
        if not uri or not config.get("EnableCapture", True):
            return None, f"endpoint {self.endpoint_name} has no Data Capture"
        self.capture_uri = str(uri)
        return self.capture_uri, ""


def monitor_report(settings: Settings) -> Path:
    """Where ``make demo`` and the docs put the latest ``scones monitor`` report."""
    return settings.home / "monitor" / "report.html"


def _twin_classes(settings: Settings, endpoint: str | None) -> list[str]:
    path = settings.endpoints_dir / (endpoint or "") / "model" / "classes.json"
    try:
        classes = json.loads(path.read_text(encoding="utf-8")).get("classes")
    except (OSError, ValueError, AttributeError):
        return []
    return [str(c) for c in classes] if isinstance(classes, list) else []


def twin_source(settings: Settings) -> Source:
    """The offline twin's deployment (``CommandError`` when nothing is deployed)."""
    from scones.twin.clients import twin_clients
    from scones.twin.deploy import read_deployed

    deployed = read_deployed(settings)
    sfn, s3 = twin_clients(settings, "stepfunctions", "s3")
    endpoint = deployed.get("endpoint_name")
    return Source(
        mode="twin",
        sfn=sfn,
        s3=s3,
        state_machine_arn=deployed.get("state_machine_arn"),
        endpoint_name=endpoint,
        capture_uri=deployed.get("capture_uri"),
        classes=_twin_classes(settings, endpoint),
        report=monitor_report(settings),
        where=f"offline twin ({settings.moto_url}, S3 {settings.s3_url})",
    )


def aws_source(
    settings: Settings,
    *,
    state_machine: str | None = None,
    endpoint: str | None = DEFAULT_ENDPOINT,
    classes: list[str] | None = None,
    session: Any = None,
) -> Source:
    """An AWS account through the user's own boto3 session (profile, variables, SSO...)."""
    import boto3

    session = session or boto3.session.Session()
    if not session.region_name:
        raise CommandError(
            "no AWS region: set AWS_DEFAULT_REGION or a profile's region (or use the twin)"
        )
    sfn = session.client("stepfunctions")
    source = Source(
        mode="aws",
        sfn=sfn,
        s3=session.client("s3"),
        sagemaker=session.client("sagemaker"),
        state_machine_arn=state_machine,
        endpoint_name=endpoint,
        classes=list(classes or []),
        report=monitor_report(settings),
        where=f"AWS account, region {session.region_name}",
    )
    if state_machine is None:
        machines = source.state_machines()  # fails early on missing credentials
        named = [m for m in machines if "ImageClassification" in m.get("name", "")]
        pick = named or machines
        source.state_machine_arn = pick[0]["stateMachineArn"] if pick else None
    return source
