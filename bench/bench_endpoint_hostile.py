"""Benchmark the twin's endpoint under hostile clients (issue 14, item 7): normal clients' latency
while others send decompression-bomb PNGs, and what happens to half-sent connections.

Starts a private twin (temporary SCONES_HOME, free loopback ports) with the real ``scones up``
code and registers ``--model`` with Data Capture on. Rows, each ``--requests`` normal requests
(real 32x32 CIFAR-100 PNGs) on ``--connections`` keep-alive connections:

- ``normal``: alone;
- ``normal + N bombs``: while ``--hostile`` other connections send, in a loop, a 49 KB PNG that
  declares 4096 x 4096 (about 0.6-1 s of decoding each, unless the model refuses it unread).

Then ``--half-sent`` connections each send half a request and stop; the script counts how many the
server still holds open after ``SCONES_ENDPOINT_READ_TIMEOUT`` (10 s) + 2 s, and whether a
normal request is answered meanwhile.

Usage: .venv/bin/python bench/bench_endpoint_hostile.py --model M.tar.gz [--requests 2000]
Compare two models (an ``inference.py`` before and after a change) with two runs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import bench_endpoint as be

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bomb_png(side: int = 4096) -> bytes:
    """A real PNG of ``side`` x ``side`` black pixels (it compresses to about 49 KB)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, "PNG")
    return buf.getvalue()


async def _hostile(port: int, request: bytes, stop: asyncio.Event, seen: Counter[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            seen[head.split(b"\r\n", 1)[0].decode()] += 1
    finally:
        writer.close()


async def with_hostile(
    port: int, normal: list[bytes], bomb: bytes, hostile: int, conns: int, total: int
) -> tuple[be.Result, Counter[str]]:
    """Normal load while ``hostile`` connections send ``bomb`` in a loop."""
    stop = asyncio.Event()
    seen: Counter[str] = Counter()
    tasks = [asyncio.create_task(_hostile(port, bomb, stop, seen)) for _ in range(hostile)]
    await asyncio.sleep(0.5)  # the bombs are in flight first
    result = await be.run_load(f"normal + {hostile} bombs", port, normal, conns, total)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result, seen


def half_sent(port: int, count: int, wait: float) -> tuple[int, str]:
    """Open ``count`` connections that send half a request; return how many are still open
    after ``wait`` seconds, and the status line of a normal ``GET /ping`` sent meanwhile."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /endpoints/bench/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        sock.setblocking(False)
        socks.append(sock)
    ping = socket.create_connection(("127.0.0.1", port), timeout=5)
    ping.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status = ping.recv(4096).split(b"\r\n", 1)[0].decode()
    ping.close()
    time.sleep(wait)
    still_open = 0
    for sock in socks:
        try:
            data = sock.recv(4096)
            while data:  # a 408 answer, then the close
                data = sock.recv(4096)
        except BlockingIOError:
            still_open += 1  # nothing received: the server holds it open
        except OSError:
            pass
        sock.close()
    return still_open, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="model.tar.gz to serve")
    parser.add_argument("--requests", type=int, default=2000, help="normal requests per row")
    parser.add_argument("--connections", type=int, default=8, help="normal connections (8)")
    parser.add_argument("--hostile", type=int, default=4, help="bomb-sending connections (4)")
    parser.add_argument("--half-sent", type=int, default=1500, help="half-sent connections")
    args = parser.parse_args(argv)
    pngs = be.load_pngs()
    bomb = bomb_png()
    with (
        tempfile.TemporaryDirectory(prefix="scones-bench-") as tmp,
        be.private_twin(Path(tmp) / "home") as (settings, _pids),
    ):
        from scones.endpoint.registry import register_endpoint

        register_endpoint(settings, "bench", args.model, capture_s3_uri=None)
        port = settings.endpoint_port
        normal = be.build_requests(port, "/endpoints/bench/invocations", pngs)
        bombs = be.build_requests(port, "/endpoints/bench/invocations", [bomb])[0]
        asyncio.run(be.run_load("warm", port, normal, 8, 400))
        load = os.getloadavg()[0]
        alone = asyncio.run(be.run_load("normal", port, normal, args.connections, args.requests))
        hostile, seen = asyncio.run(
            with_hostile(port, normal, bombs, args.hostile, args.connections, args.requests)
        )
        timeout = float(os.environ.get("SCONES_ENDPOINT_READ_TIMEOUT", "10"))
        still_open, ping = half_sent(port, args.half_sent, timeout + 2)
    print(f"\nendpoint under hostile clients: model {args.model}, bomb {len(bomb)} bytes PNG")
    print(f"declaring 4096x4096; load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f}")
    print(f"{'row':<20} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in (alone, hostile):
        print(
            f"{r.name:<20} {r.connections:>5} {r.rps:>8.0f} {r.pct(0.5):>8.2f} "
            f"{r.pct(0.99):>8.2f} {r.errors:>6}"
        )
    answers = ", ".join(f"{n} x {status}" for status, n in seen.most_common())
    print(f"bomb requests answered during the row: {answers or 'none'}")
    print(
        f"half-sent connections: {still_open} of {args.half_sent} still open after "
        f"{timeout + 2:.0f} s; GET /ping meanwhile: {ping}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
