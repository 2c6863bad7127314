"""``InvokeEndpointAsync`` for the twin's endpoints: input from S3, output to S3, in the background.

``POST /endpoints/{name}/async-invocations`` (what boto3's ``invoke_endpoint_async`` calls) is
checked at once and answered 202 with ``InferenceId`` (the request's
``X-Amzn-SageMaker-Inference-Id`` or a new UUID) and the ``X-Amzn-SageMaker-OutputLocation`` /
``X-Amzn-SageMaker-FailureLocation`` headers; the job then waits in a bounded queue
(``MAX_QUEUED``; a full queue answers 503 ``ServiceUnavailable``). Worker tasks read the input
(``X-Amzn-SageMaker-InputLocation``, an ``s3://`` URI on the twin's S3, or an inline body of at
most 128,000 bytes), run it through the endpoint's model like ``InvokeEndpoint`` (batched with
it) and write the answer to ``<output path>/<InferenceId>.out`` (``X-Amzn-SageMaker-Filename``
and ``-S3OutputPathExtension`` change the name and folder), or the error to
``<failure path>/<InferenceId>-error.out``.

The output path is the endpoint's ``async_inference.s3_output_path`` in ``endpoint.json`` when it
has one (``s3_failure_path`` likewise; failures go beside the outputs otherwise), else
``s3://<input bucket>/async-output/<endpoint>`` (the capture bucket for an inline body).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from scones.endpoint.descriptions import async_output
from scones.endpoint.responses import HttpError, Response, ValidationError

log = logging.getLogger("scones.endpoint")

MAX_QUEUED = 1000  # jobs waiting in one worker process; more answer 503
MAX_INLINE_BYTES = 128_000  # InvokeEndpointAsync's inline Body limit
WORKERS = 4  # jobs in flight at once per process (S3 reads and writes overlap inference)
DEFAULT_OUTPUT_PREFIX = "async-output"
S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(.+)$")
HEADER = "x-amzn-sagemaker-"


class ServiceUnavailableError(HttpError):
    """The async queue is full (SageMaker's 503 ``ServiceUnavailable``)."""

    status = 503
    code = "ServiceUnavailable"


@dataclass(frozen=True)
class AsyncJob:
    """One accepted ``InvokeEndpointAsync`` request."""

    endpoint: str
    inference_id: str
    content_type: str
    accept: str
    input_location: str | None
    inline: bytes
    output_location: str
    failure_location: str
    custom_attributes: str | None = None


@dataclass(frozen=True)
class AsyncResult:
    """What a job's inference gave: the bytes and content type to store, and whether it failed."""

    body: bytes
    content_type: str
    failed: bool


Runner = Callable[[AsyncJob, bytes], Awaitable[AsyncResult]]


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ``ValidationError`` for anything else."""
    match = S3_URI.match(uri)
    if match is None:
        raise ValidationError(f"InputLocation {uri!r} is not a valid S3 URI (s3://bucket/key).")
    return match.group(1), match.group(2)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def parse_request(
    name: str, headers: dict[str, str], body: bytes, config: dict[str, Any]
) -> AsyncJob:
    """Check one request against endpoint ``config`` (its ``endpoint.json``) and name its output."""
    location = headers.get(HEADER + "inputlocation") or None
    if location is not None and body:
        raise ValidationError("Body and InputLocation are mutually exclusive: provide one.")
    if location is None and not body:
        raise ValidationError("Provide InputLocation (an s3:// URI) or an inline Body.")
    if len(body) > MAX_INLINE_BYTES:
        raise ValidationError(
            f"Inline Body is {len(body)} bytes; InvokeEndpointAsync accepts at most "
            f"{MAX_INLINE_BYTES}: upload it to S3 and pass InputLocation."
        )
    bucket = split_s3(location)[0] if location else None
    configured = async_output(config)
    if configured is not None:
        output_path = configured["S3OutputPath"]
        failure_path = configured.get("S3FailurePath", output_path)
    else:
        if bucket is None:  # an inline body: the capture destination's bucket
            capture = str((config.get("capture") or {}).get("destination_s3_uri") or "")
            match = S3_URI.match(capture.rstrip("/") + "/x")
            bucket = match.group(1) if match else None
        if bucket is None:
            raise ValidationError(
                f"Endpoint {name} has no async output path: pass InputLocation, or register "
                "it with async_inference.s3_output_path."
            )
        output_path = failure_path = f"s3://{bucket}/{DEFAULT_OUTPUT_PREFIX}/{name}"
    inference_id = headers.get(HEADER + "inference-id") or str(uuid.uuid4())
    extension = headers.get(HEADER + "s3outputpathextension", "")
    filename = headers.get(HEADER + "filename") or f"{inference_id}.out"
    if "/" in filename or filename in (".", ".."):
        raise ValidationError(f"Filename {filename!r} must not contain '/'.")
    return AsyncJob(
        endpoint=name,
        inference_id=inference_id,
        content_type=headers.get(HEADER + "content-type", "application/octet-stream"),
        accept=headers.get(HEADER + "accept", "*/*"),
        input_location=location,
        inline=body,
        output_location="s3://" + _join(output_path.removeprefix("s3://"), extension, filename),
        failure_location="s3://"
        + _join(failure_path.removeprefix("s3://"), extension, f"{inference_id}-error.out"),
        custom_attributes=headers.get(HEADER + "custom-attributes"),
    )


def accepted(job: AsyncJob) -> Response:
    """The 202 answer for an accepted job."""
    return Response(
        202,
        json.dumps({"InferenceId": job.inference_id}).encode(),
        [
            (b"content-type", b"application/json"),
            (b"x-amzn-sagemaker-outputlocation", job.output_location.encode("utf-8")),
            (b"x-amzn-sagemaker-failurelocation", job.failure_location.encode("utf-8")),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
        ],
    )


class AsyncInvocations:
    """The bounded queue of accepted jobs and the tasks that run them (one per worker process)."""

    def __init__(self, s3_factory: Callable[[], Any], run: Runner) -> None:
        self._s3_factory = s3_factory
        self._s3: Any = None
        self._run = run
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="async-s3")
        self._queue: asyncio.Queue[AsyncJob] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.done = 0
        self.failed = 0

    def submit(self, job: AsyncJob) -> None:
        """Queue ``job`` (the worker tasks start with the first one); 503 when the queue is full."""
        if self._queue is None or self._tasks and self._tasks[0].get_loop().is_closed():
            self._queue = asyncio.Queue(MAX_QUEUED)
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._worker()) for _ in range(WORKERS)]
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise ServiceUnavailableError(
                f"{MAX_QUEUED} async invocations are already waiting in this worker; retry later."
            ) from None

    async def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued job; True when all finished."""
        if self._queue is None:
            return True
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 10.0) -> None:
        """Finish queued jobs (up to ``timeout`` s), then stop the tasks; log any left undone."""
        finished = await self.join(timeout)
        left = self._queue.qsize() if self._queue is not None else 0
        for task in self._tasks:
            task.cancel()
        self._io.shutdown(wait=False)
        log.info(
            "async invocations stopped",
            extra={
                "done": self.done,
                "failed": self.failed,
                "all_finished": finished,
                "left": left,
            },
        )

    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = self._s3_factory()
        return self._s3

    def _get(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        body: bytes = self._client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def _put(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = split_s3(uri)
        self._client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await self._process(job)
            except Exception:  # a worker task must outlive any one job
                log.exception("async invocation failed", extra={"inference_id": job.inference_id})
            finally:
                self._queue.task_done()

    async def _process(self, job: AsyncJob) -> None:
        loop = asyncio.get_running_loop()
        try:
            body = job.inline
            if job.input_location is not None:
                body = await loop.run_in_executor(self._io, self._get, job.input_location)
        except Exception as exc:  # botocore's ClientError, a connection error
            result = AsyncResult(
                f"Failed to read the input {job.input_location}: {exc}".encode(), "text/plain", True
            )
        else:
            result = await self._run(job, body)
        target = job.failure_location if result.failed else job.output_location
        await loop.run_in_executor(self._io, self._put, target, result.body, result.content_type)
        if result.failed:
            self.failed += 1
        else:
            self.done += 1
        log.info(
            "async invocation written",
            extra={"inference_id": job.inference_id, "location": target, "failed": result.failed},
        )
