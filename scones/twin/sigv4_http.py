"""SigV4 at the twin's HTTP servers: a WSGI guard for moto, an ASGI guard for the endpoint.

Both guards answer before the app sees the request when it

- comes from a web page: it carries ``Origin`` or a ``Sec-Fetch-Site`` other than ``none`` (SDKs
  and the CLI send neither), or its ``Host`` is not a loopback name (DNS rebinding);
- is not signed with the twin's credentials (``scones.twin.sigv4.Verifier``): unsigned, wrongly
  signed, another access key, a time stamp over 15 minutes off.

The answer is AWS's error in the protocol the request spoke, so boto3 raises ``ClientError`` with
AWS's code: JSON 1.0/1.1 (``X-Amz-Target``: Step Functions, SageMaker's control plane) and
rest-json (Lambda, SageMaker Runtime, moto-api) as ``{"__type", "message"}`` plus
``x-amzn-ErrorType``; Smithy RPCv2 CBOR (CloudWatch) as the same map in CBOR; the query protocol
(IAM, STS: a form body with ``Action=``) as XML ``ErrorResponse``; S3 (moto's, in unit tests) as
S3's XML ``Error``. Status 403, except 400 for an incomplete signature (as AWS documents).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape

from scones.twin.sigv4 import (
    EXPIRED,
    INCOMPLETE,
    MISMATCH,
    MISSING,
    REFUSED,
    UNKNOWN_KEY,
    AuthFailure,
    SignedRequest,
    Verifier,
)

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})

JSON_CODES = {
    MISSING: "MissingAuthenticationTokenException",
    INCOMPLETE: "IncompleteSignatureException",
    UNKNOWN_KEY: "UnrecognizedClientException",
    MISMATCH: "InvalidSignatureException",
    EXPIRED: "InvalidSignatureException",
    REFUSED: "AccessDeniedException",
}
QUERY_CODES = {
    MISSING: "MissingAuthenticationToken",
    INCOMPLETE: "IncompleteSignature",
    UNKNOWN_KEY: "InvalidClientTokenId",
    MISMATCH: "SignatureDoesNotMatch",
    EXPIRED: "SignatureDoesNotMatch",
    REFUSED: "AccessDenied",
}
S3_CODES = {
    MISSING: "AccessDenied",
    INCOMPLETE: "AuthorizationHeaderMalformed",
    UNKNOWN_KEY: "InvalidAccessKeyId",
    MISMATCH: "SignatureDoesNotMatch",
    EXPIRED: "AccessDenied",
    REFUSED: "AccessDenied",
}

Headers = list[tuple[str, str]]


def browser_check(headers: dict[str, str]) -> None:
    """Raise ``AuthFailure(REFUSED)`` for a request from a web page or to a foreign host name."""
    host = headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.lower() not in LOOPBACK_NAMES:
        raise AuthFailure(
            REFUSED, f"Host {host[:100]!r} refused: the twin answers to 127.0.0.1 only"
        )
    if "origin" in headers or headers.get("sec-fetch-site", "none") != "none":
        raise AuthFailure(REFUSED, "requests from web pages are refused by the twin's services")


def error_response(
    failure: AuthFailure, headers: dict[str, str], raw_query: str = ""
) -> tuple[int, Headers, bytes]:
    """AWS's answer to ``failure`` in the protocol of the request with ``headers``."""
    status = 400 if failure.kind == INCOMPLETE else 403
    request_id = str(uuid.uuid4())
    content_type = headers.get("content-type", "")
    if "x-amz-target" in headers:
        code = JSON_CODES[failure.kind]
        body = json.dumps({"__type": code, "message": failure.message}).encode()
        kind = content_type if content_type.startswith("application/x-amz-json") else ""
        return status, _json_headers(code, request_id, kind), body
    if headers.get("smithy-protocol") == "rpc-v2-cbor":
        code = JSON_CODES[failure.kind]
        body = _cbor_map({"__type": code, "message": failure.message})
        extra = [("content-type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        return status, [*extra, ("x-amzn-requestid", request_id)], body
    if content_type.startswith("application/x-www-form-urlencoded") or "Action=" in raw_query:
        code = QUERY_CODES[failure.kind]
        body = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{code}</Code><Message>{escape(failure.message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        return status, [("content-type", "text/xml"), ("x-amzn-requestid", request_id)], body
    if failure.service == "s3":
        code = S3_CODES[failure.kind]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{escape(failure.message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        return status, [("content-type", "application/xml"), ("x-amz-request-id", request_id)], body
    code = JSON_CODES[failure.kind]
    body = json.dumps({"__type": code, "message": failure.message}).encode()
    return status, _json_headers(code, request_id, ""), body


def _json_headers(code: str, request_id: str, content_type: str) -> Headers:
    return [
        ("content-type", content_type or "application/json"),
        ("x-amzn-errortype", code),
        ("x-amzn-requestid", request_id),
    ]


def _cbor_map(values: dict[str, str]) -> bytes:
    """A CBOR map of text to text (RFC 8949 major types 5 and 3), enough for an error body."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        for extra, size in ((24, 1), (25, 2), (26, 4)):
            if length < 1 << (8 * size):
                return bytes([major << 5 | extra]) + length.to_bytes(size, "big")
        raise ValueError("too long for an error body")

    out = bytearray(head(5, len(values)))
    for key, value in values.items():
        for text in (key.encode(), value.encode()):
            out += head(3, len(text)) + text
    return bytes(out)


# --------------------------------------------------------------------------------------- WSGI

_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden"}


class WsgiGuard:
    """WSGI middleware: only browser-free, SigV4-signed requests reach ``app`` (moto)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], verifier: Verifier) -> None:
        self.app = app
        self.verifier = verifier

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = _wsgi_headers(environ)
        raw_uri = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
        raw_path, _, raw_query = _origin_form(raw_uri).partition("?")
        if not raw_uri:  # not werkzeug's server: rebuild from the decoded parts
            from urllib.parse import quote

            raw_path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/~")
            raw_query = environ.get("QUERY_STRING", "")
        try:
            body = _read_wsgi_body(environ)  # first: a refused request's body must not linger
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            browser_check(headers)
            request = SignedRequest(
                method=environ.get("REQUEST_METHOD", "GET"),
                raw_path=_from_latin1(raw_path),
                raw_query=_from_latin1(raw_query),
                headers=headers,
                payload_sha256=hashlib.sha256(body).hexdigest(),
            )
            self.verifier.verify(request)
        except AuthFailure as failure:
            status, answer_headers, body = error_response(failure, headers, raw_query)
            answer_headers.append(("content-length", str(len(body))))
            start_response(f"{status} {_STATUS_TEXT[status]}", answer_headers)
            return [body]
        return self.app(environ, start_response)


def _origin_form(raw_uri: str) -> str:
    """The path and query of a request target (absolute-form targets lose scheme and host)."""
    if raw_uri.startswith(("http://", "https://")):
        after = raw_uri.split("://", 1)[1]
        slash = after.find("/")
        return after[slash:] if slash >= 0 else "/"
    return raw_uri


def _from_latin1(text: str) -> str:
    """Undo WSGI's latin-1 "encoding dance" (the target is ASCII when clients encode it)."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _wsgi_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers[name] = environ[key]
    preserved = environ.get("moto.preserved_header_names") or {}
    for key, name in preserved.items():  # moto keeps headers whose name has an underscore
        if key in environ:
            headers[str(name).lower()] = environ[key]
    return headers


def _read_wsgi_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise AuthFailure(INCOMPLETE, "invalid Content-Length") from None
    return bytes(stream.read(length)) if length > 0 else b""


# --------------------------------------------------------------------------------------- ASGI


class AsgiGuard:
    """ASGI middleware: only browser-free, SigV4-signed requests reach ``app`` (the endpoint).

    ``open_routes`` (method, path) pass unsigned (the container contract's ``GET /ping``);
    the Host and browser checks still apply. Bodies are read once (hashed as they come, kept
    up to ``max_body`` + 1 bytes, so the app still sees a too-large body as too large).
    """

    def __init__(
        self,
        app: Any,
        verifier: Verifier,
        *,
        open_routes: frozenset[tuple[str, str]] = frozenset(),
        max_body: int = 6 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.open_routes = open_routes
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _asgi_headers(scope)
        raw_query = scope.get("query_string", b"").decode("latin-1")
        try:
            browser_check(headers)
            if (scope["method"], scope["path"]) in self.open_routes:
                await self.app(scope, receive, send)
                return
            body, digest = await self._read(receive)
            raw_path = scope.get("raw_path") or scope["path"].encode()
            request = SignedRequest(
                method=scope["method"],
                raw_path=raw_path.decode("latin-1"),
                raw_query=raw_query,
                headers=headers,
                payload_sha256=digest,
            )
            self.verifier.verify(request)
        except AuthFailure as failure:
            status, answer, payload = error_response(failure, headers, raw_query)
            answer.append(("content-length", str(len(payload))))
            encoded = [(k.encode(), v.encode("latin-1", "replace")) for k, v in answer]
            await send({"type": "http.response.start", "status": status, "headers": encoded})
            await send({"type": "http.response.body", "body": payload})
            return
        replay = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive_again() -> dict[str, Any]:
            return replay.pop() if replay else await receive()

        await self.app(scope, receive_again, send)

    async def _read(self, receive: Any) -> tuple[bytes, str]:
        digest = hashlib.sha256()
        kept: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            digest.update(chunk)
            if size <= self.max_body:
                kept.append(chunk[: self.max_body + 1 - size])
            size += len(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(kept), digest.hexdigest()


def _asgi_headers(scope: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or []:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


# --------------------------------------------------------------------------------------- moto


def guard_moto(app: Callable[..., Iterable[bytes]], settings: Any) -> WsgiGuard:
    """``app`` (moto's dispatcher) behind ``WsgiGuard`` with ``settings``' credentials, and
    moto's own clients signing with them (see ``sign_moto_clients``)."""
    sign_moto_clients(settings)
    return WsgiGuard(app, Verifier.for_settings(settings))


def sign_moto_clients(settings: Any) -> None:
    """Make the boto3 clients moto's ASL interpreter builds for its service integrations
    (``boto_client_for``: fixed keys ``ak``/``sk``, endpoint ``localhost:$MOTO_PORT``) sign
    with the twin's keys, so they pass the guard: the ``boto3`` that moto's ``boto_client``
    module calls becomes ``TwinKeysBoto3``. Lambda tasks of bound functions never reach HTTP
    (``moto_fixes.direct_lambda_tasks``); every other integration does."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    from scones.twin.moto_targets import rebind

    current = boto_client.boto3
    if isinstance(current, TwinKeysBoto3):
        current.settings = settings
        return
    rebind(boto_client, "boto3", TwinKeysBoto3(current, settings))


class TwinKeysBoto3:
    """``boto3`` for moto's ``boto_client`` module: every client it makes carries the twin's
    keys instead of the ones moto passes; everything else is boto3's own."""

    def __init__(self, boto3_module: Any, settings: Any) -> None:
        self.boto3 = boto3_module
        self.settings = settings

    def client(self, *args: Any, **kwargs: Any) -> Any:
        """``boto3.client`` with ``settings``' access key and secret."""
        kwargs["aws_access_key_id"] = self.settings.access_key_id
        kwargs["aws_secret_access_key"] = self.settings.secret_access_key
        return self.boto3.client(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.boto3, name)
