"""Deploy the sample app into the in-process moto server and run executions (tests/twin)."""

from __future__ import annotations

import json
import time
from typing import Any

from scones.settings import Settings
from scones.twin import deploy
from scones.twin.clients import twin_clients
from scones.twin.template import read_app


def deploy_sample(settings: Settings) -> tuple[Any, Any, dict[str, str], str]:
    """Deploy the app at ``settings.project_root`` with the real deploy code; return the Lambda
    and Step Functions clients, the function ARNs by logical id and the state machine ARN."""
    app = read_app(settings.project_root, region=settings.region)
    lam, sfn, iam = twin_clients(settings, "lambda", "stepfunctions", "iam")
    role = deploy.ensure_role(iam, "test-role")
    arns = {lid: deploy.deploy_function(lam, spec, role) for lid, spec in app.functions.items()}
    machine = deploy.deploy_state_machine(sfn, app.state_machine)
    return lam, sfn, arns, machine


def wait(sfn: Any, arn: str) -> dict[str, Any]:
    """DescribeExecution once the execution has ended (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = sfn.describe_execution(executionArn=arn)
        if info["status"] != "RUNNING":
            return dict(info)
        time.sleep(0.02)
    raise AssertionError(f"{arn} still running")


def start(sfn: Any, machine: str, payload: dict[str, Any], name: str) -> str:
    """Start an execution; return its ARN."""
    out = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))
    return str(out["executionArn"])


def run(sfn: Any, machine: str, payload: dict[str, Any], name: str) -> dict[str, Any]:
    """Start an execution and wait for its end."""
    return wait(sfn, start(sfn, machine, payload, name))
