"""How the twin describes a registered endpoint through SageMaker's control plane.

A registered endpoint (``registry``: ``endpoints/<name>/endpoint.json``) stands for the three
SageMaker resources a deployment creates, all named after the endpoint, as the SageMaker Python
SDK's ``Model.deploy`` names them by default: the endpoint, its endpoint config and its model.
Each function here turns the registry's ``endpoint.json`` into the answer of one ``Describe*``
or one ``List*`` summary, with the fields botocore's ``sagemaker`` service model marks required
and timestamps as epoch seconds (the JSON 1.1 protocol's form).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scones.endpoint.responses import ACCOUNT_ID
from scones.settings import Settings

TWIN_ROLE = "scones-twin-endpoint"  # the execution role DescribeModel names (no IAM behind it)


def arn(settings: Settings, kind: str, name: str) -> str:
    """The ARN SageMaker gives resource ``kind`` (endpoint, endpoint-config, model) ``name``."""
    return f"arn:aws:sagemaker:{settings.region}:{ACCOUNT_ID}:{kind}/{name.lower()}"


def created(config: dict[str, Any]) -> float:
    """When the endpoint was registered, as epoch seconds (0 when the file lacks it)."""
    try:
        when = datetime.strptime(str(config.get("created")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return 0.0
    return when.replace(tzinfo=UTC).timestamp()


def _capture(config: dict[str, Any]) -> dict[str, Any] | None:
    capture = config.get("capture") or {}
    if not capture.get("enabled") or not capture.get("destination_s3_uri"):
        return None
    return capture


def async_output(config: dict[str, Any]) -> dict[str, str] | None:
    """The endpoint's own async output config (``endpoint.json``'s optional ``async_inference``
    with ``s3_output_path`` / ``s3_failure_path``), or None: the twin then uses its default."""
    spec = config.get("async_inference") or {}
    output = spec.get("s3_output_path")
    if not isinstance(output, str) or not output.startswith("s3://"):
        return None
    failure = spec.get("s3_failure_path")
    answer = {"S3OutputPath": output}
    if isinstance(failure, str) and failure.startswith("s3://"):
        answer["S3FailurePath"] = failure
    return answer


def _instance_type() -> str:
    from scones.aws import ENDPOINT_INSTANCE

    return ENDPOINT_INSTANCE


def describe_endpoint(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """``DescribeEndpoint``: always ``InService`` (a registered endpoint serves at once)."""
    name = str(config["name"])
    when = created(config)
    answer: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": arn(settings, "endpoint", name),
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": config.get("variant", "AllTraffic"),
                "CurrentWeight": 1.0,
                "DesiredWeight": 1.0,
                "CurrentInstanceCount": 1,
                "DesiredInstanceCount": 1,
            }
        ],
        "EndpointStatus": "InService",
        "CreationTime": when,
        "LastModifiedTime": when,
    }
    capture = _capture(config)
    if capture is not None:
        answer["DataCaptureConfig"] = {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": int(capture.get("sampling_percentage", 100)),
            "DestinationS3Uri": capture["destination_s3_uri"],
            "KmsKeyId": "",  # required by the service model; the twin encrypts nothing
        }
    output = async_output(config)
    if output is not None:
        answer["AsyncInferenceConfig"] = {"OutputConfig": output}
    return answer


def describe_endpoint_config(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """``DescribeEndpointConfig`` of the config named after the endpoint."""
    name = str(config["name"])
    answer: dict[str, Any] = {
        "EndpointConfigName": name,
        "EndpointConfigArn": arn(settings, "endpoint-config", name),
        "ProductionVariants": [
            {
                "VariantName": config.get("variant", "AllTraffic"),
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": _instance_type(),
                "InitialVariantWeight": 1.0,
            }
        ],
        "CreationTime": created(config),
    }
    capture = _capture(config)
    if capture is not None:
        answer["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": int(capture.get("sampling_percentage", 100)),
            "DestinationS3Uri": capture["destination_s3_uri"],
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
    output = async_output(config)
    if output is not None:
        answer["AsyncInferenceConfig"] = {"OutputConfig": output}
    return answer


def describe_model(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """``DescribeModel`` of the model named after the endpoint: the container ``scones
    sagemaker deploy`` would run, and the local archive the twin serves (``file://``)."""
    from scones.aws import SageMakerError, image_uri

    name = str(config["name"])
    model_data = str(config.get("model_data", ""))
    try:
        image = image_uri("inference", settings.region, _instance_type())
    except SageMakerError:  # a region without AWS's PyTorch images: name none
        image = ""
    container: dict[str, Any] = {"Image": image} if image else {}
    return {
        "ModelName": name,
        "PrimaryContainer": {
            **container,
            "Mode": "SingleModel",
            "ModelDataUrl": f"file://{model_data}" if model_data.startswith("/") else model_data,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_REGION": settings.region,
            },
        },
        "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/{TWIN_ROLE}",
        "CreationTime": created(config),
        "ModelArn": arn(settings, "model", name),
        "EnableNetworkIsolation": False,
    }


def endpoint_summary(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """One ``ListEndpoints`` entry."""
    name, when = str(config["name"]), created(config)
    return {
        "EndpointName": name,
        "EndpointArn": arn(settings, "endpoint", name),
        "CreationTime": when,
        "LastModifiedTime": when,
        "EndpointStatus": "InService",
    }


def endpoint_config_summary(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """One ``ListEndpointConfigs`` entry."""
    name = str(config["name"])
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": arn(settings, "endpoint-config", name),
        "CreationTime": created(config),
    }


def model_summary(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """One ``ListModels`` entry."""
    name = str(config["name"])
    return {
        "ModelName": name,
        "ModelArn": arn(settings, "model", name),
        "CreationTime": created(config),
    }
