"""Which ports the twin's services use, and how a private twin (tests, benchmarks) picks free ones.

SeaweedFS (``weed mini``) binds a block for one S3 port: the port, the next
``WEED_EXTRA_PORTS`` and the admin gRPC port ``WEED_ADMIN_GRPC_OFFSET`` above the last of them.
Ports picked here stay below the kernel's ephemeral range: a port in that range can be taken at
any moment by an outgoing connection, so a service stopped and started again (the fault suite
does that) could find its own port gone. A CI run lost SeaweedFS that way: its S3 port was 26452,
its admin gRPC port 36460.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from scones.errors import CommandError
from scones.twin.processes import bindable, port_in_use

WEED_EXTRA_PORTS = 8  # weed mini's master, volume, filer, admin (+ gRPC) after the S3 port
WEED_ADMIN_GRPC_OFFSET = 10000
LOWEST = 10000  # free_ports draws from here up to the ephemeral range
TRIES = 400


class NoFreePortError(CommandError, RuntimeError):
    """No free port (or SeaweedFS block) below the ephemeral range."""


def ephemeral_low() -> int:
    """The first port the kernel hands to outgoing connections (32768 when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def weed_block(s3_port: int) -> list[int]:
    """Every port ``weed mini`` binds for ``s3_port``: that port first, admin gRPC last."""
    block = [s3_port + i for i in range(WEED_EXTRA_PORTS + 1)]
    return [*block, s3_port + WEED_EXTRA_PORTS + WEED_ADMIN_GRPC_OFFSET]


def _draw(
    host: str, rng: random.Random, top: int, block_of: Callable[[int], list[int]], taken: set[int]
) -> int:
    """A port whose whole block lies below ``top``, is not in ``taken`` and can be bound now."""
    span = max(block_of(0))
    if top - span <= LOWEST:
        raise NoFreePortError(f"the ephemeral port range starts at {top}: no room below it")
    for _ in range(TRIES):
        port = rng.randrange(LOWEST, top - span)
        block = block_of(port)
        if not taken.intersection(block) and all(bindable(host, p) for p in block):
            taken.update(block)
            return port
    raise NoFreePortError(f"no free ports on {host} between {LOWEST} and {top}")


def free_ports(host: str = "127.0.0.1") -> dict[str, str]:
    """``SCONES_*_PORT`` values for a second twin beside the first (tests, benchmarks): all
    below the ephemeral range, SeaweedFS's whole block free, no two services sharing a port."""
    rng = random.Random()
    top = min(ephemeral_low(), 65536)
    taken: set[int] = set()
    return {
        "SCONES_S3_PORT": str(_draw(host, rng, top, weed_block, taken)),
        "SCONES_MOTO_PORT": str(_draw(host, rng, top, lambda p: [p], taken)),
        "SCONES_ENDPOINT_PORT": str(_draw(host, rng, top, lambda p: [p], taken)),
    }


def still_in_use(host: str, port: int, grace_s: float = 3.0) -> bool:
    """True when ``port`` stays taken for ``grace_s`` (a process just stopped may hold it)."""
    deadline = time.monotonic() + grace_s
    while port_in_use(host, port):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.2)
    return False


def taken_hint(port: int) -> str:
    """What to add to a "port taken" message when ``port`` lies in the ephemeral range."""
    low = ephemeral_low()
    if port < low:
        return ""
    return (
        f" (ports from {low} up are handed to outgoing connections and can be taken at any "
        "time: choose one below)"
    )
