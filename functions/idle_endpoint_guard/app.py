"""IdleEndpointGuardFunction: delete the SageMaker endpoint when nobody has used it for a while.

A real-time endpoint bills per instance hour whether it is used or not. Run hourly by an
EventBridge Scheduler schedule (template.yaml, ``IdleEndpointGuard=enabled``), this deletes the
endpoint ``ENDPOINT_NAME`` when it has been ``InService`` for at least ``IDLE_HOURS`` and
CloudWatch counts no ``Invocations`` for any of its variants in the last ``IDLE_HOURS``
(``AWS/SageMaker``, dimensions ``EndpointName`` and ``VariantName``, Sum per hour). Only the
endpoint is deleted: its endpoint config and model stay, so it can be created again
(``aws sagemaker create-endpoint --endpoint-config-name <the config this returns>``, or a new
``scones sagemaker deploy``). A missing endpoint, one that is not InService (being created,
updated or deleted) or one younger than ``IDLE_HOURS`` is left alone.

Event: anything (the schedule sends ``{}``); ``{"dry_run": true}`` only reports what it would do.
Output: ``{"endpoint_name", "action": "deleted" | "kept" | "none", "reason", ...}``.

The decision is ``check_endpoint``, with the SageMaker and CloudWatch clients passed in (tests
use moto); the handler only reads the environment and makes the clients.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scones_common import ConfigurationError

logger = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
METRIC = "Invocations"
PERIOD_S = 3600  # valid for data of any age CloudWatch keeps (1-minute data only lasts 15 days)
MAX_IDLE_HOURS = 720  # 720 hourly datapoints: within GetMetricStatistics' 1,440 per call


@dataclass(frozen=True)
class GuardConfig:
    """What the guard watches, from the function's environment."""

    endpoint_name: str
    idle_hours: int

    @classmethod
    def from_environ(cls, environ: Any = None) -> GuardConfig:
        """Read ``ENDPOINT_NAME`` and ``IDLE_HOURS``; raise ``ConfigurationError`` when unusable."""
        env = os.environ if environ is None else environ
        name = str(env.get("ENDPOINT_NAME", "")).strip()
        if not name:
            raise ConfigurationError("ENDPOINT_NAME is not set")
        raw = str(env.get("IDLE_HOURS", "")).strip()
        try:
            hours = int(raw)
        except ValueError:
            raise ConfigurationError(f"IDLE_HOURS must be a whole number, got {raw!r}") from None
        if not 1 <= hours <= MAX_IDLE_HOURS:
            raise ConfigurationError(f"IDLE_HOURS must be 1 to {MAX_IDLE_HOURS}, got {hours}")
        return cls(name, hours)


def describe(sagemaker: Any, endpoint_name: str) -> dict[str, Any] | None:
    """``DescribeEndpoint``, or None when there is no such endpoint."""
    from botocore.exceptions import ClientError

    try:
        return dict(sagemaker.describe_endpoint(EndpointName=endpoint_name))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationException" and "Could not find" in str(
            error.get("Message", "")
        ):
            return None
        raise


def invocations(
    cloudwatch: Any, endpoint_name: str, variants: list[str], start: datetime, end: datetime
) -> float:
    """The endpoint's ``Invocations`` between ``start`` and ``end``, summed over ``variants``."""
    total = 0.0
    for variant in variants:
        answer = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=METRIC,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint_name},
                {"Name": "VariantName", "Value": variant},
            ],
            StartTime=start,
            EndTime=end,
            Period=PERIOD_S,
            Statistics=["Sum"],
        )
        total += sum(float(point.get("Sum", 0.0)) for point in answer.get("Datapoints", []))
    return total


def check_endpoint(
    sagemaker: Any,
    cloudwatch: Any,
    config: GuardConfig,
    now: datetime,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Delete the endpoint if it is InService, old enough and unused for ``idle_hours``."""
    result: dict[str, Any] = {
        "endpoint_name": config.endpoint_name,
        "idle_hours": config.idle_hours,
        "checked_at": now.isoformat(),
    }
    endpoint = describe(sagemaker, config.endpoint_name)
    if endpoint is None:
        return {**result, "action": "none", "reason": "no such endpoint"}
    result["endpoint_config"] = endpoint.get("EndpointConfigName")
    status = endpoint.get("EndpointStatus")
    if status != "InService":
        return {**result, "action": "none", "reason": f"endpoint is {status}"}
    window = timedelta(hours=config.idle_hours)
    age = now - endpoint["CreationTime"]
    if age < window:
        hours = age.total_seconds() / 3600
        return {**result, "action": "kept", "reason": f"created {hours:.1f} h ago"}
    variants = [v["VariantName"] for v in endpoint.get("ProductionVariants") or []]
    count = invocations(
        cloudwatch, config.endpoint_name, variants or ["AllTraffic"], now - window, now
    )
    result["invocations"] = count
    if count > 0:
        return {**result, "action": "kept", "reason": f"{count:g} invocations in the window"}
    if dry_run:
        return {**result, "action": "none", "reason": "idle; dry run, not deleted"}
    sagemaker.delete_endpoint(EndpointName=config.endpoint_name)
    return {**result, "action": "deleted", "reason": f"no invocations in {config.idle_hours} h"}


_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """The module's boto3 client for ``service``, created on first use (standard settings)."""
    with _client_lock:
        if service not in _clients:
            import boto3

            _clients[service] = boto3.session.Session().client(service)
        return _clients[service]


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: check the endpoint once; the result says what was done and why."""
    dry_run = isinstance(event, dict) and event.get("dry_run") is True
    config = GuardConfig.from_environ()
    now = datetime.now(UTC)
    result = check_endpoint(client("sagemaker"), client("cloudwatch"), config, now, dry_run=dry_run)
    logger.info("idle endpoint guard", extra=result)
    return result
