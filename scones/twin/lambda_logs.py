"""One invocation's log, as Lambda writes it to CloudWatch Logs and returns with ``--log-type Tail``.

Handlers run as threads of the twin's server, so ``print`` and ``logging`` of concurrent
invocations share one process. ``capture(request_id)`` collects what the *current thread*
prints (``sys.stdout`` / ``sys.stderr`` become proxies that also copy into the capturing
thread's buffer) and logs (a root handler that only records for a capturing
thread; the server's log still gets everything), framed by Lambda's ``START`` / ``END`` / ``REPORT`` lines. ``log_result`` is what the
Invoke API returns in ``X-Amz-Log-Result``: the last 4 KB, base64.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

TAIL_BYTES = 4096
_local = threading.local()
_install_lock = threading.Lock()


class _ThreadStream(io.TextIOBase):
    """Writes go to ``real`` and, for a capturing thread, to its buffer too."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        buffer = getattr(_local, "buffer", None)
        if buffer is not None:
            buffer.write(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.real, "encoding", "utf-8"))

    def isatty(self) -> bool:
        return False


class _ThreadHandler(logging.Handler):
    """Records logged by a capturing thread, in the Python runtime's line format."""

    def emit(self, record: logging.LogRecord) -> None:
        buffer = getattr(_local, "buffer", None)
        if buffer is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        millis = int(record.msecs)
        request_id = getattr(_local, "request_id", "")
        buffer.write(
            f"[{record.levelname}]\t{stamp}.{millis:03d}Z\t{request_id}\t{record.getMessage()}\n"
        )


def install() -> None:
    """Put the thread-aware streams and log handler in place (once per process)."""
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadStream):
            sys.stdout = _ThreadStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadStream):
            sys.stderr = _ThreadStream(sys.stderr)
        root = logging.getLogger()
        if not any(isinstance(h, _ThreadHandler) for h in root.handlers):
            root.addHandler(_ThreadHandler(logging.DEBUG))


class Capture:
    """The log text of one invocation (complete once the ``capture`` block has ended)."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.text = ""


def frame(request_id: str, body: str, started: float, memory_mb: int) -> str:
    """Lambda's START / END / REPORT lines around an invocation's own output."""
    duration_ms = (time.monotonic() - started) * 1000
    return (
        f"START RequestId: {request_id} Version: $LATEST\n{body}"
        f"END RequestId: {request_id}\n"
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
        f"Memory Size: {memory_mb} MB\t\n"
    )


@contextlib.contextmanager
def capture(request_id: str, memory_mb: int = 128) -> Iterator[Capture]:
    """Collect this thread's prints and log records while the block runs."""
    install()
    result = Capture(request_id)
    previous = getattr(_local, "buffer", None), getattr(_local, "request_id", None)
    _local.buffer, _local.request_id = io.StringIO(), request_id
    started = time.monotonic()
    try:
        yield result
    finally:
        body = _local.buffer.getvalue()
        _local.buffer, _local.request_id = previous
        result.text = frame(request_id, body, started, memory_mb)


def log_result(text: str) -> str:
    """``X-Amz-Log-Result``: the last 4 KB of the log, base64."""
    return base64.b64encode(text.encode("utf-8")[-TAIL_BYTES:]).decode("ascii")


def attach(response_headers: Any, text: str) -> None:
    """Add the log tail to an Invoke response's headers (moto drops it unless Tail was asked)."""
    response_headers["x-amz-log-result"] = log_result(text)
