"""The project's state machine in moto's interpreter, run through the twin's real binding and
deploy code, for the four canonical executions the graph is checked on (tests/graph).

Lambda tasks run our handlers in-process (``scones.twin.moto_binding``), the endpoint is moto's
SageMaker Runtime with queued answers; one execution has the endpoint down for a moment.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto_helpers import queue_endpoint_results

PROJECT = Path(__file__).resolve().parents[2]
BUCKET = "scones-images-graph-test"


def ascii_gif(width: int) -> bytes:
    """A real 1-pixel GIF whose bytes are ASCII (moto's SageMaker Runtime decodes bodies as
    UTF-8), with logical screen width ``width`` (1..127): moto answers a body it has seen with
    the same queued result, so each execution gets its own image."""
    return (
        b"GIF89a" + bytes([width]) + b"\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00"
        b"\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


@dataclass
class Run:
    """One finished execution: DescribeExecution and its full history."""

    describe: dict[str, Any]
    events: list[dict[str, Any]]


@dataclass
class Workflow:
    """The deployed state machine in the running moto mock."""

    sfn: Any
    machine_arn: str
    definition: str
    runs: dict[str, Run] = field(default_factory=dict)

    def run(self, name: str, payload: Any) -> Run:
        """Start execution ``name`` and wait for its end (30 s at most)."""
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine_arn, name=name, input=json.dumps(payload)
        )["executionArn"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)
                run = Run(dict(described), list(events["events"]))
                self.runs[name] = run
                return run
            time.sleep(0.02)
        raise AssertionError(f"{name} did not finish in 30 s")


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@contextmanager
def deployed_workflow(tmp: Path) -> Iterator[Workflow]:
    """The project's app deployed by the twin's deploy code into moto (mock_aws), Lambda bound
    to our handlers; nothing from the developer's AWS setup or a running twin is used."""
    from moto import mock_aws

    from scones.twin import deploy, lambda_runtime, moto_binding
    from scones.twin.template import read_app

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")):
                patch.delenv(name)
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        patch.setenv("AWS_CONFIG_FILE", str(tmp / "no-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-credentials"))
        config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        with mock_aws(config=config):
            moto_binding.install()
            lambda_runtime.unload_handlers()
            app = read_app(PROJECT)
            lam, sfn, iam, s3 = (boto3.client(n) for n in ("lambda", "stepfunctions", "iam", "s3"))
            role = deploy.ensure_role(iam, "scones-graph-test")
            for spec in app.functions.values():
                deploy.deploy_function(lam, spec, role)
            machine = deploy.deploy_state_machine(sfn, app.state_machine)
            s3.create_bucket(Bucket=BUCKET)
            try:
                yield Workflow(sfn, machine, app.state_machine.definition)
            finally:
                lambda_runtime.unload_handlers()


def classify_module() -> Any:
    """The ClassifyImage handler module as the binding loaded it."""
    from scones.twin import lambda_runtime
    from scones.twin.template import read_app

    spec = read_app(PROJECT).functions["ClassifyImageFunction"]
    handler = lambda_runtime.load_handler(spec.handler_file, spec.handler_name, spec.layers)
    return sys.modules[handler.__module__]


class EndpointDownOnce:
    """A SageMaker Runtime client that fails with ModelNotReadyException (transient) until
    ``failures`` calls have failed, then answers through the real (moto) client."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures = real, failures

    def invoke_endpoint(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        if self.failures > 0:
            self.failures -= 1
            raise ClientError(
                {
                    "Error": {"Code": "ModelNotReadyException", "Message": "endpoint restarting"},
                    "ResponseMetadata": {"HTTPStatusCode": 429},
                },
                "InvokeEndpoint",
            )
        return self.real.invoke_endpoint(**kwargs)


def run_canonical(workflow: Workflow, patch: pytest.MonkeyPatch) -> dict[str, Run]:
    """The four canonical executions: success, low confidence, not an image, retried endpoint."""
    s3 = boto3.client("s3")
    for index, key in enumerate(("ok.gif", "unsure.gif", "flaky.gif"), start=1):
        s3.put_object(Bucket=BUCKET, Key=f"incoming/{key}", Body=ascii_gif(index))
    s3.put_object(Bucket=BUCKET, Key="incoming/notes.txt", Body=b"not an image")

    def image(key: str) -> dict[str, str]:
        return {"s3_bucket": BUCKET, "s3_key": f"incoming/{key}"}

    queue_endpoint_results("[0.97, 0.03]")
    workflow.run("success", image("ok.gif"))
    queue_endpoint_results("[0.6, 0.4]")
    workflow.run("low-confidence", image("unsure.gif"))
    workflow.run("not-an-image", image("notes.txt"))
    module = classify_module()
    real = module.runtime_client
    down = EndpointDownOnce(real(), failures=module.MAX_ATTEMPTS)  # one whole invocation
    patch.setattr(module, "runtime_client", lambda read_timeout_s=65: down)
    patch.setattr(module, "backoff_s", lambda attempt, jitter: 0.0)  # no pauses inside it
    queue_endpoint_results("[0.97, 0.03]")
    workflow.run("endpoint-retried", image("flaky.gif"))
    return workflow.runs
