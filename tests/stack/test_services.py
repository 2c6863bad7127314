"""``scones up / down / status`` for real: idempotency, health, memory, loopback-only binding."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from scones.cli import main
from scones.settings import Settings
from scones.twin import processes, services


def _running(settings: Settings) -> list[services.Service]:
    return [s for s in services.SERVICES if services.running_pid(settings, s) is not None]


def _listening(pids: list[int]) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket held by ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        inodes |= {link[8:-1] for link in links if link.startswith("socket:[")}
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            if width == 8:
                address = socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_addr)[::-1])
            else:
                raw = b"".join(bytes.fromhex(hex_addr[i : i + 8])[::-1] for i in range(0, 32, 8))
                address = socket.inet_ntop(socket.AF_INET6, raw)
            found.append((address, int(hex_port, 16)))
    return found


def test_services_listen_on_loopback_only(twin_settings: Settings) -> None:
    running = _running(twin_settings)
    assert {s.name for s in running} >= {"s3", "endpoint"}
    for service in running:
        pid = services.running_pid(twin_settings, service)
        assert pid is not None
        sockets = _listening(processes.process_tree(pid))
        assert (twin_settings.host, service.port(twin_settings)) in sockets, service.name
        outside = [s for s in sockets if s[0] not in ("127.0.0.1", "::1")]
        assert not outside, f"{service.name} listens beyond loopback: {outside}"


def test_up_again_changes_nothing(
    twin_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {s.name: services.running_pid(twin_settings, s) for s in _running(twin_settings)}
    only = [arg for name in before for arg in ("--only", name)]
    assert main(["up", *only]) == 0
    out = capsys.readouterr().out
    assert out.count("already running") == len(before)
    after = {s.name: services.running_pid(twin_settings, s) for s in _running(twin_settings)}
    assert after == before


def test_status_reports_pid_port_memory_and_health(
    twin_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {r.name: r for r in services.status(twin_settings)}
    for name in ("s3", "endpoint"):
        row = rows[name]
        assert row.running and row.healthy
        assert row.pid == services.running_pid(
            twin_settings, services.SERVICES[[s.name for s in services.SERVICES].index(name)]
        )
        assert row.rss_bytes > 10 * 2**20
        assert row.url.startswith("http://127.0.0.1:")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "s3 " in out and "endpoint " in out and "total RSS" in out


def test_status_says_failing_when_a_service_does_not_answer(
    twin_settings: Settings, tmp_path: Path
) -> None:
    """A PID file pointing at a live process of the service kind that does not answer."""
    settings = replace(twin_settings, home=tmp_path, endpoint_port=1)
    endpoint = next(s for s in services.SERVICES if s.name == "endpoint")
    real_pid = services.running_pid(twin_settings, endpoint)
    services.pid_file(settings, endpoint).parent.mkdir(parents=True)
    services.pid_file(settings, endpoint).write_text(f"{real_pid}\n")
    row = next(r for r in services.status(settings) if r.name == "endpoint")
    assert row.running and not row.healthy


def test_up_refuses_a_port_taken_by_another_program(
    twin_settings: Settings, tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = replace(twin_settings, home=tmp_path, endpoint_port=port)
        endpoint = next(s for s in services.SERVICES if s.name == "endpoint")
        with pytest.raises(
            services.ServiceError,
            match=f"port {port} .* taken by another program; stop it or set SCONES_ENDPOINT_PORT",
        ):
            services.start_service(settings, endpoint)
    assert not services.pid_file(settings, endpoint).exists()


def test_a_service_that_dies_at_start_names_its_log(
    twin_settings: Settings, tmp_path: Path
) -> None:
    settings = replace(twin_settings, home=tmp_path)
    broken = services.Service(
        name="broken",
        title="broken",
        marker="never-matches",
        port=lambda s: 1,
        url=lambda s: "http://127.0.0.1:1",
        health_path="/",
        command=lambda s: [
            sys.executable,
            "-c",
            "import sys; print('boom: bad config'); sys.exit(3)",
        ],
        available=lambda: None,
    )
    with pytest.raises(services.ServiceError) as exc:
        services.start_service(settings, broken)
    message = str(exc.value)
    assert "code 3" in message and str(tmp_path / "logs" / "broken.log") in message
    assert "boom: bad config" in message
    assert not services.pid_file(settings, broken).exists()


def test_down_on_a_stopped_twin_is_harmless(
    twin_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = replace(twin_settings, home=tmp_path)
    services.pid_file(settings, services.SERVICES[0]).parent.mkdir(parents=True)
    # a stale PID file: this pytest process is not SeaweedFS, so it must not be killed
    services.pid_file(settings, services.SERVICES[0]).write_text(f"{os.getpid()}\n")
    services.down(settings)
    assert capsys.readouterr().out.count("not running") == len(services.SERVICES)
    assert not services.pid_file(settings, services.SERVICES[0]).exists()


def test_stop_and_start_one_service_again(twin_settings: Settings) -> None:
    """The endpoint comes back on the same port after a stop (SO_REUSEADDR, TIME_WAIT)."""
    import urllib.request

    endpoint = next(s for s in services.SERVICES if s.name == "endpoint")
    for _ in range(3):  # leave some connections in TIME_WAIT
        urllib.request.urlopen(twin_settings.endpoint_url + "/ping", timeout=5).close()
    assert services.stop_service(twin_settings, endpoint)
    assert services.running_pid(twin_settings, endpoint) is None
    assert not services.stop_service(twin_settings, endpoint)
    pid, started = services.start_service(twin_settings, endpoint)
    assert started and services.healthy(twin_settings, endpoint)


def test_endpoint_supervisor_replaces_a_dead_worker_and_workers_follow_it(
    twin_settings: Settings, tmp_path: Path
) -> None:
    """A killed worker is replaced; if the supervisor itself is killed, the workers exit."""
    import signal
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = replace(twin_settings, home=tmp_path, endpoint_port=port, endpoint_workers=2)
    endpoint = next(s for s in services.SERVICES if s.name == "endpoint")
    supervisor, _ = services.start_service(settings, endpoint)
    try:
        workers = processes.process_tree(supervisor)[1:]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            now = processes.process_tree(supervisor)[1:]
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        now = processes.process_tree(supervisor)[1:]
        assert len(now) == 2 and workers[0] not in now
        for _ in range(4):
            with urllib.request.urlopen(settings.endpoint_url + "/ping", timeout=5) as response:
                assert response.status == 200
        os.kill(supervisor, signal.SIGKILL)
        processes.reap(supervisor, wait=5)  # our child: leave no zombie
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(processes.alive(w) for w in now):
            time.sleep(0.2)
        assert not any(processes.alive(w) for w in now), "workers outlived their supervisor"
    finally:
        services.stop_service(settings, endpoint)
