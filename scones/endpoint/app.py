"""The endpoint server's ASGI app: routing, invocations, Data Capture, lifespan.

Routes: ``POST /endpoints/{name}/invocations`` (the path boto3's ``sagemaker-runtime`` client
calls, with SageMaker's error shapes), ``POST /endpoints/{name}/async-invocations``
(``InvokeEndpointAsync``: S3 in, S3 out, in the background; see ``async_invoke``), the SageMaker
container contract, ``GET /ping`` and ``POST /invocations`` (when exactly one endpoint is
registered), and ``POST /`` for SageMaker's control plane (``control``: Describe/List endpoints,
endpoint configs and models, DeleteEndpoint). Successful invocations, async ones included, are
written to S3 in Data Capture format when the endpoint enables it (see ``capture``). One app per
worker process (``create_app``); the models and batching are in ``model``. Each invocation of a
known endpoint is counted for its ``AWS/SageMaker`` ``Invocations`` metric, which a background
thread publishes to the twin's CloudWatch (``metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from scones.endpoint import control, registry
from scones.endpoint.async_invoke import (
    AsyncInvocations,
    AsyncJob,
    AsyncResult,
    accepted,
    parse_request,
)
from scones.endpoint.capture import CaptureEvent, CaptureWriter
from scones.endpoint.metrics import InvocationMetrics, cloudwatch_client
from scones.endpoint.model import Endpoint, EndpointCache, Outcome
from scones.endpoint.responses import (
    ACCOUNT_ID,
    MAX_BODY_BYTES,
    HttpError,
    MethodNotAllowedError,
    ModelError,
    PayloadTooLargeError,
    Receive,
    Response,
    Scope,
    Send,
    UnknownOperationError,
    ValidationError,
    aws_error,
    plain_error,
    read_body,
    request_headers,
    send_response,
)
from scones.settings import Settings

log = logging.getLogger("scones.endpoint")
INFERENCE_ID = "x-amzn-sagemaker-inference-id"


class EndpointServer:
    """The ASGI application (create one per worker process with ``create_app``)."""

    def __init__(
        self,
        settings: Settings,
        writer: CaptureWriter | None = None,
        metrics: InvocationMetrics | None = None,
        s3_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.endpoints = EndpointCache(settings, self.executor)
        self.async_invocations = AsyncInvocations(s3_factory or _s3_client, self._run_async)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "http":
            await send_response(send, await self._http(scope, receive))

    async def _http(self, scope: Scope, receive: Receive) -> Response:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/ping" and method in ("GET", "HEAD"):
            return Response(200, b"", [(b"content-type", b"text/plain")])
        if path == "/invocations" and method == "POST":
            try:
                return await self._invoke_container(scope, receive)
            except HttpError as exc:
                return plain_error(exc)
        if path == "/" and method == "POST":  # SageMaker's control plane (JSON 1.1 protocol)
            target = request_headers(scope).get("x-amz-target", "")
            try:
                body, _ = await read_body(receive)
            except HttpError as exc:
                return aws_error(exc)
            loop = asyncio.get_running_loop()  # the registry reads and deletes files
            return await loop.run_in_executor(None, control.handle, self.settings, target, body)
        try:
            if path.startswith("/endpoints/") and path.endswith("/async-invocations"):
                if method != "POST":
                    raise MethodNotAllowedError(f"{method} is not allowed here")
                name = path[len("/endpoints/") : -len("/async-invocations")]
                return await self._invoke_endpoint_async(scope, receive, name)
            if path.startswith("/endpoints/") and path.endswith("/invocations"):
                if method != "POST":
                    raise MethodNotAllowedError(f"{method} is not allowed here")
                name = path[len("/endpoints/") : -len("/invocations")]
                return await self._invoke_endpoint(scope, receive, name)
            raise UnknownOperationError(f"no route for {method} {path}")
        except HttpError as exc:
            return aws_error(exc)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.writer is not None:
                    self.writer.start()
                if self.metrics is not None:
                    self.metrics.start()
                log.info("endpoint server worker ready", extra={"pid": os.getpid()})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.async_invocations.close()  # before the writer: they capture too
                if self.writer is not None:
                    await self._close_writer(self.writer)
                if self.metrics is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.metrics.close)
                self.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _close_writer(self, writer: CaptureWriter) -> None:
        flushed = await asyncio.get_running_loop().run_in_executor(None, writer.close)
        log.info(
            "capture writer closed",
            extra={
                "pid": os.getpid(),
                "all_written": flushed,
                "records": writer.written_records,
                "files": writer.written_files,
                "dropped": writer.dropped,
            },
        )

    async def _invoke_endpoint(self, scope: Scope, receive: Receive, name: str) -> Response:
        """``InvokeEndpoint``: run the request through endpoint ``name``'s model."""
        headers = request_headers(scope)
        body, too_big = await read_body(receive)
        if too_big:
            raise PayloadTooLargeError(f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
        endpoint = await self.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(f"Endpoint {name} of account {ACCOUNT_ID} not found.")
        target = headers.get("x-amzn-sagemaker-target-variant")
        if target and target != endpoint.variant:
            raise ValidationError(
                f"Variant {target} not found for endpoint {name} of account {ACCOUNT_ID}."
            )
        if self.metrics is not None:
            self.metrics.count(endpoint.name, endpoint.variant)
        if endpoint.batcher is None:
            raise ModelError(
                name,
                500,
                f"the model failed to load: {endpoint.load_error}",
                region=self.settings.region,
            )
        outcome = await self._infer(endpoint, body, headers)
        return Response(
            200,
            outcome.body,
            [
                (b"content-type", outcome.content_type.encode("latin-1")),
                (b"x-amzn-invoked-production-variant", endpoint.variant.encode("latin-1")),
            ],
        )

    async def _invoke_container(self, scope: Scope, receive: Receive) -> Response:
        """SageMaker's container contract: answer as the one model this server holds."""
        headers = request_headers(scope)
        body, too_big = await read_body(receive)
        if too_big:
            raise PayloadTooLargeError(f"request body over {MAX_BODY_BYTES} bytes")
        names = [e["name"] for e in registry.list_endpoints(self.settings)]
        if len(names) != 1:
            raise ValidationError(
                f"/invocations needs exactly one registered endpoint, found {len(names)}; "
                "use /endpoints/NAME/invocations"
            )
        endpoint = await self.endpoints.get(names[0])
        if endpoint is None or endpoint.batcher is None:
            raise HttpError("the model is not loaded")
        if self.metrics is not None:
            self.metrics.count(endpoint.name, endpoint.variant)
        outcome = await self._infer(endpoint, body, headers)
        return Response(
            200, outcome.body, [(b"content-type", outcome.content_type.encode("latin-1"))]
        )

    async def _infer(self, endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> Outcome:
        """Run ``body`` through the endpoint's model (loaded); capture it when it succeeds."""
        assert endpoint.batcher is not None
        content_type = headers.get("content-type", "application/octet-stream")
        outcome = await endpoint.batcher.infer(body, content_type, headers.get("accept", "*/*"))
        if outcome.status != 200:
            raise ModelError(
                endpoint.name, outcome.status, outcome.message, region=self.settings.region
            )
        self._capture(endpoint, body, content_type, outcome, headers.get(INFERENCE_ID))
        return outcome

    async def _invoke_endpoint_async(self, scope: Scope, receive: Receive, name: str) -> Response:
        """``InvokeEndpointAsync``: check the request, queue it, answer 202 at once."""
        headers = request_headers(scope)
        body, too_big = await read_body(receive)
        if too_big:
            raise PayloadTooLargeError(f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
        try:
            config = await asyncio.get_running_loop().run_in_executor(
                None, registry.read_endpoint, self.settings, name
            )
        except registry.EndpointNotFoundError:
            raise ValidationError(f"Endpoint {name} of account {ACCOUNT_ID} not found.") from None
        job = parse_request(name, headers, body, config)
        self.async_invocations.submit(job)
        return accepted(job)

    async def _run_async(self, job: AsyncJob, body: bytes) -> AsyncResult:
        """Run one queued async job's input through its endpoint (as ``InvokeEndpoint`` would)."""
        endpoint = await self.endpoints.get(job.endpoint)
        if endpoint is None:
            message = f"Endpoint {job.endpoint} of account {ACCOUNT_ID} not found."
            return AsyncResult(message.encode(), "text/plain", True)
        if self.metrics is not None:
            self.metrics.count(endpoint.name, endpoint.variant)
        if endpoint.batcher is None:
            message = f"the model failed to load: {endpoint.load_error}"
            return AsyncResult(message.encode(), "text/plain", True)
        outcome = await endpoint.batcher.infer(body, job.content_type, job.accept)
        if outcome.status != 200:
            error = ModelError(
                endpoint.name, outcome.status, outcome.message, region=self.settings.region
            )
            return AsyncResult(error.message.encode(), "text/plain", True)
        self._capture(endpoint, body, job.content_type, outcome, job.inference_id)
        return AsyncResult(outcome.body, outcome.content_type, False)

    def _capture(
        self,
        endpoint: Endpoint,
        body: bytes,
        content_type: str,
        outcome: Outcome,
        inference_id: str | None,
    ) -> None:
        capture = endpoint.config.get("capture") or {}
        if self.writer is None or not capture.get("enabled"):
            return
        percentage = float(capture.get("sampling_percentage", 100))
        if percentage < 100 and random.random() * 100 >= percentage:
            return
        self.writer.submit(
            CaptureEvent(
                destination=str(capture["destination_s3_uri"]),
                endpoint=endpoint.name,
                variant=endpoint.variant,
                input_data=body,
                input_content_type=content_type,
                output_data=outcome.body,
                output_content_type=outcome.content_type,
                when=datetime.now(UTC),
                event_id=str(uuid.uuid4()),
                inference_id=inference_id,
            )
        )


def _s3_client() -> Any:
    import boto3  # deferred: only the capture thread needs it
    from botocore.config import Config

    # short timeouts and few retries: the writer retries itself, and shutdown must not hang
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})
    return boto3.session.Session().client("s3", config=config)


def create_app() -> EndpointServer:
    """uvicorn factory: one app (and one capture writer) per worker process."""
    settings = Settings.from_env()
    flush = float(os.environ.get("SCONES_CAPTURE_FLUSH_SECONDS", "2"))
    metrics_flush = float(os.environ.get("SCONES_METRICS_FLUSH_SECONDS", "5"))
    metrics = InvocationMetrics(cloudwatch_client, flush_interval=metrics_flush)
    writer = CaptureWriter.for_settings(settings, _s3_client, flush_interval=flush)
    return EndpointServer(settings, writer, metrics)


def create_guarded_app() -> Any:
    """uvicorn factory of the workers: ``create_app()`` behind the twin's SigV4 guard (requests
    signed with ``settings``' credentials only, none from web pages; ``GET /ping`` unsigned)."""
    from scones.twin.sigv4 import Verifier
    from scones.twin.sigv4_http import AsgiGuard

    app = create_app()
    open_routes = frozenset({("GET", "/ping"), ("HEAD", "/ping")})
    verifier = Verifier.for_settings(app.settings)
    return AsgiGuard(app, verifier, open_routes=open_routes, max_body=MAX_BODY_BYTES)
