"""The options priced side by side, from measured usage per image.

One image is one execution. An option is a workflow type (Standard, Express), a Lambda
architecture (arm64, x86_64) and an endpoint (real-time: instance type and count; serverless:
memory; asynchronous: instance type, scaled to zero outside a daily window). For each option:

- ``floor_usd``: what is always on, per month, with no traffic (real-time instances for 730 h;
  the asynchronous endpoint's daily window);
- ``per_1000_images_usd``: what 1,000 more images add (every usage-priced line);
- ``monthly_usd(N)``: the floor plus N images (an asynchronous endpoint bills extra hours when
  N images need more instance time than its window).

Free tiers and Savings Plans are not applied. Month = 730 hours.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from scones.cost.pricing import PriceTable
from scones.cost.usage import Usage

MONTH_HOURS = 730.0
GIB = 1024**3
EXPRESS_BASE_MB = 50.0  # AWS: memory used = 50 MB + definition + execution data
EXPRESS_CHUNK_MB = 64.0
EXPRESS_ROUND_MS = 100


@dataclass(frozen=True)
class Endpoint:
    """How the model is served."""

    kind: str  # "realtime", "serverless", "async"
    instance_type: str | None = None
    count: int = 1
    memory_mb: int = 2048
    hours_per_day: float = 1.0

    @property
    def label(self) -> str:
        """Short human name."""
        if self.kind == "realtime":
            return f"real-time {self.count} x {self.instance_type}"
        if self.kind == "serverless":
            return f"serverless {self.memory_mb} MB"
        return f"async {self.instance_type} ({self.hours_per_day:g} h/day, else 0)"


@dataclass(frozen=True)
class Option:
    """One way to run the workflow."""

    workflow: str  # "STANDARD" or "EXPRESS"
    architecture: str  # "arm64" or "x86_64"
    endpoint: Endpoint
    #: The state machine's CloudWatch Logs: "full" (level ALL with execution data) or "errors"
    #: (level ERROR, no data). template.yaml's ExecutionLogs=auto: full for Express only.
    logs: str = "errors"

    @property
    def name(self) -> str:
        """``Standard, arm64, real-time 1 x ml.m5.large``."""
        return f"{self.workflow.title()}, {self.architecture}, {self.endpoint.label}"


@dataclass(frozen=True)
class PerImage:
    """Measured usage per image (per execution)."""

    transitions: float
    lambdas: list[tuple[float, float, int]]  # (invocations, billed ms each, memory MB)
    express_gb_seconds: float
    endpoint_calls: float
    endpoint_bytes: float  # in + out
    inference_ms: float  # per endpoint call
    s3_gets: float
    s3_puts: float  # the upload + Data Capture objects
    stored_bytes: float  # the image + its capture, kept a month
    error_log_bytes: float  # the state machine's logs at level ERROR without data
    full_log_bytes: float = 0.0  # ... at level ALL with execution data (the whole history)


def express_gb_seconds(runs: list[tuple[int, int]], definition_bytes: int) -> float:
    """Mean billed GB-seconds of an Express execution: duration rounded up to 100 ms, memory
    (50 MB + definition + largest payload, MB of 10^6 bytes as AWS's example) in 64 MB chunks."""
    if not runs:
        return 0.0
    total = 0.0
    for duration_ms, payload in runs:
        billed_ms = max(1, math.ceil(duration_ms / EXPRESS_ROUND_MS)) * EXPRESS_ROUND_MS
        memory_mb = EXPRESS_BASE_MB + (definition_bytes + payload) / 1e6
        billed_mb = math.ceil(memory_mb / EXPRESS_CHUNK_MB) * EXPRESS_CHUNK_MB
        total += billed_mb / 1024 * billed_ms / 1000
    return total / len(runs)


def per_image(usage: Usage, inference_ms: float | None = None) -> PerImage:
    """Usage per image; ``inference_ms`` defaults to the median billed duration of the
    endpoint-calling function (an upper bound of the endpoint's own time)."""
    n = max(1, usage.executions)
    lambdas = [
        (f.invocations / n, f.billed_ms / max(1, f.invocations), f.info.memory_mb)
        for f in usage.functions.values()
    ]
    calls = usage.endpoint_invocations
    measured = statistics.median(usage.endpoint_ms) if usage.endpoint_ms else 0.0
    capture_per_call = usage.capture_objects / calls if calls else 0.0
    capture_bytes_per_call = usage.capture_bytes / calls if calls else 0.0
    image = usage.image_bytes / usage.images_read if usage.images_read else 0.0
    return PerImage(
        transitions=usage.state_transitions / n,
        lambdas=lambdas,
        express_gb_seconds=express_gb_seconds(usage.runs, usage.definition_bytes),
        endpoint_calls=calls / n,
        endpoint_bytes=(usage.endpoint_bytes_in + usage.endpoint_bytes_out) / n,
        inference_ms=float(inference_ms if inference_ms is not None else measured),
        s3_gets=usage.s3_get_requests / n,
        s3_puts=1.0 + capture_per_call * calls / n,
        stored_bytes=image + capture_bytes_per_call * calls / n,
        error_log_bytes=usage.error_log_bytes / n,
        full_log_bytes=usage.history_bytes / n,
    )


@dataclass
class Priced:
    """An option with its prices."""

    option: Option
    components: dict[str, float]  # per image, USD
    floor_usd: float
    window_hours: float = 0.0  # async: instance hours the floor buys
    hour_usd: float = 0.0  # async: price of an extra instance hour
    compute_hours_per_image: float = 0.0  # async: instance hours an image needs
    notes: list[str] = field(default_factory=list)

    @property
    def per_image_usd(self) -> float:
        """Variable cost of one image."""
        return sum(self.components.values())

    def monthly_usd(self, images: float) -> float:
        """Cost of a month with ``images`` images."""
        extra_hours = max(0.0, images * self.compute_hours_per_image - self.window_hours)
        return self.floor_usd + images * self.per_image_usd + extra_hours * self.hour_usd

    def as_dict(self, images: float) -> dict[str, Any]:
        """One entry of ``options`` in ``scones cost --json``."""
        return {
            "name": self.option.name,
            "workflow": self.option.workflow,
            "lambda_architecture": self.option.architecture,
            "endpoint": self.option.endpoint.label,
            "per_1000_images_usd": round(self.per_image_usd * 1000, 6),
            "monthly_usd": round(self.monthly_usd(images), 2),
            "floor_usd": round(self.floor_usd, 2),
            "components_per_1000_images_usd": {
                k: round(v * 1000, 6) for k, v in self.components.items()
            },
            "notes": list(self.notes),
        }


def _workflow(option: Option, use: PerImage, prices: PriceTable) -> float:
    if option.workflow == "EXPRESS":
        return prices.usd("stepfunctions.express.request") + use.express_gb_seconds * prices.usd(
            "stepfunctions.express.gb_second"
        )
    return use.transitions * prices.usd("stepfunctions.standard.transition")


def _lambda(option: Option, use: PerImage, prices: PriceTable) -> float:
    gb_second = prices.usd(f"lambda.gb_second.{option.architecture}")
    request = prices.usd("lambda.request")
    return sum(n * (request + ms / 1000 * mb / 1024 * gb_second) for n, ms, mb in use.lambdas)


def _s3(
    use: PerImage, prices: PriceTable, extra_puts: float = 0.0, extra_gets: float = 0.0
) -> float:
    return (
        (use.s3_puts + extra_puts) * prices.usd("s3.put_request")
        + (use.s3_gets + extra_gets) * prices.usd("s3.get_request")
        + use.stored_bytes / GIB * prices.usd("s3.storage_gb_month")
    )


def price_option(option: Option, use: PerImage, prices: PriceTable) -> Priced:
    """Price ``option`` for the measured usage ``use``."""
    endpoint = option.endpoint
    data = use.endpoint_bytes / GIB * prices.usd("sagemaker.hosting.data_gb")
    log_bytes = use.full_log_bytes if option.logs == "full" else use.error_log_bytes
    log_gb_price = prices.usd("logs.ingestion_gb") + prices.usd("logs.storage_gb_month")
    components = {
        "workflow": _workflow(option, use, prices),
        "lambda": _lambda(option, use, prices),
        "logs": log_bytes / GIB * log_gb_price,
    }
    priced = Priced(option, components, floor_usd=0.0)
    if option.logs == "full":
        errors_only = use.error_log_bytes / GIB * log_gb_price
        priced.notes.append(
            "execution logs at level ALL with data (ExecutionLogs=auto for Express):"
            f" ${components['logs'] * 1000:.4f} per 1,000 images; ExecutionLogs=errors:"
            f" ${errors_only * 1000:.4f}"
        )
    if endpoint.kind == "realtime":
        hour = prices.instance_hour("hosting", str(endpoint.instance_type))
        priced.floor_usd = endpoint.count * hour * MONTH_HOURS
        components["endpoint"] = data
        components["s3"] = _s3(use, prices)
    elif endpoint.kind == "serverless":
        seconds = use.endpoint_calls * use.inference_ms / 1000
        components["endpoint"] = (
            seconds * endpoint.memory_mb / 1024 * prices.usd("sagemaker.serverless.gb_second")
            + data
        )
        components["s3"] = _s3(use, prices)
        priced.notes.append(
            "no Data Capture on serverless endpoints: monitoring needs another capture path"
            " (e.g. ClassifyImage writing the same records to S3; priced here as the capture's PUTs)"
        )
    else:
        hour = prices.instance_hour("hosting", str(endpoint.instance_type))
        priced.window_hours = endpoint.hours_per_day * MONTH_HOURS / 24
        priced.floor_usd = priced.window_hours * hour
        priced.hour_usd = hour
        priced.compute_hours_per_image = use.endpoint_calls * use.inference_ms / 1000 / 3600
        components["endpoint"] = data
        # each request's input is an S3 object SageMaker reads, and its answer one it writes
        components["s3"] = _s3(
            use, prices, extra_puts=2 * use.endpoint_calls, extra_gets=use.endpoint_calls
        )
        priced.notes.append(
            "asynchronous: requests queue through S3 and are answered later (not inline in the"
            " workflow); the instance runs in a daily window and scales to 0 otherwise"
        )
    return priced


def default_options(
    architecture: str,
    instance_types: list[str],
    count: int = 1,
    serverless_mb: int = 2048,
    async_hours: float = 1.0,
    express_logs: str = "full",
) -> list[Option]:
    """The options ``scones cost`` compares: the deployment as it is (Standard, the template's
    architecture, real-time ``instance_types[0]``) and one change at a time from it. Express
    options log as ``express_logs`` says (template.yaml's default for Express: full)."""
    other = "x86_64" if architecture == "arm64" else "arm64"
    first = Endpoint("realtime", instance_types[0], count)
    serverless = Endpoint("serverless", memory_mb=serverless_mb)

    def express(endpoint: Endpoint) -> Option:
        return Option("EXPRESS", architecture, endpoint, logs=express_logs)

    return [
        Option("STANDARD", architecture, first),
        express(first),
        Option("STANDARD", other, first),
        *(express(Endpoint("realtime", t, count)) for t in instance_types[1:]),
        Option("STANDARD", architecture, serverless),
        express(serverless),
        express(Endpoint("async", instance_types[0], hours_per_day=async_hours)),
    ]


def break_even(a: Priced, b: Priced, low: float = 1.0, high: float = 1e9) -> float | None:
    """The monthly volume where ``a`` and ``b`` cost the same (the first crossing between
    ``low`` and ``high`` images a month), or None when one is cheaper throughout."""

    def diff(n: float) -> float:
        return a.monthly_usd(n) - b.monthly_usd(n)

    grid = [low * (high / low) ** (i / 200) for i in range(201)]
    for left, right in zip(grid, grid[1:], strict=False):
        d_left, d_right = diff(left), diff(right)
        if d_left == 0:
            return left
        if (d_left < 0) != (d_right < 0):
            for _ in range(80):
                mid = math.sqrt(left * right)
                if (diff(mid) < 0) == (d_left < 0):
                    left = mid
                else:
                    right = mid
            return math.sqrt(left * right)
    return None


def break_evens(priced: list[Priced]) -> list[dict[str, Any]]:
    """Every pair of options whose monthly costs cross, with the volume and cost there."""
    found = []
    for i, a in enumerate(priced):
        for b in priced[i + 1 :]:
            n = break_even(a, b)
            if n is not None:
                found.append(
                    {
                        "a": a.option.name,
                        "b": b.option.name,
                        "images_per_month": round(n),
                        "monthly_usd": round(a.monthly_usd(n), 2),
                    }
                )
    return found
