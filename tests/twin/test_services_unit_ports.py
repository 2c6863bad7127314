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
