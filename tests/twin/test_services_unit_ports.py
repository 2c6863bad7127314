"""free_ports: a private twin's ports, SeaweedFS's whole block free."""

from __future__ import annotations

import socket

from scones.twin import services


def test_free_ports_gives_a_free_seaweedfs_block_and_distinct_ports() -> None:
    ports = services.free_ports()
    assert set(ports) == {"SCONES_S3_PORT", "SCONES_MOTO_PORT", "SCONES_ENDPOINT_PORT"}
    s3 = int(ports["SCONES_S3_PORT"])
    block = [s3 + i for i in range(services.WEED_EXTRA_PORTS + 1)]
    block.append(s3 + services.WEED_EXTRA_PORTS + services.WEED_ADMIN_GRPC_OFFSET)
    others = {int(ports["SCONES_MOTO_PORT"]), int(ports["SCONES_ENDPOINT_PORT"])}
    assert len(others) == 2 and not others & set(block)
    for port in block:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if taken


def test_free_ports_stay_below_the_ephemeral_range() -> None:
    """A port in the range can be taken by any outgoing connection while a fault test has the
    service down; SeaweedFS's admin gRPC port (S3 + 10008) was, and CI lost S3."""
    low = services.ephemeral_low()
    for _ in range(20):
        ports = services.free_ports()
        s3 = int(ports["SCONES_S3_PORT"])
        assert s3 + services.WEED_EXTRA_PORTS + services.WEED_ADMIN_GRPC_OFFSET < low
        assert int(ports["SCONES_MOTO_PORT"]) < low
        assert int(ports["SCONES_ENDPOINT_PORT"]) < low


def test_ephemeral_low_reads_the_kernel_range() -> None:
    low = services.ephemeral_low()
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
    assert services._still_in_use("127.0.0.1", port, grace_s=0.3)  # held throughout
    threading.Timer(0.5, listener.close).start()
    assert not services._still_in_use("127.0.0.1", port, grace_s=5.0)
