"""Steps 7 and 8 of the walkthrough: monitoring (``scones monitor`` on the Data Capture this
notebook caused) and cost (``scones cost`` on this notebook's executions).

``monitor`` waits until the endpoint's captures of this run have reached S3 (the twin flushes
every ``SCONES_CAPTURE_FLUSH_SECONDS``; SageMaker within minutes), then runs ``run_monitor``
and returns its ``MonitorResult`` (which renders with its figures). ``measure_cost`` does what
``scones cost --since <notebook start>`` does and returns a ``CostReport``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.notebook import display
from scones.notebook.workflow import deployment
from scones.notebook.workspace import Workspace

VOLUMES = (1_000, 100_000, 10_000_000)  # images a month in the options table


def monitor(
    workspace: Workspace, output: Path | None = None, *, wait_s: float | None = None
) -> Any:
    """``scones monitor <capture uri> --endpoint NAME --since <notebook start>``, after waiting
    (``wait_s``: 60 s on the twin, 15 minutes on AWS) for every capture this run caused."""
    from scones.monitor.errors import NoCapturesError
    from scones.monitor.run import MonitorOptions, run_monitor

    deployed = deployment(workspace)
    options = MonitorOptions(
        source=deployed.capture_uri,
        output=output or workspace.workdir / "monitor",
        endpoint=deployed.endpoint_name,
        since=workspace.started,
        classes=workspace.classes or None,
        classes_from="the model's classes.json",
        progress=False,
    )
    expected = workspace.endpoint_calls
    deadline = time.monotonic() + (wait_s if wait_s is not None else 60 if workspace.twin else 900)
    while True:
        try:
            result = run_monitor(options, lambda: workspace.client("s3"))
        except NoCapturesError:
            if time.monotonic() > deadline:
                raise
            result = None
        if result is not None and (
            result.collector.count >= expected or time.monotonic() > deadline
        ):
            return result
        time.sleep(1.0)


@dataclass
class CostReport:
    """What ``scones cost`` reports for this notebook's executions, and what they cost."""

    report: dict[str, Any]  # the dictionary ``scones cost --json`` prints
    priced: list[Any] = field(repr=False)  # scones.cost.options.Priced, one per option
    chart_png: bytes = field(repr=False, default=b"")
    endpoint_hours: float = 0.0  # how long this notebook had the endpoint deployed

    def this_run(self) -> list[list[str]]:
        """What this notebook's runs would have cost on AWS, as deployed (the first option)."""
        as_deployed = self.priced[0]
        n = self.report["usage"]["executions"]
        hour = as_deployed.floor_usd / 730.0
        rows = [
            [f"{n} executions (Step Functions, Lambda, endpoint data, S3)",
             f"${n * as_deployed.per_image_usd:.5f}"],
            [f"the endpoint for the {_duration(self.endpoint_hours)} it was up here"
             f" ({as_deployed.option.endpoint.label})", f"${self.endpoint_hours * hour:.4f}"],
        ]  # fmt: skip
        t = self.report["training"]
        if t["usd"] is not None:
            rows.append(
                [f"training: {t['seconds']:.0f} s on {t['instance_type']}", f"${t['usd']:.4f}"]
            )
        return rows

    def _repr_html_(self) -> str:
        u, per = self.report["usage"], self.report["per_image"]
        usage = [
            ["executions", f"{u['executions']} ({', '.join(f'{k} {v}' for k, v in u['statuses'].items())})"],
            ["state transitions", f"{u['state_transitions']} ({per['state_transitions']:g} per image, {u['retries']} retries)"],
            *([f"Lambda {k}", f"{f['invocations']} invocations, {f['billed_ms']} ms billed, {f['memory_mb']} MB {f['architecture']}"]
              for k, f in u["lambda"].items()),
            ["endpoint", f"{u['endpoint_invocations']} calls, {u['endpoint_bytes_in']:,} B in, {u['endpoint_bytes_out']:,} B out"],
            ["Data Capture", f"{u['capture_objects']} objects, {u['capture_bytes']:,} bytes"],
        ]  # fmt: skip
        header = [
            "option",
            "per 1,000 images",
            "floor / month",
            *(f"{v:,} / month" for v in VOLUMES),
        ]
        options = [
            [p.option.name, f"${p.per_image_usd * 1000:.4f}", f"${p.floor_usd:,.2f}",
             *(f"${p.monthly_usd(v):,.2f}" for v in VOLUMES)]
            for p in self.priced
        ]  # fmt: skip
        prices = self.report["prices"]
        parts = [
            display.heading("measured from this notebook's executions"),
            display.table(usage, what="cost-usage"),
            display.heading("what these runs would have cost on AWS"),
            display.table(self.this_run(), ["", "USD"], what="cost-this-run"),
            display.heading("a month, by option (list prices, no free tier)"),
            display.table(options, header, what="cost-options"),
        ]
        if self.chart_png:
            parts.append(
                display.png_img(self.chart_png, "monthly cost against volume", what="cost-chart")
            )
        parts.append(
            f"<p><small>prices: {display.esc(prices['where'])} ({display.esc(prices['region'])},"
            f" read {display.esc(prices['read'])}); sources in docs/cost.md</small></p>"
        )
        return "".join(parts)


def _duration(hours: float) -> str:
    seconds = hours * 3600
    return f"{seconds:.0f} seconds" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def measure_cost(
    workspace: Workspace,
    *,
    images_per_month: int = 100_000,
    instance_types: list[str] | None = None,
    training_seconds: float | None = None,
    chart: bool = True,
) -> CostReport:
    """``scones cost --since <notebook start>`` for this workspace's deployment."""
    from scones.cost import options as opts
    from scones.cost import source
    from scones.cost.chart import draw_png
    from scones.cost.cli import DEFAULT_INSTANCES, TRAINING_INSTANCE
    from scones.cost.history import count_execution
    from scones.cost.pricing import load_prices
    from scones.cost.report import build_report, training_cost
    from scones.cost.usage import Usage, add_execution, read_functions

    deployed = deployment(workspace)
    prices = load_prices()
    target = source.target_for(
        workspace.settings,
        None if workspace.twin else deployed.state_machine_arn,
        deployed.capture_uri,
        deployed.endpoint_name,
    )
    functions = read_functions(workspace.settings.project_root)
    machine = source.describe_state_machine(target.sfn, target.state_machine_arn)
    executions = source.list_executions(target.sfn, target.state_machine_arn, workspace.started)
    usage = Usage(definition_bytes=len(str(machine.get("definition", "")).encode("utf-8")))
    for events in source.histories(target.sfn, executions):
        add_execution(usage, count_execution(events), functions)
    usage.capture_objects, usage.capture_bytes = source.capture_objects(
        target.s3, deployed.capture_uri, deployed.endpoint_name, workspace.started
    )
    use = opts.per_image(usage)
    architectures = [f.architecture for f in functions.values()] or ["arm64"]
    options = opts.default_options(
        max(set(architectures), key=architectures.count), instance_types or DEFAULT_INSTANCES
    )
    priced = [opts.price_option(option, use, prices) for option in options]
    seconds = training_seconds if training_seconds is not None else workspace.training_seconds
    where = "the training job's billable seconds" if seconds is not None else ""
    if seconds is None:
        seconds, where = _training_seconds(deployed.model)
    report = build_report(
        state_machine=target.state_machine_arn,
        state_machine_type=str(machine.get("type", "STANDARD")),
        since=workspace.started.isoformat(),
        usage=usage,
        use=use,
        priced=priced,
        prices=prices,
        images_per_month=images_per_month,
        training=training_cost(prices, TRAINING_INSTANCE, seconds, where),
    )
    hours = (datetime.now(UTC) - deployed.deployed_at).total_seconds() / 3600
    png = draw_png(priced, report["break_even"]) if chart else b""
    return CostReport(report, priced, png, hours)


def _training_seconds(model: str) -> tuple[float | None, str]:
    from scones.cost.report import read_training_report
    from scones.errors import CommandError

    try:
        seconds = read_training_report(Path(model)).get("train_seconds")
    except CommandError as exc:
        return None, str(exc)
    where = f"train_seconds of {model}'s metrics.json, measured where it trained"
    return (float(seconds), where) if seconds else (None, "no train_seconds in metrics.json")
