"""The AWS CLI tier: a private twin driven with plain ``aws ...`` commands, as a user would.

``aws_cli`` (session): the AWS CLI that ``make install-awscli`` puts in ``.venv/awscli``
(``$SCONES_AWSCLI`` overrides). This tier installs nothing: without the binary it skips with the
command to run, unless ``SCONES_REQUIRE_AWSCLI=1`` (CI, ``.ci/run``) makes that a failure.

``cli_twin`` (session): a twin of its own (temporary ``SCONES_HOME``, free loopback ports,
``scones up``), the project deployed to it with a tiny real model (``scones deploy --local``),
stopped at the end. ``aws`` runs the CLI with exactly what ``scones env`` prints for that twin,
no AWS config or credentials files, and a network guard (``sitecustomize`` on ``PYTHONPATH``)
that refuses to resolve or connect to anything but loopback: a call the twin does not answer
fails loudly instead of reaching AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scones.settings import Settings
from scones.twin import ports

PROJECT = Path(__file__).resolve().parents[2]
GUARD_MARK = "scones-network-guard"

NETWORK_GUARD = f'''
"""Loaded by every Python the AWS CLI tier starts: nothing but loopback is resolved or reached."""
import ipaddress
import socket

_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def _loopback(host):
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host):
        raise OSError("{GUARD_MARK}: refused to resolve " + str(host))
    return _getaddrinfo(host, *args, **kwargs)


def connect(self, address):
    if isinstance(address, tuple) and not _loopback(address[0]):
        raise OSError("{GUARD_MARK}: refused to connect to " + str(address[0]))
    return _connect(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
'''


@pytest.fixture(scope="session")
def aws_cli() -> Path:
    """The AWS CLI binary of ``.venv/awscli`` (or ``$SCONES_AWSCLI``)."""
    path = Path(os.environ.get("SCONES_AWSCLI") or PROJECT / ".venv" / "awscli" / "bin" / "aws")
    if not path.is_file():
        message = f"the AWS CLI is not installed at {path}: run `make install-awscli`"
        if os.environ.get("SCONES_REQUIRE_AWSCLI") == "1":
            pytest.fail(message + " (SCONES_REQUIRE_AWSCLI=1)")
        pytest.skip(message)
    return path


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def scones_env_exports(scones: dict[str, str]) -> dict[str, str]:
    """What ``eval "$(scones env)"`` sets, read back from a real shell."""
    env = {"PATH": os.environ.get("PATH", ""), **scones}
    printed = subprocess.run(
        [str(Path(sys.executable).with_name("scones")), "env"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=PROJECT,
        timeout=60,
    ).stdout
    shell = subprocess.run(
        ["bash", "-c", printed + "\nenv -0"], capture_output=True, check=True, env={}, timeout=30
    ).stdout.decode()
    exported = dict(item.split("=", 1) for item in shell.split("\0") if "=" in item)
    return {k: v for k, v in exported.items() if k.startswith(("AWS_", "SCONES_"))}


@dataclass
class CliTwin:
    """A running private twin and the environment ``scones env`` gives its AWS CLI."""

    settings: Settings
    exports: dict[str, str]
    home: Path


@pytest.fixture(scope="session")
def cli_twin(aws_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliTwin]:
    from scones.cli import main
    from scones.training.tiny import build_tiny_model

    home = tmp_path_factory.mktemp("awscli-home")
    scones = {"SCONES_HOME": str(home), **ports.free_ports(), "SCONES_BRIDGE": "0"}
    model = build_tiny_model(tmp_path_factory.mktemp("awscli-model"))
    # the SCONES_* variables are in os.environ only while scones commands run: a session
    # fixture that kept them (SCONES_BRIDGE=0 among them) would leak into later tiers' twins
    try:
        with _environ(scones):
            if main(["up"]) != 0:
                pytest.fail(f"scones up failed; logs in {home / 'logs'}")
            settings = Settings.from_env()  # `scones up` wrote this install's random secret
            if main(["deploy", "--local", "--model", str(model)]) != 0:
                pytest.fail("scones deploy --local failed")
        yield CliTwin(settings, scones_env_exports(scones), home)
    finally:
        with _environ(scones):
            main(["down"])


RunAws = Callable[..., "AwsResult"]


@dataclass
class AwsResult:
    """One ``aws`` command: exit status, parsed JSON output (None when empty), stderr."""

    code: int
    output: Any
    stderr: str
    argv: list[str]

    def ok(self) -> Any:
        """The output, after checking that the command succeeded."""
        assert self.code == 0, f"{shlex.join(self.argv)} failed ({self.code}): {self.stderr}"
        return self.output


@pytest.fixture(scope="session")
def aws_env(cli_twin: CliTwin, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The AWS CLI's environment: ``scones env``'s exports, no config files, the guard."""
    folder = tmp_path_factory.mktemp("awscli-env")
    (folder / "guard").mkdir()
    (folder / "guard" / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": str(folder / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials"),
        "AWS_PAGER": "",
        "PYTHONPATH": str(folder / "guard"),
        **cli_twin.exports,
    }


@pytest.fixture(scope="session")
def aws(aws_cli: Path, aws_env: dict[str, str]) -> RunAws:
    """Run ``aws ARGS... --output json`` with the twin's environment (``env`` overrides)."""

    def run(*args: str, env: dict[str, str | None] | None = None, timeout: float = 60) -> AwsResult:
        argv = [str(aws_cli), *args, "--output", "json"]
        merged: dict[str, str | None] = {**aws_env, **(env or {})}
        environment = {k: v for k, v in merged.items() if v is not None}
        done = subprocess.run(
            argv, capture_output=True, text=True, env=environment, timeout=timeout, check=False
        )
        output = json.loads(done.stdout) if done.stdout.strip() else None
        return AwsResult(done.returncode, output, done.stderr, argv)

    return run
