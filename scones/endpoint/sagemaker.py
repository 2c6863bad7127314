"""The SageMaker endpoint: model, endpoint config with Data Capture, endpoint; deploy and delete.

The model runs in AWS's PyTorch inference container, which loads ``code/inference.py`` from
``model.tar.gz``; the endpoint config captures 100 % of inputs and outputs to
``s3://BUCKET/PREFIX/data_capture``. ``delete`` waits (boto3's ``endpoint_deleted`` waiter, bounded,
with progress) until the endpoint is gone, so the name can be deployed again at once. Plain boto3
with an injected client.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from scones.aws import (
    ENDPOINT_INSTANCE,
    TAGS,
    S3Location,
    SageMakerError,
    if_found,
    image_uri,
    poll,
    timestamp,
)

DEFAULT_ENDPOINT = "scones-image-classifier"
DEFAULT_VARIANT = "AllTraffic"
CAPTURE_PREFIX = "data_capture"
FAILED_ENDPOINT = {"Failed", "OutOfService", "RollingBack"}


class EndpointFailedError(SageMakerError):
    """The endpoint did not reach InService."""


class EndpointExistsError(SageMakerError):
    """An endpoint of that name already exists."""


class EndpointDeleteError(SageMakerError):
    """The endpoint failed to delete, or was still there when the wait ended."""


def model_request(
    *, model_name: str, role_arn: str, image: str, model_data: str, region: str
) -> dict[str, Any]:
    """``CreateModel``: the PyTorch inference container loading ``code/inference.py``."""
    return {
        "ModelName": model_name,
        "ExecutionRoleArn": role_arn,
        "PrimaryContainer": {
            "Image": image,
            "ModelDataUrl": model_data,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": region,
                "SCONES_ORT_THREADS": "1",
            },
        },
        "Tags": list(TAGS),
    }


def endpoint_config_request(
    *,
    config_name: str,
    model_name: str,
    instance_type: str,
    capture_uri: str,
    variant: str = DEFAULT_VARIANT,
    sampling_percentage: int = 100,
) -> dict[str, Any]:
    """``CreateEndpointConfig`` with Data Capture of every request's input and output."""
    return {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": sampling_percentage,
            "DestinationS3Uri": capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
        "Tags": list(TAGS),
    }


def wait_for_endpoint(
    sm: Any,
    endpoint_name: str,
    *,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> dict[str, Any]:
    """Poll until the endpoint is InService; raise ``EndpointFailedError`` if it fails."""
    desc = poll(
        lambda: sm.describe_endpoint(EndpointName=endpoint_name),
        state=lambda d: str(d["EndpointStatus"]),
        done=lambda d: d["EndpointStatus"] == "InService" or d["EndpointStatus"] in FAILED_ENDPOINT,
        label=f"endpoint {endpoint_name}",
        poll_s=poll_s,
        sleep=sleep,
        progress=progress,
    )
    status = desc["EndpointStatus"]
    if status != "InService":
        reason = desc.get("FailureReason", "no reason given")
        raise EndpointFailedError(f"endpoint {endpoint_name} {status}: {reason}")
    return desc


def ensure_absent(sm: Any, endpoint_name: str) -> None:
    """Raise ``EndpointExistsError`` when ``endpoint_name`` exists (or is still being deleted)."""
    existing = if_found(lambda: sm.describe_endpoint(EndpointName=endpoint_name))
    if existing is None:
        return
    deleting = existing.get("EndpointStatus") == "Deleting"
    raise EndpointExistsError(
        f"endpoint {endpoint_name} {'is still being deleted' if deleting else 'exists'}; "
        f"remove it with (or wait for) `scones sagemaker delete --endpoint-name {endpoint_name}` "
        "or pick another name"
    )


def deploy(
    sm: Any,
    *,
    model_data: str,
    role_arn: str,
    region: str,
    where: S3Location,
    endpoint_name: str = DEFAULT_ENDPOINT,
    instance_type: str = ENDPOINT_INSTANCE,
    image: str | None = None,
    suffix: str | None = None,
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> dict[str, str]:
    """Create model, endpoint config (Data Capture on) and endpoint; return their names."""
    ensure_absent(sm, endpoint_name)
    suffix = suffix or timestamp()
    names = {
        "model": f"scones-model-{suffix}",
        "config": f"scones-config-{suffix}",
        "endpoint": endpoint_name,
        "capture_uri": where.uri(CAPTURE_PREFIX),
    }
    sm.create_model(
        **model_request(
            model_name=names["model"],
            role_arn=role_arn,
            image=image or image_uri("inference", region, instance_type),
            model_data=model_data,
            region=region,
        )
    )
    sm.create_endpoint_config(
        **endpoint_config_request(
            config_name=names["config"],
            model_name=names["model"],
            instance_type=instance_type,
            capture_uri=names["capture_uri"],
        )
    )
    sm.create_endpoint(
        EndpointName=endpoint_name, EndpointConfigName=names["config"], Tags=list(TAGS)
    )
    if wait:
        wait_for_endpoint(sm, endpoint_name, sleep=sleep, progress=progress)
    return names


def delete(
    sm: Any,
    endpoint_name: str = DEFAULT_ENDPOINT,
    *,
    wait: bool = True,
    poll_s: float = 10.0,
    timeout_s: float = 900.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> list[str]:
    """Delete the endpoint, its endpoint config and its models; return what was deleted
    (nothing when there is no such endpoint; parts already gone are skipped). With ``wait``,
    return only once the endpoint is gone (so the name can be deployed again at once)."""
    endpoint = if_found(lambda: sm.describe_endpoint(EndpointName=endpoint_name))
    if endpoint is None:
        return []
    config_name = endpoint["EndpointConfigName"]
    config = if_found(lambda: sm.describe_endpoint_config(EndpointConfigName=config_name)) or {}
    models = [v["ModelName"] for v in config.get("ProductionVariants", [])]
    if endpoint.get("EndpointStatus") != "Deleting":
        sm.delete_endpoint(EndpointName=endpoint_name)
    deleted = [f"endpoint {endpoint_name}"]
    if if_found(lambda: sm.delete_endpoint_config(EndpointConfigName=config_name)) is not None:
        deleted.append(f"endpoint config {config_name}")
    for model in models:
        if if_found(partial(sm.delete_model, ModelName=model)) is not None:
            deleted.append(f"model {model}")
    if wait:
        wait_until_deleted(
            sm, endpoint_name, poll_s=poll_s, timeout_s=timeout_s, sleep=sleep, progress=progress
        )
    return deleted


def wait_until_deleted(
    sm: Any,
    endpoint_name: str,
    *,
    poll_s: float = 10.0,
    timeout_s: float = 900.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> None:
    """Wait, at most about ``timeout_s``, until ``endpoint_name`` no longer exists.

    Each poll is one attempt of boto3's ``endpoint_deleted`` waiter (its acceptors: the endpoint
    not found is success, ``Failed`` is failure), so the wait is bounded and shown as progress.
    Raises ``EndpointDeleteError`` on failure or when the time is up."""
    from botocore.exceptions import WaiterError
    from tqdm import tqdm

    waiter = sm.get_waiter("endpoint_deleted")
    attempts = max(1, math.ceil(timeout_s / poll_s))
    status = "?"
    with tqdm(desc=f"deleting {endpoint_name}", unit="poll", disable=not progress) as bar:
        for attempt in range(attempts):
            try:
                waiter.wait(EndpointName=endpoint_name, WaiterConfig={"MaxAttempts": 1})
                return
            except WaiterError as exc:
                if not str(exc.kwargs.get("reason", "")).startswith("Max attempts exceeded"):
                    raise EndpointDeleteError(
                        f"endpoint {endpoint_name} was not deleted: {exc.kwargs.get('reason')}"
                    ) from exc
                status = (exc.last_response or {}).get("EndpointStatus", "?")
            bar.set_postfix_str(str(status))
            bar.update(1)
            if attempt + 1 < attempts:
                sleep(poll_s)
    raise EndpointDeleteError(
        f"endpoint {endpoint_name} still exists ({status}) after {attempts} checks "
        f"{poll_s:g} s apart; run `scones sagemaker delete --endpoint-name {endpoint_name}` "
        "again later, or look at it in the SageMaker console"
    )
