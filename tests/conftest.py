"""Test-wide guards: no test reaches beyond loopback; tiers are marked by folder."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address: Any) -> None:
    if not isinstance(address, tuple) or not address:
        return  # unix sockets
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host in ("localhost",):
            return
        raise OSError(f"tests may not reach the network (tried {host!r})") from None
    if not ip.is_loopback:
        raise OSError(f"tests may not reach the network (tried {host})")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "/tests/deployed/" in str(request.node.path):
        return  # the deployed tier talks to real AWS on purpose
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/tests/stack/" in path:
            item.add_marker(pytest.mark.stack)
        if "/tests/deployed/" in path:
            item.add_marker(pytest.mark.deployed)


# The shared data beside the checkout (../shared/data, see its README): read in place, never copied.
# $SCONES_SHARED_DATA names it for a copy of the tests elsewhere (`make mutation` passes it).
SHARED_DATA = Path(
    os.environ.get("SCONES_SHARED_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


def shared_data_path(*parts: str) -> Path:
    """A path under the shared data folder, or a skip that says which file the test needs."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared data {path} (../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def shared_archive() -> Path:
    """The CIFAR-100-format subset archive (800 train, 200 test, bicycle and motorcycle)."""
    return shared_data_path("cifar-100-python-vehicles.tar.gz")


@pytest.fixture(scope="session")
def shared_capture() -> Path:
    """Real SageMaker Data Capture files (22 records)."""
    return shared_data_path("data-capture")
