"""IdleEndpointGuardFunction against moto: SageMaker endpoints and CloudWatch metrics.

The guard's decision (``check_endpoint``) takes its clients and the time: the tests create a real
moto endpoint (with its endpoint config and model), put ``AWS/SageMaker`` ``Invocations`` data
into moto's CloudWatch, and ask at a ``now`` after the endpoint's creation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from sam_helpers import read_event

from scones.twin.lambda_runtime import LambdaContext

ENDPOINT = "scones-image-classifier"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@pytest.fixture
def clients(moto: None) -> Iterator[tuple[Any, Any]]:
    yield boto3.client("sagemaker"), boto3.client("cloudwatch")


def create_endpoint(
    sm: Any, name: str = ENDPOINT, variants: tuple[str, ...] = ("AllTraffic",)
) -> datetime:
    """A model, an endpoint config and an InService endpoint in moto; returns its CreationTime."""
    sm.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "example.com/image:1", "ModelDataUrl": "s3://b/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": f"{name}-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.t2.medium",
            }
            for variant in variants
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    created: datetime = sm.describe_endpoint(EndpointName=name)["CreationTime"]
    return created


def put_invocations(cw: Any, when: datetime, count: float, variant: str = "AllTraffic") -> None:
    cw.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": ENDPOINT},
                    {"Name": "VariantName", "Value": variant},
                ],
                "Timestamp": when,
                "StatisticValues": {
                    "SampleCount": max(count, 1),
                    "Sum": count,
                    "Minimum": min(count, 1),
                    "Maximum": min(count, 1),
                },
            }
        ],
    )


def exists(sm: Any, name: str = ENDPOINT) -> bool:
    return any(e["EndpointName"] == name for e in sm.list_endpoints()["Endpoints"])


def check(
    guard: ModuleType, clients: tuple[Any, Any], now: datetime, **kwargs: Any
) -> dict[str, Any]:
    config = guard.GuardConfig(ENDPOINT, 24)
    result: dict[str, Any] = guard.check_endpoint(*clients, config, now, **kwargs)
    return result


def test_idle_endpoint_is_deleted_and_its_config_and_model_kept(
    guard: ModuleType, clients: tuple[Any, Any]
) -> None:
    sm, cw = clients
    created = create_endpoint(sm)
    put_invocations(cw, created + timedelta(minutes=5), 0)  # a zero datapoint is still idle
    result = check(guard, clients, created + timedelta(hours=25))
    assert result["action"] == "deleted", result
    assert result["invocations"] == 0
    assert result["endpoint_config"] == f"{ENDPOINT}-config"
    assert not exists(sm)
    config = sm.describe_endpoint_config(EndpointConfigName=f"{ENDPOINT}-config")
    assert config["ProductionVariants"][0]["ModelName"] == f"{ENDPOINT}-model"
    assert sm.describe_model(ModelName=f"{ENDPOINT}-model")["ModelName"] == f"{ENDPOINT}-model"
    # what the guard keeps is enough to bring the endpoint back
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=result["endpoint_config"])
    assert exists(sm)


def test_invocations_before_the_window_do_not_count(
    guard: ModuleType, clients: tuple[Any, Any]
) -> None:
    sm, cw = clients
    created = create_endpoint(sm)
    put_invocations(cw, created + timedelta(hours=1), 500)
    assert check(guard, clients, created + timedelta(hours=30))["action"] == "deleted"
    assert not exists(sm)


def test_busy_endpoint_is_kept(guard: ModuleType, clients: tuple[Any, Any]) -> None:
    sm, cw = clients
    created = create_endpoint(sm)
    put_invocations(cw, created + timedelta(hours=20), 3)
    result = check(guard, clients, created + timedelta(hours=25))
    assert result["action"] == "kept" and result["invocations"] == 3, result
    assert exists(sm)


def test_invocations_of_any_variant_keep_the_endpoint(
    guard: ModuleType, clients: tuple[Any, Any]
) -> None:
    sm, cw = clients
    created = create_endpoint(sm, variants=("AllTraffic", "Canary"))
    put_invocations(cw, created + timedelta(hours=24), 1, variant="Canary")
    assert check(guard, clients, created + timedelta(hours=25))["action"] == "kept"
    assert exists(sm)


def test_other_endpoints_invocations_do_not_count(
    guard: ModuleType, clients: tuple[Any, Any]
) -> None:
    sm, cw = clients
    created = create_endpoint(sm)
    cw.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": "someone-else"},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Timestamp": created + timedelta(hours=20),
                "Value": 9,
            }
        ],
    )
    assert check(guard, clients, created + timedelta(hours=25))["action"] == "deleted"


def test_young_endpoint_is_kept(guard: ModuleType, clients: tuple[Any, Any]) -> None:
    sm, _ = clients
    created = create_endpoint(sm)
    result = check(guard, clients, created + timedelta(hours=23))
    assert result["action"] == "kept" and "created 23.0 h ago" in result["reason"], result
    assert exists(sm)


def test_missing_endpoint_is_no_error(guard: ModuleType, clients: tuple[Any, Any]) -> None:
    result = check(guard, clients, datetime.now().astimezone())
    assert result["action"] == "none" and result["reason"] == "no such endpoint"


def test_dry_run_deletes_nothing(guard: ModuleType, clients: tuple[Any, Any]) -> None:
    sm, _ = clients
    created = create_endpoint(sm)
    result = check(guard, clients, created + timedelta(hours=25), dry_run=True)
    assert result["action"] == "none" and "dry run" in result["reason"]
    assert exists(sm)


class _Describing:
    """A SageMaker client whose endpoint is in ``status`` (moto's are always InService)."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.deleted: list[str] = []

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803 (boto3's name)
        return {
            "EndpointName": EndpointName,
            "EndpointConfigName": "c",
            "EndpointStatus": self.status,
            "CreationTime": datetime(2020, 1, 1).astimezone(),
        }

    def delete_endpoint(self, EndpointName: str) -> None:  # noqa: N803
        self.deleted.append(EndpointName)


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "Deleting", "Failed"])
def test_endpoint_not_in_service_is_left_alone(guard: ModuleType, status: str) -> None:
    sm = _Describing(status)
    result = guard.check_endpoint(
        sm, object(), guard.GuardConfig(ENDPOINT, 1), datetime.now().astimezone()
    )
    assert result["action"] == "none" and status in result["reason"]
    assert sm.deleted == []


def test_other_sagemaker_errors_are_raised(guard: ModuleType, clients: tuple[Any, Any]) -> None:
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    sm, _ = clients
    with Stubber(sm) as stub:
        stub.add_client_error("describe_endpoint", "AccessDeniedException", "not allowed")
        with pytest.raises(ClientError):
            check(guard, clients, datetime.now().astimezone())


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"IDLE_HOURS": "24"}, "ENDPOINT_NAME is not set"),
        ({"ENDPOINT_NAME": "ep", "IDLE_HOURS": "a day"}, "whole number"),
        ({"ENDPOINT_NAME": "ep", "IDLE_HOURS": "0"}, "1 to 720"),
        ({"ENDPOINT_NAME": "ep", "IDLE_HOURS": "721"}, "1 to 720"),
    ],
)
def test_unusable_environment_is_a_configuration_error(
    guard: ModuleType, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(guard.ConfigurationError, match=message):
        guard.GuardConfig.from_environ(environ)


def test_handler_runs_with_the_environment_the_template_gives(
    guard: ModuleType,
    clients: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: LambdaContext,
) -> None:
    sm, _ = clients
    create_endpoint(sm)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    monkeypatch.setenv("IDLE_HOURS", "24")
    for name in ("idle_endpoint_guard.json", "idle_endpoint_guard_dry_run.json"):
        result = guard.lambda_handler(read_event(name), lambda_context)
        assert result["action"] == "kept" and result["endpoint_name"] == ENDPOINT  # just created
    monkeypatch.setenv("ENDPOINT_NAME", "not-deployed")
    assert guard.lambda_handler({}, lambda_context)["action"] == "none"
