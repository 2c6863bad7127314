"""The offline twin's SageMaker Runtime: ``python -m scones.endpoint.server``.

Serves every endpoint registered under ``$SCONES_HOME/endpoints`` (see ``endpoint_registry``)
through its model's own ``code/inference.py``, at the path boto3's ``sagemaker-runtime`` client
calls, ``POST /endpoints/{name}/invocations``, with SageMaker's error shapes (424 ``ModelError``,
400 ``ValidationError``, 413 for bodies over 6 MB, 503 ``ServiceUnavailable``). It also speaks the
SageMaker container contract, ``GET /ping`` and ``POST /invocations`` (when exactly one endpoint
is registered). Successful invocations are written to S3 in Data Capture format when the endpoint
enables it (see ``capture``).

Speed: a raw ASGI app on uvicorn (uvloop + httptools) with ``settings.endpoint_workers``
processes; in each, requests that queue while a batch runs form the next batch, run in one
inference thread so the event loop keeps accepting.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import random
import sys
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from scones.endpoint import registry as endpoint_registry
from scones.endpoint.capture import CaptureEvent, CaptureWriter
from scones.settings import Settings

log = logging.getLogger("scones.endpoint")

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint payload limit
MAX_BATCH = 64
RECHECK_SECONDS = 1.0
ACCOUNT_ID = "123456789012"
DEFAULT_ACCEPT = "application/json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Original status codes the "container" answers with, by exception class name (then base class).
_STATUS_BY_ERROR = {
    "UnsupportedContentTypeError": 415,
    "UnsupportedAcceptError": 406,
    "ValueError": 400,
}


class ModelLoadError(RuntimeError):
    """The model's ``code/inference.py`` could not be imported or its ``model_fn`` failed."""


@dataclass
class Outcome:
    """The result of one invocation: a body, or the status and message the container gave."""

    status: int
    body: bytes
    content_type: str = DEFAULT_ACCEPT
    message: str = ""


def _original_status(exc: BaseException) -> int:
    for klass in type(exc).__mro__:
        status = _STATUS_BY_ERROR.get(klass.__name__)
        if status:
            return status
    return 500


def _error_outcome(exc: BaseException) -> Outcome:
    message = f"{type(exc).__name__}: {exc}"
    status = _original_status(exc)
    if status == 500:
        trace = "".join(traceback.format_exception(exc))
        log.error("model code raised", extra={"error": message, "trace": trace})
    return Outcome(status=status, body=b"", message=message)


def _import_inference(model_dir: Path, module_name: str) -> ModuleType:
    code_dir = model_dir / "code"
    path = code_dir / "inference.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # registered like any import (dataclasses and typing look modules up there); a unique name
    # per load, removed again when the endpoint is replaced
    sys.modules[module_name] = module
    sys.path.insert(0, str(code_dir))  # so inference.py can import its sibling modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(str(code_dir))
    return module


class LoadedModel:
    """A model served through its ``inference.py`` handler functions."""

    def __init__(self, model_dir: Path, module_name: str) -> None:
        try:
            self.module = _import_inference(model_dir, module_name)
            self.model = self.module.model_fn(str(model_dir))
        except Exception as exc:
            raise ModelLoadError(f"loading {model_dir}: {type(exc).__name__}: {exc}") from exc
        self.batch_fn = getattr(self.module, "predict_batch_fn", None)

    def _predict_all(self, arrays: list[Any]) -> list[Any]:
        if self.batch_fn is not None:
            try:
                return list(self.batch_fn(arrays, self.model))
            except Exception:  # find out which input fails, one by one
                pass
        results: list[Any] = []
        for array in arrays:
            try:
                results.append(self.module.predict_fn(array, self.model))
            except Exception as exc:
                results.append(exc)
        return results

    def run_batch(self, items: list[tuple[bytes, str, str]]) -> list[Outcome]:
        """Run (body, content_type, accept) items as one batch; one Outcome each, in order."""
        outcomes: list[Outcome | None] = [None] * len(items)
        arrays, positions = [], []
        for i, (body, content_type, _accept) in enumerate(items):
            try:
                arrays.append(self.module.input_fn(body, content_type))
                positions.append(i)
            except Exception as exc:
                outcomes[i] = _error_outcome(exc)
        predictions = self._predict_all(arrays) if arrays else []
        for i, prediction in zip(positions, predictions, strict=True):
            if isinstance(prediction, BaseException):
                outcomes[i] = _error_outcome(prediction)
                continue
            accept = items[i][2]
            try:
                result = self.module.output_fn(prediction, accept)
            except Exception as exc:
                outcomes[i] = _error_outcome(exc)
                continue
            if isinstance(result, tuple):  # (body, content_type), as some toolkits return
                body, content_type = result
            else:
                body = result
                content_type = DEFAULT_ACCEPT if accept in ("", "*/*") else accept
            if isinstance(body, str):
                body = body.encode("utf-8")
            outcomes[i] = Outcome(status=200, body=bytes(body), content_type=content_type)
        return [o if o is not None else Outcome(500, b"", message="no result") for o in outcomes]


class Batcher:
    """Runs whatever requests queued while the previous batch ran as the next batch."""

    def __init__(self, model: LoadedModel, executor: ThreadPoolExecutor) -> None:
        self.model = model
        self.executor = executor
        self.queue: deque[tuple[tuple[bytes, str, str], asyncio.Future[Outcome]]] = deque()
        self.running = False

    async def infer(self, body: bytes, content_type: str, accept: str) -> Outcome:
        """Queue one request and wait for its outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.queue.append(((body, content_type, accept), future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                count = min(len(self.queue), MAX_BATCH)
                batch = [self.queue.popleft() for _ in range(count)]
                try:
                    outcomes = await loop.run_in_executor(
                        self.executor, self.model.run_batch, [item for item, _ in batch]
                    )
                except Exception as exc:  # a bug in run_batch itself
                    outcomes = [_error_outcome(exc)] * count
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self.running = False


@dataclass
class Endpoint:
    """A registered endpoint as one worker currently serves it."""

    name: str
    signature: tuple[int, int, int]
    config: dict[str, Any]
    batcher: Batcher | None
    load_error: str = ""
    checked: float = field(default_factory=time.monotonic)

    @property
    def variant(self) -> str:
        return str(self.config.get("variant", "AllTraffic"))


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class EndpointServer:
    """The ASGI application (create one per worker process with ``create_app``)."""

    def __init__(self, settings: Settings, writer: CaptureWriter | None = None) -> None:
        self.settings = settings
        self.writer = writer
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.endpoints: dict[str, Endpoint] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.generation = 0

    # ---------- endpoint registry ----------

    def _load(self, name: str, signature: tuple[int, int, int]) -> Endpoint:
        folder = endpoint_registry.endpoint_dir(self.settings, name)
        config = json.loads((folder / endpoint_registry.ENDPOINT_FILE).read_text("utf-8"))
        self.generation += 1
        module_name = f"scones_endpoint_{name.replace('-', '_')}_{self.generation}"
        try:
            model = LoadedModel(folder / endpoint_registry.MODEL_DIR, module_name)
        except ModelLoadError as exc:
            log.error("model failed to load", extra={"endpoint": name, "error": str(exc)})
            return Endpoint(name, signature, config, None, load_error=str(exc))
        log.info("endpoint loaded", extra={"endpoint": name, "variant": config.get("variant")})
        return Endpoint(name, signature, config, Batcher(model, self.executor))

    async def endpoint(self, name: str) -> Endpoint | None:
        """Return endpoint ``name``, reloading it when its ``endpoint.json`` changed."""
        current = self.endpoints.get(name)
        now = time.monotonic()
        if current is not None and now - current.checked < RECHECK_SECONDS:
            return current
        if not endpoint_registry.NAME_PATTERN.match(name):
            return None
        path = endpoint_registry.endpoint_dir(self.settings, name) / endpoint_registry.ENDPOINT_FILE
        signature = _signature(path)
        if signature is None:
            gone = self.endpoints.pop(name, None)
            if gone is not None and gone.batcher is not None:
                sys.modules.pop(gone.batcher.model.module.__name__, None)
            return None
        if current is not None and current.signature == signature:
            current.checked = now
            return current
        lock = self.locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self.endpoints.get(name)
            if current is not None and current.signature == signature:
                return current
            loop = asyncio.get_running_loop()
            try:
                loaded = await loop.run_in_executor(self.executor, self._load, name, signature)
            except (OSError, ValueError):  # endpoint.json vanished or is being replaced
                return current
            previous = self.endpoints.get(name)
            if previous is not None and previous.batcher is not None:
                sys.modules.pop(previous.batcher.model.module.__name__, None)
            self.endpoints[name] = loaded
            return loaded

    # ---------- ASGI ----------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/ping" and method in ("GET", "HEAD"):
            await _respond(send, 200, b"", [(b"content-type", b"text/plain")])
            return
        if path.startswith("/endpoints/") and path.endswith("/invocations"):
            name = path[len("/endpoints/") : -len("/invocations")]
            if method != "POST":
                await _aws_error(send, 405, "ValidationError", f"{method} is not allowed here")
                return
            await self._invoke_endpoint(scope, receive, send, name)
            return
        if path == "/invocations" and method == "POST":
            await self._invoke_container(scope, receive, send)
            return
        await _aws_error(send, 404, "UnknownOperationException", f"no route for {method} {path}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.writer is not None:
                    self.writer.start()
                log.info("endpoint server worker ready", extra={"pid": os.getpid()})
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.writer is not None:
                    loop = asyncio.get_running_loop()
                    flushed = await loop.run_in_executor(None, self.writer.close)
                    log.info(
                        "capture writer closed",
                        extra={
                            "pid": os.getpid(),
                            "all_written": flushed,
                            "records": self.writer.written_records,
                            "files": self.writer.written_files,
                            "dropped": self.writer.dropped,
                        },
                    )
                self.executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _invoke_endpoint(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        headers = _headers(scope)
        body, too_big = await _read_body(receive)
        if too_big:
            await _aws_error(
                send,
                413,
                "ValidationError",
                f"Request body is larger than the {MAX_BODY_BYTES} bytes InvokeEndpoint accepts.",
            )
            return
        endpoint = await self.endpoint(name)
        if endpoint is None:
            await _aws_error(
                send, 400, "ValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not found."
            )
            return
        target = headers.get("x-amzn-sagemaker-target-variant")
        if target and target != endpoint.variant:
            await _aws_error(
                send,
                400,
                "ValidationError",
                f"Variant {target} not found for endpoint {name} of account {ACCOUNT_ID}.",
            )
            return
        if endpoint.batcher is None:
            await _model_error(send, name, 500, f"the model failed to load: {endpoint.load_error}")
            return
        content_type = headers.get("content-type", "application/octet-stream")
        accept = headers.get("accept", "*/*")
        outcome = await endpoint.batcher.infer(body, content_type, accept)
        if outcome.status != 200:
            await _model_error(send, name, outcome.status, outcome.message)
            return
        self._capture(endpoint, body, content_type, outcome, headers)
        await _respond(
            send,
            200,
            outcome.body,
            [
                (b"content-type", outcome.content_type.encode("latin-1")),
                (b"x-amzn-invoked-production-variant", endpoint.variant.encode("latin-1")),
            ],
        )

    def _capture(
        self,
        endpoint: Endpoint,
        body: bytes,
        content_type: str,
        outcome: Outcome,
        headers: dict[str, str],
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
                inference_id=headers.get("x-amzn-sagemaker-inference-id"),
            )
        )

    async def _invoke_container(self, scope: Scope, receive: Receive, send: Send) -> None:
        """SageMaker's container contract: answer as the one model this server holds."""
        headers = _headers(scope)
        body, too_big = await _read_body(receive)
        if too_big:
            await _plain(send, 413, f"request body over {MAX_BODY_BYTES} bytes")
            return
        names = [e["name"] for e in endpoint_registry.list_endpoints(self.settings)]
        if len(names) != 1:
            await _plain(
                send,
                400,
                f"/invocations needs exactly one registered endpoint, found {len(names)}; "
                "use /endpoints/NAME/invocations",
            )
            return
        endpoint = await self.endpoint(names[0])
        if endpoint is None or endpoint.batcher is None:
            await _plain(send, 500, "the model is not loaded")
            return
        content_type = headers.get("content-type", "application/octet-stream")
        outcome = await endpoint.batcher.infer(body, content_type, headers.get("accept", "*/*"))
        if outcome.status != 200:
            await _plain(send, outcome.status, outcome.message)
            return
        self._capture(endpoint, body, content_type, outcome, headers)
        await _respond(
            send, 200, outcome.body, [(b"content-type", outcome.content_type.encode("latin-1"))]
        )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """Read the whole request body; past the limit keep reading but drop it (True = too big)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > MAX_BODY_BYTES:
        return b"", True
    return b"".join(chunks), False


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _aws_error(
    send: Send, status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> None:
    """An error in the shape botocore's rest-json parser turns into ``ClientError`` ``code``."""
    payload = {"ErrorCode": code, "Message": message, **(extra or {})}
    await _respond(
        send,
        status,
        json.dumps(payload).encode("utf-8"),
        [
            (b"content-type", b"application/json"),
            (b"x-amzn-errortype", code.encode("latin-1")),
            (b"x-amzn-requestid", str(uuid.uuid4()).encode("latin-1")),
        ],
    )


async def _model_error(send: Send, name: str, status: int, message: str) -> None:
    kind = "client" if status < 500 else "server"
    log_group = f"/aws/sagemaker/Endpoints/{name}"
    text = (
        f'Received {kind} error ({status}) from primary with message "{message}". '
        f"See the endpoint log (scones status) for more information."
    )
    await _aws_error(
        send,
        424,
        "ModelError",
        text,
        {
            "OriginalStatusCode": status,
            "OriginalMessage": message,
            "LogStreamArn": f"arn:aws:logs:local:{ACCOUNT_ID}:log-group:{log_group}",
        },
    )


async def _plain(send: Send, status: int, message: str) -> None:
    await _respond(send, status, message.encode("utf-8"), [(b"content-type", b"text/plain")])


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
    return EndpointServer(settings, CaptureWriter(_s3_client, flush_interval=flush))


class _JsonFormatter(logging.Formatter):
    _standard = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    """JSON lines on stderr (``$SCONES_HOME/logs/endpoint.log`` when started by ``scones up``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    root = logging.getLogger("scones")
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("SCONES_LOG_LEVEL", "INFO").upper())
    root.propagate = False


def _listening_socket(host: str, port: int) -> Any:
    """A listening socket with SO_REUSEPORT: every worker binds its own, and the kernel spreads
    new connections evenly over them (a shared socket gave one worker 89 % of a burst)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor disappears (best effort)."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve_worker() -> int:
    """One worker process: uvicorn (uvloop, httptools) on its own SO_REUSEPORT socket."""
    import uvicorn

    _die_with_parent()
    settings = Settings.from_env()
    configure_logging()
    config = uvicorn.Config(
        "scones.endpoint.server:create_app",
        factory=True,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[_listening_socket(settings.host, settings.endpoint_port)])
    return 0


def supervise(workers: int, *, restart_limit: int = 5) -> int:
    """Run ``workers`` worker processes; restart one that dies; on SIGTERM/SIGINT stop them all
    (each flushes its Data Capture) and return."""
    import signal
    import subprocess

    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    command = [sys.executable, "-m", "scones.endpoint.server", "--worker"]
    procs = [subprocess.Popen(command) for _ in range(workers)]
    restarts = 0
    code = 0
    while not stopping:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            status = proc.poll()
            if status is None or stopping:
                continue
            restarts += 1
            log.error("endpoint worker exited", extra={"pid": proc.pid, "status": status})
            if restarts > restart_limit:
                log.error("endpoint workers keep dying: giving up", extra={"restarts": restarts})
                stopping, code = True, 1
                break
            procs[i] = subprocess.Popen(command)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 25
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.info("endpoint server stopped", extra={"pid": os.getpid()})
    return code


def main(argv: list[str] | None = None) -> int:
    """Serve on ``settings.endpoint_port`` (loopback) with ``settings.endpoint_workers`` worker
    processes under a small supervisor (``--worker`` runs one worker)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--worker"]:
        return serve_worker()
    settings = Settings.from_env()
    configure_logging()
    workers = max(1, settings.endpoint_workers)
    log.info(
        "starting endpoint server",
        extra={"url": settings.endpoint_url, "workers": workers, "home": str(settings.home)},
    )
    return supervise(workers)


if __name__ == "__main__":
    sys.exit(main())
