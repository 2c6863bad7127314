"""The endpoint server's processes: a small supervisor and its uvicorn workers.

``main`` (run as ``python -m scones.endpoint.server``) starts ``settings.endpoint_workers``
worker processes (``--worker``), restarts one that dies and stops them all on SIGTERM/SIGINT.
Each worker serves ``scones.endpoint.app`` with uvicorn (uvloop + httptools) on its own
SO_REUSEPORT socket, so the kernel spreads connections over the workers. Logs are JSON lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from scones.settings import Settings

log = logging.getLogger("scones.endpoint")
ENTRY_MODULE = "scones.endpoint.server"  # what services.py starts; ``--worker`` runs one worker


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


SUPERVISOR_PID_ENV = "SCONES_ENDPOINT_SUPERVISOR_PID"  # set for each worker it starts


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor disappears (best effort), and exit at
    once if it already has: a supervisor killed while this worker was still starting (before the
    prctl call) would otherwise leave it running forever."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        os._exit(0)  # the supervisor died before the signal was armed


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {raw!r}")
    return value


def serve_worker() -> int:
    """One worker process: uvicorn (uvloop, httptools) on its own SO_REUSEPORT socket, with a
    deadline for reading each request (``SCONES_ENDPOINT_READ_TIMEOUT``, 10 s) and at most
    ``SCONES_ENDPOINT_MAX_CONNECTIONS`` (1000) open connections (503 beyond)."""
    _die_with_parent()  # first: before the slow imports, so the window it closes stays short
    import uvicorn

    from scones.endpoint import http_guard

    settings = Settings.from_env()
    configure_logging()
    read_timeout = _env_number(http_guard.READ_TIMEOUT_ENV, http_guard.DEFAULT_READ_TIMEOUT)
    connections = _env_number(http_guard.MAX_CONNECTIONS_ENV, http_guard.DEFAULT_MAX_CONNECTIONS)
    config = uvicorn.Config(
        "scones.endpoint.app:create_guarded_app",  # SigV4 guard around create_app
        factory=True,
        loop="uvloop",
        http=http_guard.guarded_protocol(read_timeout),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        limit_concurrency=int(connections),
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
    command = [sys.executable, "-m", ENTRY_MODULE, "--worker"]
    env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
    restarts = 0
    code = 0
    while not stopping:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            status = proc.poll()
            if status is None or stopping:
                continue
            restarts += 1
            log.error(
                "endpoint worker exited; its spooled capture records are shipped by the others",
                extra={"pid": proc.pid, "status": status},
            )
            if restarts > restart_limit:
                log.error("endpoint workers keep dying: giving up", extra={"restarts": restarts})
                stopping, code = True, 1
                break
            procs[i] = subprocess.Popen(command, env=env)
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
