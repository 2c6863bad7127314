"""The error AWS answers for an operation or service it does not know, for the twin's moto server.

moto answers an operation it lacks with an HTML 500 (which clients retry, the AWS CLI four
times), a REST route it lacks with an HTML 404, and a service it lacks with an HTML 500 from the
dispatcher. The twin answers each in the request's protocol, with status 400 (404 for a REST
path), so clients fail at once with a named error: ``UnknownOperationException`` (JSON and
REST-JSON protocols, ``x-amzn-ErrorType`` header and ``__type``) or ``InvalidAction`` (query
protocol: IAM, STS, CloudFormation, XML ``ErrorResponse``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Response, request

PREFIX = "The offline twin does not implement"


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_body(
    message: str, content_type: str, has_target: bool, status: int = 400
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of the error for a request of this protocol."""
    request_id = str(uuid.uuid4())
    if "x-www-form-urlencoded" in content_type:  # query protocol
        body = (
            "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code>"
            f"<Message>{_xml_escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    headers = {
        "Content-Type": "application/x-amz-json-1.0" if has_target else "application/json",
        "x-amzn-ErrorType": "UnknownOperationException",
        "x-amzn-RequestId": request_id,
    }
    payload = {"__type": "UnknownOperationException", "message": message}
    return status, headers, json.dumps(payload).encode()


def _flask_error(message: str, status: int) -> Response:
    code, headers, body = error_body(
        message,
        request.headers.get("Content-Type", ""),
        bool(request.headers.get("X-Amz-Target")),
        status,
    )
    return Response(body, status=code, headers=headers)


def unknown_operation(exc: NotImplementedError) -> Response:
    """Flask handler for moto's ``NotImplementedError`` (an operation moto lacks)."""
    return _flask_error(f"{PREFIX} this operation ({exc})", 400)


def unknown_route(_exc: Exception) -> Response:
    """Flask handler for a REST path no moto route matches."""
    return _flask_error(f"{PREFIX} {request.method} {request.path}", 404)


def install(app: Any) -> None:
    """Register the handlers on one of moto's per-service Flask apps."""
    app.register_error_handler(NotImplementedError, unknown_operation)
    app.register_error_handler(404, unknown_route)


def unknown_service(
    environ: dict[str, Any], start_response: Callable[..., Any], exc: Exception
) -> Iterable[bytes]:
    """WSGI answer when moto has no backend for the request's service at all."""
    scope = str(environ.get("HTTP_AUTHORIZATION", "")).split("Credential=")[-1].split(",")[0]
    service = scope.split("/")[3] if scope.count("/") >= 4 else "this service"
    code, headers, body = error_body(
        f"{PREFIX} {service} ({type(exc).__name__})",
        str(environ.get("CONTENT_TYPE", "")),
        bool(environ.get("HTTP_X_AMZ_TARGET")),
    )
    start_response(f"{code} Bad Request", [*headers.items(), ("Content-Length", str(len(body)))])
    return [body]
