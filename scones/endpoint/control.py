"""SageMaker's control plane for the twin's endpoints, answered from the registry.

boto3's ``sagemaker`` client (``AWS_ENDPOINT_URL_SAGEMAKER`` = the endpoint server, set by
``scones env``) reaches it as AWS's JSON 1.1 protocol: ``POST /`` with
``X-Amz-Target: SageMaker.<Operation>``. A registered endpoint stands for the endpoint, the
endpoint config and the model a deployment creates, all named after it (``descriptions``):

- ``DescribeEndpoint`` (``InService``, its variant, ``DataCaptureConfig`` as registered),
  ``DescribeEndpointConfig``, ``DescribeModel``: what the SageMaker Python SDK's lookups call;
- ``ListEndpoints`` / ``ListEndpointConfigs`` / ``ListModels``: ``NameContains``, the
  ``CreationTime`` filters, ``StatusEquals``, ``SortBy`` / ``SortOrder`` (default: newest first)
  and ``MaxResults`` (default 10, 1-100) / ``NextToken`` paging;
- ``DeleteEndpoint``: unregisters it (the server stops serving it at once); the model archive it
  came from stays, so ``scones deploy --local`` brings it back, as a kept endpoint config does.

Every other operation answers 400 ``UnknownOperationException`` naming those the twin answers
(no retries, never HTML). Errors use the JSON protocol's shape (``__type`` and ``message``),
which botocore turns into ``ClientError``; unknown resources are SageMaker's
``ValidationException`` ``Could not find ...``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from scones.endpoint import descriptions, registry
from scones.endpoint.responses import Response
from scones.settings import Settings

TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = b"application/x-amz-json-1.1"
DEFAULT_MAX_RESULTS = 10

Config = dict[str, Any]
Summary = Callable[[Settings, Config], dict[str, Any]]


class ControlError(Exception):
    """An error of the JSON protocol: HTTP status, ``__type`` and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _invalid(message: str) -> ControlError:
    return ControlError(400, "ValidationException", message)


def _name(body: dict[str, Any], field: str) -> str:
    name = body.get(field)
    if not isinstance(name, str) or not registry.NAME_PATTERN.match(name):
        raise _invalid(
            f"1 validation error detected: Value {name!r} at '{field[0].lower()}{field[1:]}' "
            "failed to satisfy constraint: Member must satisfy regular expression pattern: "
            "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        )
    return name


def _read(settings: Settings, name: str, kind: str, label: str) -> Config:
    try:
        return registry.read_endpoint(settings, name)
    except registry.EndpointNotFoundError:
        raise _invalid(
            f'Could not find {label} "{descriptions.arn(settings, kind, name)}".'
        ) from None


def describe_endpoint(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``DescribeEndpoint`` of a registered endpoint."""
    name = _name(body, "EndpointName")
    return descriptions.describe_endpoint(settings, _read(settings, name, "endpoint", "endpoint"))


def describe_endpoint_config(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``DescribeEndpointConfig`` of the config named after a registered endpoint."""
    name = _name(body, "EndpointConfigName")
    config = _read(settings, name, "endpoint-config", "endpoint configuration")
    return descriptions.describe_endpoint_config(settings, config)


def describe_model(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``DescribeModel`` of the model named after a registered endpoint."""
    name = _name(body, "ModelName")
    return descriptions.describe_model(settings, _read(settings, name, "model", "model"))


def delete_endpoint(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``DeleteEndpoint``: unregister the endpoint (its model archive is not touched)."""
    name = _name(body, "EndpointName")
    try:
        registry.unregister_endpoint(settings, name)
    except registry.EndpointNotFoundError:
        arn = descriptions.arn(settings, "endpoint", name)
        raise _invalid(f'Could not find endpoint "{arn}".') from None
    return {}


def _enum(body: dict[str, Any], field: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(field, default)
    if value not in allowed:
        raise _invalid(
            f"1 validation error detected: Value {value!r} at '{field[0].lower()}{field[1:]}' "
            f"failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return str(value)


def _page(body: dict[str, Any]) -> tuple[int, int]:
    """(offset, size) from ``NextToken`` and ``MaxResults``."""
    size = body.get("MaxResults", DEFAULT_MAX_RESULTS)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 100:
        raise _invalid(
            f"1 validation error detected: Value {size!r} at 'maxResults' failed to satisfy "
            "constraint: Member must have value between 1 and 100"
        )
    token = body.get("NextToken")
    if token in (None, ""):
        return 0, size
    try:
        offset = int(json.loads(base64.b64decode(str(token), validate=True))["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _invalid("Invalid pagination token.") from None
    return max(offset, 0), size


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _time_filters(body: dict[str, Any], entry: dict[str, Any]) -> bool:
    for field, key, before in (
        ("CreationTimeBefore", "CreationTime", True),
        ("CreationTimeAfter", "CreationTime", False),
        ("LastModifiedTimeBefore", "LastModifiedTime", True),
        ("LastModifiedTimeAfter", "LastModifiedTime", False),
    ):
        limit = body.get(field)
        if limit is None or key not in entry:
            continue
        if not isinstance(limit, int | float):
            raise _invalid(f"{field} must be a timestamp")
        if (entry[key] >= limit) if before else (entry[key] <= limit):
            return False
    return True


def _listing(
    settings: Settings,
    body: dict[str, Any],
    *,
    summary: Summary,
    name_key: str,
    sort_keys: dict[str, str],
    result_key: str,
) -> dict[str, Any]:
    """The ``List*`` operations: filter, sort and page the summaries of every endpoint."""
    sort_by = _enum(body, "SortBy", tuple(sort_keys), "CreationTime")
    order = _enum(body, "SortOrder", ("Ascending", "Descending"), "Descending")
    offset, size = _page(body)
    contains = str(body.get("NameContains") or "").lower()
    status = body.get("StatusEquals")
    entries = [summary(settings, c) for c in registry.list_endpoints(settings) if c.get("name")]
    entries = [
        e
        for e in entries
        if contains in e[name_key].lower()
        and (status is None or e.get("EndpointStatus") == status)
        and _time_filters(body, e)
    ]
    key = sort_keys[sort_by]
    entries.sort(key=lambda e: (e[key], e[name_key].lower()), reverse=order == "Descending")
    answer: dict[str, Any] = {result_key: entries[offset : offset + size]}
    if offset + size < len(entries):
        answer["NextToken"] = _token(offset + size)
    return answer


def list_endpoints(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``ListEndpoints``."""
    return _listing(
        settings,
        body,
        summary=descriptions.endpoint_summary,
        name_key="EndpointName",
        sort_keys={
            "Name": "EndpointName",
            "CreationTime": "CreationTime",
            "Status": "EndpointStatus",
        },
        result_key="Endpoints",
    )


def list_endpoint_configs(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``ListEndpointConfigs``."""
    return _listing(
        settings,
        body,
        summary=descriptions.endpoint_config_summary,
        name_key="EndpointConfigName",
        sort_keys={"Name": "EndpointConfigName", "CreationTime": "CreationTime"},
        result_key="EndpointConfigs",
    )


def list_models(settings: Settings, body: dict[str, Any]) -> dict[str, Any]:
    """``ListModels``."""
    return _listing(
        settings,
        body,
        summary=descriptions.model_summary,
        name_key="ModelName",
        sort_keys={"Name": "ModelName", "CreationTime": "CreationTime"},
        result_key="Models",
    )


OPERATIONS: dict[str, Callable[[Settings, dict[str, Any]], dict[str, Any]]] = {
    "DescribeEndpoint": describe_endpoint,
    "DescribeEndpointConfig": describe_endpoint_config,
    "DescribeModel": describe_model,
    "DeleteEndpoint": delete_endpoint,
    "ListEndpoints": list_endpoints,
    "ListEndpointConfigs": list_endpoint_configs,
    "ListModels": list_models,
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
                400,
                "UnknownOperationException",
                f"{target or 'a request without X-Amz-Target'}: the offline twin's SageMaker "
                f"control plane answers only {known}",
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
