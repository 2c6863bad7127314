"""Steps 4 to 6 of the walkthrough: the endpoint, the three Lambdas, the state machine.

The same calls work on the twin and on AWS: after ``open_workspace`` the kernel's environment
points boto3 at the target. Only two things differ: deploying (``deploy_twin`` here, the
SageMaker endpoint + the stack's outputs in ``scones.notebook.aws``) and invoking one Lambda
(on the twin the handler runs in this process as ``scones invoke`` / ``sam local invoke`` would;
on AWS it is Lambda's Invoke).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.notebook import display
from scones.notebook.workspace import Workspace, apply_twin_env

REVIEW_ERROR = "LowConfidenceError"
ENDPOINT_FUNCTION = "ClassifyImageFunction"  # the function that calls the endpoint


@dataclass
class Deployment:
    """What runs the workflow: the state machine, its functions, the bucket and the endpoint."""

    where: str
    stack_name: str
    bucket: str
    incoming_prefix: str
    state_machine_arn: str
    endpoint_name: str
    capture_uri: str
    functions: dict[str, str]
    model: str
    deployed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def _repr_html_(self) -> str:
        rows: list[list[str]] = [
            ["state machine", self.state_machine_arn],
            *([f"function {k}", v] for k, v in self.functions.items()),
            [
                "bucket",
                f"s3://{self.bucket} (uploads under {self.incoming_prefix} start executions)",
            ],
            ["endpoint", self.endpoint_name],
            ["Data Capture", f"{self.capture_uri} (100% of requests)"],
            ["model", self.model],
        ]
        return display.heading(f"deployed: {self.where}") + display.table(
            rows, ["resource", ""], what="deployment"
        )


def deploy_twin(
    workspace: Workspace, model_tar: Path, parameter_overrides: dict[str, str] | None = None
) -> Deployment:
    """``scones deploy --local --model MODEL``: template.yaml, samconfig.toml and the model."""
    from scones.twin.deploy import deploy_local

    found = deploy_local(workspace.settings, Path(model_tar), parameter_overrides)
    apply_twin_env(workspace)  # now with SCONES_BUCKET, SCONES_STATE_MACHINE_ARN, ...
    workspace.deployment = Deployment(
        where=f"offline twin ({workspace.settings.home})",
        stack_name=found["stack_name"],
        bucket=found["bucket"],
        incoming_prefix=found["incoming_prefix"],
        state_machine_arn=found["state_machine_arn"],
        endpoint_name=found["endpoint_name"],
        capture_uri=found["capture_uri"],
        functions=dict(found["functions"]),
        model=str(model_tar),
    )
    return workspace.deployment  # type: ignore[no-any-return]


def deployment(workspace: Workspace) -> Deployment:
    """The workspace's deployment, or an error saying to run the deploy cell first."""
    if workspace.deployment is None:
        raise CommandError("nothing deployed yet in this notebook: run the deploy cell (step 4)")
    return workspace.deployment  # type: ignore[no-any-return]


@dataclass
class Prediction:
    """One endpoint invocation: what was sent and the probabilities that came back."""

    endpoint: str
    png: bytes = field(repr=False)
    probabilities: list[float]
    classes: list[str]
    variant: str
    milliseconds: float

    @property
    def label(self) -> str:
        """The class with the highest probability."""
        return self.classes[self.probabilities.index(max(self.probabilities))]

    def _repr_html_(self) -> str:
        rows = [[c, f"{p:.4f}"] for c, p in zip(self.classes, self.probabilities, strict=True)]
        return (
            display.heading(
                f"InvokeEndpoint {self.endpoint} (variant {self.variant}): {self.label},"
                f" {self.milliseconds:.0f} ms round trip"
            )
            + display.png_img(self.png, "the image sent", width=96, what="invocation")
            + display.table(rows, ["class", "probability"], what="probabilities")
        )


def invoke_endpoint(workspace: Workspace, png: bytes) -> Prediction:
    """``sagemaker-runtime`` InvokeEndpoint with a PNG, as the ClassifyImage Lambda calls it."""
    deployed = deployment(workspace)
    runtime = workspace.client("sagemaker-runtime")
    started = time.perf_counter()
    answer = runtime.invoke_endpoint(
        EndpointName=deployed.endpoint_name,
        ContentType="image/png",
        Accept="application/json",
        Body=png,
    )
    body = answer["Body"].read()
    seconds = time.perf_counter() - started
    workspace.endpoint_calls += 1
    probabilities = [float(p) for p in json.loads(body)]
    classes = workspace.classes or [f"class {i}" for i in range(len(probabilities))]
    variant = str(answer.get("InvokedProductionVariant", "?"))
    return Prediction(deployed.endpoint_name, png, probabilities, classes, variant, seconds * 1000)


def put_image(workspace: Workspace, name: str, png: bytes) -> str:
    """Upload ``png`` to the deployment's bucket under ``notebook/<run id>/`` (not the incoming
    prefix: nothing starts on its own); return the key."""
    deployed = deployment(workspace)
    key = f"notebook/{workspace.run_id}/{name}"
    workspace.client("s3").put_object(Bucket=deployed.bucket, Key=key, Body=png)
    workspace.uploads.append((deployed.bucket, key))
    return key


def load_event(workspace: Workspace, name: str, **changes: Any) -> dict[str, Any]:
    """``events/<name>.json`` from the project, with ``changes`` applied (e.g. the bucket)."""
    path = workspace.settings.project_root / "events" / f"{name}.json"
    event = dict(json.loads(path.read_text(encoding="utf-8")))
    event.update(changes)
    return event


@dataclass
class LambdaResult:
    """One function invoked with one event, as ``sam local invoke`` shows it."""

    logical_id: str
    event_name: str
    event: Any
    payload: Any
    is_error: bool
    milliseconds: float
    how: str

    def _repr_html_(self) -> str:
        from scones.twin.report import redact

        cli = f"scones invoke {self.logical_id} -e events/{self.event_name}.json"
        state = "error" if self.is_error else "result"
        shown = (
            {
                "errorType": self.payload.get("errorType"),
                "errorMessage": self.payload.get("errorMessage"),
            }
            if self.is_error and isinstance(self.payload, dict)
            else redact(self.payload)
        )
        color = "#b00" if self.is_error else "#070"
        panes = [
            [display.json_block(redact(self.event)), display.json_block(shown)],
        ]
        header = [
            "event",
            f'<span data-scones="lambda-{state}" style="color:{color}">{state}</span>',
        ]
        return (
            display.heading(
                f"{self.logical_id} <- events/{self.event_name}.json ({self.how},"
                f" {self.milliseconds:.0f} ms)"
            )  # fmt: skip
            + f"<p><small>the same from a shell: <code>{display.esc(cli)}</code>; with Docker:"
            f" <code>sam local invoke {display.esc(self.logical_id)} -e events/"
            f"{display.esc(self.event_name)}.json</code></small></p>"
            + display.table(panes, header, what="lambda", raw_columns=[0, 1], raw_header=True)
        )


def invoke_function(
    workspace: Workspace, logical_id: str, event_name: str, **changes: Any
) -> LambdaResult:
    """Invoke one function of ``template.yaml`` with ``events/<event_name>.json`` (+ ``changes``).

    twin: the handler runs in this process with the function's environment (``scones invoke``).
    aws: Lambda's Invoke of the deployed function."""
    event = load_event(workspace, event_name, **changes)
    started = time.perf_counter()
    if workspace.twin:
        from scones.twin.workflow import invoke_local

        payload, is_error = invoke_local(workspace.settings, logical_id, event)
        how = "in this process, as `sam local invoke` would"
    else:
        arn = deployment(workspace).functions.get(logical_id)
        if not arn:
            raise CommandError(f"the stack has no output for {logical_id}")
        answer = workspace.client("lambda").invoke(FunctionName=arn, Payload=json.dumps(event))
        payload = json.loads(answer["Payload"].read() or b"null")
        is_error = bool(answer.get("FunctionError"))
        how = f"Lambda Invoke of {arn}"
    if logical_id == ENDPOINT_FUNCTION and not is_error:
        workspace.endpoint_calls += 1  # its invocation is captured like any other
    seconds = time.perf_counter() - started
    return LambdaResult(logical_id, event_name, event, payload, is_error, seconds * 1000, how)


@dataclass
class ExecutionRun:
    """One execution of the state machine, with its history drawn by ``scones.graph``."""

    name: str
    key: str
    status: str
    output: Any
    error: str | None
    cause: str | None
    classes: list[str]
    svg: str = field(repr=False)
    seconds: float
    events: list[dict[str, Any]] = field(repr=False, default_factory=list)

    def _repr_html_(self) -> str:
        from scones.twin.workflow import error_message

        rows: list[list[str]] = [
            ["execution", self.name],
            ["image", self.key],
            ["status", self.status],
        ]
        if self.output and "label" in self.output:
            label = int(self.output["label"])
            name = self.classes[label] if label < len(self.classes) else str(label)
            rows.append(["label", f"{name} (confidence {float(self.output['confidence']):.4f})"])
        if self.error:
            rows.append(["error", f"{self.error}: {error_message(self.cause)}"])
        rows.append(["events in the history", str(len(self.events))])
        svg = re.sub(r"^<\?xml[^>]*\?>", "", self.svg.strip())
        return (
            display.heading(
                f"{self.status}{f' ({self.error})' if self.error else ''} in {self.seconds:.1f} s"
            )
            + display.table(rows, what="execution")
            + f'<div data-scones="graph" style="max-width:960px">{svg}</div>'
        )


def _name(workspace: Workspace, stem: str) -> str:
    """A unique execution name: the run id, a running number, the image's stem."""
    workspace.executions += 1
    name = f"{workspace.run_id}-{workspace.executions:04d}-{stem}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:80]


def _start(workspace: Workspace, sfn: Any, key: str, name: str) -> str:
    deployed = deployment(workspace)
    payload = {"s3_bucket": deployed.bucket, "s3_key": key}
    answer = sfn.start_execution(
        stateMachineArn=deployed.state_machine_arn, name=name, input=json.dumps(payload)
    )
    return str(answer["executionArn"])


def _reached_endpoint(outcome: Any) -> bool:
    return outcome.status == "SUCCEEDED" or outcome.error == REVIEW_ERROR


def run_image(workspace: Workspace, name: str, png: bytes, timeout_s: float = 300) -> ExecutionRun:
    """Upload one image, run one execution on it, wait, and draw its history."""
    from scones.executions import execution_history
    from scones.graph.export import title_for
    from scones.graph.render import render_svg
    from scones.twin.workflow import wait_execution

    key = put_image(workspace, name, png)
    sfn = workspace.client("stepfunctions")
    started = time.perf_counter()
    arn = _start(workspace, sfn, key, _name(workspace, Path(name).stem))
    outcome = wait_execution(sfn, arn, timeout_s)
    seconds = time.perf_counter() - started
    workspace.endpoint_calls += _reached_endpoint(outcome)
    events = execution_history(sfn, arn)
    machine = sfn.describe_state_machine(stateMachineArn=deployment(workspace).state_machine_arn)
    execution = sfn.describe_execution(executionArn=arn)
    svg = render_svg(machine["definition"], events, title=title_for(machine, execution, events))
    return ExecutionRun(str(execution["name"]), key, outcome.status, outcome.output, outcome.error,
                        outcome.cause, workspace.classes, svg, seconds, events)  # fmt: skip


@dataclass
class BatchRun:
    """Many images through the state machine: how each ended."""

    results: list[dict[str, Any]]
    seconds: float

    def counts(self) -> Counter[str]:
        """Images per outcome (``classified: <class>``, ``sent to review``, ``failed: <error>``)."""
        return Counter(r["outcome"] for r in self.results)

    def _repr_html_(self) -> str:
        total = len(self.results) or 1
        rows = [[k, n, f"{n / total:.0%}"] for k, n in sorted(self.counts().items())]
        rate = len(self.results) / self.seconds if self.seconds else 0.0
        return display.heading(
            f"{len(self.results)} executions in {self.seconds:.1f} s ({rate:.1f} per second)"
        ) + display.table(rows, ["outcome", "images", "share"], what="batch")


def run_images(workspace: Workspace, paths: list[Path], timeout_s: float = 600) -> BatchRun:
    """Upload ``paths``, start one execution each (all in flight), wait for all."""
    from scones.twin.workflow import wait_execution

    sfn = workspace.client("stepfunctions")
    started = time.perf_counter()
    arns = []
    for path in paths:
        key = put_image(workspace, f"batch/{path.name}", path.read_bytes())
        arns.append((key, _start(workspace, sfn, key, _name(workspace, path.stem))))
    results = []
    for key, arn in arns:
        outcome = wait_execution(sfn, arn, timeout_s)
        workspace.endpoint_calls += _reached_endpoint(outcome)
        results.append(
            {"key": key, "status": outcome.status, "outcome": _outcome(workspace, outcome)}
        )
    return BatchRun(results, time.perf_counter() - started)


def _outcome(workspace: Workspace, outcome: Any) -> str:
    if outcome.status == "SUCCEEDED" and outcome.output:
        label = int(outcome.output.get("label", -1))
        names = workspace.classes
        return f"classified: {names[label] if 0 <= label < len(names) else label}"
    if outcome.error == REVIEW_ERROR:
        return f"sent to review ({REVIEW_ERROR})"
    return f"failed: {outcome.error or outcome.status}"
