"""The few SageMaker control-plane operations the local endpoint server answers, from the registry.

boto3's ``sagemaker`` client (``AWS_ENDPOINT_URL_SAGEMAKER`` = the endpoint server, set by
``scones env``) reaches them as AWS's JSON 1.1 protocol: ``POST /`` with
``X-Amz-Target: SageMaker.<Operation>``. Enough for the idle-endpoint guard to run offline:

- ``DescribeEndpoint``: an endpoint of the registry as SageMaker describes one (always
  ``InService``: a registered endpoint serves; ``CreationTime`` = when it was registered);
- ``DeleteEndpoint``: unregisters it (the server stops serving it at once); the model archive it
  came from stays, so ``scones deploy --local`` brings it back, as a kept endpoint config does;
- ``ListEndpoints``: every registered endpoint (no paging, filters or sorting).

Anything else answers ``UnknownOperationException``. Errors use the JSON protocol's shape
(``__type`` and ``message``), which botocore turns into ``ClientError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scones.endpoint import registry
from scones.endpoint.responses import ACCOUNT_ID, Response
from scones.settings import Settings

TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = b"application/x-amz-json-1.1"


class ControlError(Exception):
    """An error of the JSON protocol: HTTP status, ``__type`` and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _arn(settings: Settings, name: str) -> str:
    return f"arn:aws:sagemaker:{settings.region}:{ACCOUNT_ID}:endpoint/{name.lower()}"


def _not_found(settings: Settings, name: str) -> ControlError:
    return ControlError(
        400, "ValidationException", f'Could not find endpoint "{_arn(settings, name)}".'
    )


def _created(config: dict[str, Any]) -> float:
    try:
        when = datetime.strptime(str(config.get("created")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return 0.0
    return when.replace(tzinfo=UTC).timestamp()


def _endpoint_name(settings: Settings, body: dict[str, Any]) -> str:
    name = body.get("EndpointName")
    if not isinstance(name, str) or not registry.NAME_PATTERN.match(name):
        raise ControlError(400, "ValidationException", "EndpointName must be a valid endpoint name")
    return name


def _read(settings: Settings, name: str) -> dict[str, Any]:
    try:
        return registry.read_endpoint(settings, name)
    except registry.EndpointNotFoundError:
        raise _not_found(settings, name) from None


def describe_endpoint(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``DescribeEndpoint`` of a registered endpoint."""
    name = _endpoint_name(settings, body)
    config = _read(settings, name)
    created = _created(config)
    capture = config.get("capture") or {}
    answer: dict[str, Any] = {
        "EndpointName": name,
        "EndpointArn": _arn(settings, name),
        "EndpointConfigName": f"{name}-local",
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
        "CreationTime": created,
        "LastModifiedTime": created,
    }
    if capture.get("enabled"):
        answer["DataCaptureConfig"] = {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": capture.get("sampling_percentage", 100),
            "DestinationS3Uri": capture.get("destination_s3_uri", ""),
        }
    return answer


def delete_endpoint(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``DeleteEndpoint``: unregister the endpoint (its model archive is not touched)."""
    name = _endpoint_name(settings, body)
    try:
        registry.unregister_endpoint(settings, name)
    except registry.EndpointNotFoundError:
        raise _not_found(settings, name) from None
    return {}


def list_endpoints(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``ListEndpoints``: every registered endpoint."""
    summaries = []
    for config in registry.list_endpoints(settings):
        name = str(config.get("name"))
        created = _created(config)
        summaries.append(
            {
                "EndpointName": name,
                "EndpointArn": _arn(settings, name),
                "CreationTime": created,
                "LastModifiedTime": created,
                "EndpointStatus": "InService",
            }
        )
    return {"Endpoints": summaries}


OPERATIONS: dict[str, Callable[[Settings, dict[str, Any]], dict[str, Any]]] = {
    "DescribeEndpoint": describe_endpoint,
    "DeleteEndpoint": delete_endpoint,
    "ListEndpoints": list_endpoints,
}


def _json(status: int, payload: dict[str, Any]) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), [(b"content-type", CONTENT_TYPE)])


def handle(settings: Settings, target: str, body: bytes) -> Response:
    """Answer one control-plane request (``target`` = the ``X-Amz-Target`` header)."""
    operation = target.removeprefix(TARGET_PREFIX)
    try:
        function = OPERATIONS.get(operation) if target.startswith(TARGET_PREFIX) else None
        if function is None:
            known = ", ".join(sorted(OPERATIONS))
            raise ControlError(
                400, "UnknownOperationException", f"{target}: the twin answers only {known}"
            )
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise ControlError(400, "SerializationException", "the body is not JSON") from None
        if not isinstance(request, dict):
            raise ControlError(400, "SerializationException", "the body is not a JSON object")
        return _json(200, function(settings, request))
    except ControlError as exc:
        return _json(exc.status, {"__type": exc.code, "message": exc.message})
