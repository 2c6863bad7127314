"""The endpoint server's errors and responses: each error carries its HTTP status and AWS error
code, and ``aws_error`` / ``plain_error`` are the one place that turns an error into a response.

``aws_error`` is the SageMaker Runtime API's shape (JSON with ``ErrorCode``/``Message`` and an
``x-amzn-errortype`` header, which botocore's rest-json parser turns into ``ClientError``), except
for a body over the limit, which AWS's front end refuses before the API sees it: 413 and the text
``HTTP content length exceeded N bytes.`` without an error type, so botocore's ``Error.Code`` is
``"413"``; ``plain_error`` is the container contract's (``POST /invocations``): the status and a
text body.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint payload limit
ACCOUNT_ID = "123456789012"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class HttpError(Exception):
    """An error the server answers with; subclasses set ``status`` and the AWS error ``code``."""

    status = 500
    code = "InternalFailure"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """Extra fields of the JSON error body."""
        return {}


class ValidationError(HttpError):
    """The request is not valid (an unknown endpoint or variant, for example)."""

    status = 400
    code = "ValidationError"


class MethodNotAllowedError(ValidationError):
    """The path exists, the method does not."""

    status = 405


class PayloadTooLargeError(HttpError):
    """The request body is over ``MAX_BODY_BYTES`` (``aws_error`` answers it as AWS's front end
    does: 413, a text body, no error type)."""

    status = 413
    code = "413"


class ClientDisconnectedError(HttpError):
    """The client went away before its request body was complete: nothing is run or captured."""

    status = 400
    code = "ClientDisconnected"


class UnknownOperationError(HttpError):
    """No route for the method and path."""

    status = 404
    code = "UnknownOperationException"


class ModelError(HttpError):
    """The model container answered ``original_status`` (424 ``ModelError``, as SageMaker says)."""

    status = 424
    code = "ModelError"

    def __init__(
        self, endpoint: str, original_status: int, original_message: str, *, region: str
    ) -> None:
        kind = "client" if original_status < 500 else "server"
        super().__init__(
            f"Received {kind} error ({original_status}) from primary with message "
            f'"{original_message}". See the endpoint log (scones status) for more information.'
        )
        self.endpoint = endpoint
        self.original_status = original_status
        self.original_message = original_message
        self.region = region

    def fields(self) -> dict[str, Any]:
        log_group = f"/aws/sagemaker/Endpoints/{self.endpoint}"
        return {
            "OriginalStatusCode": self.original_status,
            "OriginalMessage": self.original_message,
            "LogStreamArn": f"arn:aws:logs:{self.region}:{ACCOUNT_ID}:log-group:{log_group}",
        }


@dataclass
class Response:
    """A whole HTTP response (``content-length`` is added when it is sent)."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)


def aws_error(exc: HttpError) -> Response:
    """The SageMaker Runtime API's error response for ``exc``."""
    if isinstance(exc, PayloadTooLargeError):
        return Response(
            413,
            f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.".encode(),
            [(b"content-type", b"text/plain; charset=utf-8")],
        )
    payload = {"ErrorCode": exc.code, "Message": exc.message, **exc.fields()}
    return Response(
        exc.status,
        json.dumps(payload).encode("utf-8"),
        [
            (b"content-type", b"application/json"),
            (b"x-amzn-errortype", exc.code.encode("latin-1")),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode("latin-1")),
        ],
    )


def plain_error(exc: HttpError) -> Response:
    """The container contract's error response: the status the model gave and a text body."""
    if isinstance(exc, ModelError):
        return plain(exc.original_status, exc.original_message)
    return plain(exc.status, exc.message)


def plain(status: int, text: str) -> Response:
    """A ``text/plain`` response."""
    return Response(status, text.encode("utf-8"), [(b"content-type", b"text/plain")])


async def send_response(send: Send, response: Response) -> None:
    """Send ``response`` over ASGI."""
    headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def read_body(receive: Receive) -> tuple[bytes, bool]:
    """Read the whole request body; past the limit keep reading but drop it (True = too big).

    Raises ``ClientDisconnectedError`` when the client leaves (or the read deadline closes the
    connection) before the body is complete, so a partial body never reaches the model.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError("the client disconnected before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > MAX_BODY_BYTES:
        return b"", True
    return b"".join(chunks), False
