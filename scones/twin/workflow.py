"""``scones invoke`` and ``scones run``: one function, or one execution of the deployed workflow.

``invoke_local`` runs a handler in this process as ``sam local invoke`` would; ``run_execution``
starts one execution of the deployed state machine and waits for it (``describe_outcome`` /
``wait_execution``, also used by ``scones classify``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scones.errors import CommandError
from scones.settings import Settings
from scones.twin.clients import twin_clients, unreachable
from scones.twin.deploy import deployed_overrides, read_deployed


def invoke_local(settings: Settings, logical_id: str, event: Any) -> tuple[Any, bool]:
    """Run one function's handler in-process as ``sam local invoke`` would; (payload, is_error)."""
    from scones.twin import lambda_runtime
    from scones.twin.template import read_app

    overrides = deployed_overrides(settings)  # what `scones deploy --local` deployed
    app = read_app(settings.project_root, region=settings.region, parameter_overrides=overrides)
    spec = app.function(logical_id)
    os.environ.update(settings.aws_env())
    lambda_runtime.apply_environment(spec.environment)
    handler = lambda_runtime.load_handler(spec.handler_file, spec.handler_name, spec.layers)
    context = lambda_runtime.LambdaContext(
        function_name=spec.name,
        memory_limit_in_mb=spec.memory_size,
        timeout_s=spec.timeout,
        region=settings.region,
    )
    result = lambda_runtime.invoke(handler, event, context)
    return result.payload, result.is_error


@dataclass
class ExecutionOutcome:
    """How one execution ended."""

    arn: str
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


def describe_outcome(sfn: Any, arn: str) -> ExecutionOutcome:
    """Describe one execution (RUNNING included)."""
    info = sfn.describe_execution(executionArn=arn)
    output = json.loads(info["output"]) if info.get("output") else None
    return ExecutionOutcome(arn, info["status"], output, info.get("error"), info.get("cause"))


def wait_execution(sfn: Any, arn: str, timeout_s: float, poll_s: float = 0.02) -> ExecutionOutcome:
    """Poll until the execution ends or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = describe_outcome(sfn, arn)
        if outcome.status != "RUNNING":
            return outcome
        if time.monotonic() > deadline:
            raise CommandError(f"execution still running after {timeout_s:.0f}s: {arn}")
        time.sleep(poll_s)
        poll_s = min(0.25, poll_s * 1.5)


def run_execution(settings: Settings, payload: Any, timeout_s: float) -> ExecutionOutcome:
    """Start one execution of the deployed state machine with a unique name and wait for it."""
    from botocore.exceptions import EndpointConnectionError

    deployed = read_deployed(settings)
    (sfn,) = twin_clients(settings, "stepfunctions")
    name = f"run-{datetime.now(tz=UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    try:
        arn = sfn.start_execution(
            stateMachineArn=deployed["state_machine_arn"], name=name, input=json.dumps(payload)
        )["executionArn"]
        return wait_execution(sfn, arn, timeout_s)
    except EndpointConnectionError as exc:
        raise unreachable(exc, settings) from None


def error_message(cause: str | None) -> str | None:
    """The ``errorMessage`` of a Lambda error payload passed on as a Cause, else the cause."""
    if cause and cause.startswith("{"):
        try:
            data = json.loads(cause)
        except json.JSONDecodeError:
            return cause
        if isinstance(data, dict) and isinstance(data.get("errorMessage"), str):
            return data["errorMessage"]
    return cause
