"""The endpoint server's connection limits (stack tier: a private endpoint server, one worker,
free loopback port): a request must be read within ``SCONES_ENDPOINT_READ_TIMEOUT`` (1 s here)
or the connection is answered 408 and closed; beyond ``SCONES_ENDPOINT_MAX_CONNECTIONS`` (40
here) open connections new requests get 503; normal clients keep being served."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from scones.settings import Settings
from scones.twin import ports, services

pytestmark = pytest.mark.stack

READ_TIMEOUT = 1.0
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    saved = dict(os.environ)
    os.environ.update(
        {
            "SCONES_HOME": str(tmp_path_factory.mktemp("http-guard")),
            **ports.free_ports(),
            "SCONES_ENDPOINT_WORKERS": "1",
            "SCONES_ENDPOINT_READ_TIMEOUT": str(READ_TIMEOUT),
            "SCONES_ENDPOINT_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        }
    )
    settings = Settings.from_env()
    try:
        services.up(settings, only=["endpoint"], out=lambda _: None)
        yield settings.endpoint_port
    finally:
        services.down(settings, out=lambda _: None)
        os.environ.clear()
        os.environ.update(saved)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _ping(port: int, sock: socket.socket | None = None) -> bytes:
    """Status line of a ``GET /ping`` (on ``sock``, kept open, or a new connection)."""
    own = sock is None
    conn = sock or _connect(port)
    try:
        conn.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]
    finally:
        if own:
            conn.close()


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the server sends until it closes (True) or ``timeout`` passes (False)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass
    return data, True


HALF_SENT = [
    b"",  # connects and sends nothing
    b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-",  # half a header
    b"POST /endpoints/ep/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789",  # a tenth of the body
]


def test_half_sent_requests_are_closed_after_the_timeout_and_others_are_served(port: int) -> None:
    hostile = []
    for i in range(30):
        sock = _connect(port)
        sock.sendall(HALF_SENT[i % 3])
        hostile.append(sock)
    assert _ping(port) == b"HTTP/1.1 200 OK"  # served while they hang
    started = time.monotonic()
    results = [_read_until_closed(sock, timeout=READ_TIMEOUT + 5) for sock in hostile]
    waited = time.monotonic() - started
    for sock in hostile:
        sock.close()
    assert all(closed for _, closed in results)
    assert all(data.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for data, _ in results)
    assert waited > READ_TIMEOUT / 2  # closed by the deadline, not at once
    assert _ping(port) == b"HTTP/1.1 200 OK"


def test_a_keep_alive_connection_is_timed_per_request_not_in_total(port: int) -> None:
    sock = _connect(port)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 3 * READ_TIMEOUT:  # longer than one deadline
            assert _ping(port, sock) == b"HTTP/1.1 200 OK"
            time.sleep(READ_TIMEOUT / 4)
        sock.sendall(b"GET /ping HTTP/1.1\r\nHo")  # then a second request that stalls
        data, closed = _read_until_closed(sock, timeout=READ_TIMEOUT + 5)
        assert closed and b"408 Request Timeout" in data
    finally:
        sock.close()


def test_connections_beyond_the_limit_get_503_until_the_idle_ones_are_closed(port: int) -> None:
    idle = [_connect(port) for _ in range(MAX_CONNECTIONS + 5)]
    try:
        time.sleep(0.2)  # accepted by the server
        assert _ping(port) == b"HTTP/1.1 503 Service Unavailable"
        for sock in idle:
            _read_until_closed(sock, timeout=READ_TIMEOUT + 5)
    finally:
        for sock in idle:
            sock.close()
    assert _ping(port) == b"HTTP/1.1 200 OK"
