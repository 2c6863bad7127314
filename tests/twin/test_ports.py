"""scones.twin.ports: a private twin's free ports, the grace after a stop, the hint."""

from __future__ import annotations

import socket

import pytest

from scones.twin import ports as ports_module


def test_free_ports_gives_a_free_seaweedfs_block_and_distinct_ports() -> None:
    ports = ports_module.free_ports()
    assert set(ports) == {"SCONES_S3_PORT", "SCONES_MOTO_PORT", "SCONES_ENDPOINT_PORT"}
    s3 = int(ports["SCONES_S3_PORT"])
    block = [s3 + i for i in range(ports_module.WEED_EXTRA_PORTS + 1)]
    block.append(s3 + ports_module.WEED_EXTRA_PORTS + ports_module.WEED_ADMIN_GRPC_OFFSET)
    others = {int(ports["SCONES_MOTO_PORT"]), int(ports["SCONES_ENDPOINT_PORT"])}
    assert len(others) == 2 and not others & set(block)
    for port in block:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if taken


def test_free_ports_stay_below_the_ephemeral_range() -> None:
    """A port in the range can be taken by any outgoing connection while a fault test has the
    service down; SeaweedFS's admin gRPC port (S3 + 10008) was, and CI lost S3."""
    low = ports_module.ephemeral_low()
    for _ in range(20):
        ports = ports_module.free_ports()
        s3 = int(ports["SCONES_S3_PORT"])
        assert s3 + ports_module.WEED_EXTRA_PORTS + ports_module.WEED_ADMIN_GRPC_OFFSET < low
        assert int(ports["SCONES_MOTO_PORT"]) < low
        assert int(ports["SCONES_ENDPOINT_PORT"]) < low


def test_ephemeral_low_reads_the_kernel_range() -> None:
    low = ports_module.ephemeral_low()
    assert 1024 <= low <= 65535
    with socket.socket() as sock:  # the kernel's own pick lies at or above it
        sock.bind(("127.0.0.1", 0))
        assert sock.getsockname()[1] >= low


def test_a_port_freed_within_the_grace_counts_as_free() -> None:
    """A service just stopped may hold its port a moment; a restart waits that out."""
    import threading

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert ports_module.still_in_use("127.0.0.1", port, grace_s=0.3)  # held throughout
    threading.Timer(0.5, listener.close).start()
    assert not ports_module.still_in_use("127.0.0.1", port, grace_s=5.0)


def test_no_room_below_the_ephemeral_range_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose ephemeral range starts low leaves no SeaweedFS block below it."""
    monkeypatch.setattr(ports_module, "ephemeral_low", lambda: 15000)
    with pytest.raises(ports_module.NoFreePortError, match="starts at 15000: no room below it"):
        ports_module.free_ports()


def test_no_free_port_after_every_try_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports_module, "bindable", lambda host, port: False)
    with pytest.raises(ports_module.NoFreePortError, match="no free ports on 127.0.0.1"):
        ports_module.free_ports()


def test_the_taken_message_explains_ports_in_the_ephemeral_range() -> None:
    low = ports_module.ephemeral_low()
    assert ports_module.taken_hint(low - 1) == ""
    assert f"ports from {low} up are handed to outgoing connections" in (
        ports_module.taken_hint(low)
    )
