"""A deadline for reading each request, on top of uvicorn's httptools protocol.

uvicorn closes a keep-alive connection that stays idle after a response (``timeout_keep_alive``)
but has no limit on how long a client may take to send a request: a connection that sends half
a header, or a body slower than it announced, stays open for ever, and enough of them exhaust
the server. ``guarded_protocol(seconds)`` returns a protocol class that gives every request
``seconds`` from the connection's start (first request) or from its first byte (later requests
on a keep-alive connection) until the request, headers and body, is complete; then it answers
``408 Request Timeout`` (when no response has started) and closes the connection. The time the
app takes to answer does not count.

``uvicorn.Config(http=guarded_protocol(10), limit_concurrency=N)`` runs it; ``limit_concurrency``
answers 503 beyond ``N`` open connections per worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("scones.endpoint")

READ_TIMEOUT_ENV = "SCONES_ENDPOINT_READ_TIMEOUT"  # seconds to send a whole request (10)
MAX_CONNECTIONS_ENV = "SCONES_ENDPOINT_MAX_CONNECTIONS"  # open connections per worker (1000)
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1000

_TIMEOUT_BODY = b"request not received in time\n"
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n"
) + _TIMEOUT_BODY


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes a connection whose request is not read in time."""

    read_timeout = DEFAULT_READ_TIMEOUT
    timed_out = 0  # connections closed by the deadline in this worker

    def _arm(self) -> None:
        if getattr(self, "_deadline", None) is None:
            loop: asyncio.AbstractEventLoop = self.loop
            self._deadline: asyncio.TimerHandle | None = loop.call_later(
                self.read_timeout, self._read_timed_out
            )

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: Any) -> None:  # noqa: D102 (asyncio.Protocol)
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:  # noqa: D102 (httptools callback)
        super().on_message_begin()
        self._arm()  # a later request on a keep-alive connection: from its first byte

    def on_message_complete(self) -> None:  # noqa: D102 (httptools callback)
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._disarm()
        super().connection_lost(exc)

    def _read_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        type(self).timed_out += 1
        log.debug("request not read in time: connection closed", extra={"client": self.client})
        self.transport.close()


def guarded_protocol(read_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with ``read_timeout`` seconds per request (see the module docstring)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"read_timeout": float(read_timeout)},
    )
