"""Benchmark the offline twin's SageMaker endpoint: throughput, latency and memory.

Starts a private twin (temporary SCONES_HOME, free loopback ports) through the real
``scones up`` code, registers a model with Data Capture on (100 %, as ``scones deploy --local``
does), and drives it with a lean asyncio HTTP/1.1 keep-alive client (boto3 itself tops out near
400 calls/s per process) from this same machine, so client and server share the cores.

Rows: ``GET /ping`` (the HTTP floor) and ``POST /endpoints/NAME/invocations`` with real 32x32
CIFAR-100 PNGs, at 1, 8 and 32 concurrent connections; then the endpoint's RSS idle and across a
10,000-request run (it must stay flat), and the whole twin's idle RSS (target: under 1 GB).

Usage: .venv/bin/python bench/bench_endpoint.py [--model model.tar.gz] [--requests 4000]
Without --model it uses .scones/model/model.tar.gz when present, else builds the tiny test model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import pickle
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared_data import VEHICLES_ARCHIVE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHIVE = VEHICLES_ARCHIVE


@dataclass
class Result:
    name: str
    connections: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    machine_busy: float = 0.0  # share of all cores busy during the row (anyone's work)
    s3_cpu: float = 0.0  # CPU seconds of SeaweedFS during the row (storing the captures)
    server_cpu: float = 0.0  # CPU seconds of the endpoint's processes during the row
    client_cpu: float = 0.0  # CPU seconds of this load generator during the row

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def capacity(self) -> float:
        """Requests/s two otherwise idle cores could carry at this row's CPU cost per request."""
        return 2 * self.requests / (self.server_cpu + self.client_cpu + self.s3_cpu)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def load_pngs(limit: int = 200) -> list[bytes]:
    """Real CIFAR-100 test images (bicycles and motorcycles) as PNG bytes."""
    import numpy as np
    from PIL import Image

    if not ARCHIVE.is_file():
        rng = np.random.default_rng(0)
        arrays = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(limit)]
    else:
        with tarfile.open(ARCHIVE) as tar:
            member = tar.extractfile("cifar-100-python/test")
            assert member is not None
            batch = pickle.load(member, encoding="bytes")
        data = batch[b"data"][:limit]
        arrays = [row.reshape(3, 32, 32).transpose(1, 2, 0) for row in data]
    out = []
    for array in arrays:
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def build_requests(port: int, path: str, bodies: list[bytes] | None) -> list[bytes]:
    """Raw HTTP/1.1 requests; invocations are SigV4-signed once here with the twin's keys (the
    server verifies each; a signature stays good for 15 minutes), ``GET /ping`` is open."""
    from scones.settings import Settings
    from scones.twin.sigv4 import sign_headers

    head = f"{'POST' if bodies else 'GET'} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if not bodies:
        return [head.encode() + b"\r\n"]
    settings, url = Settings.from_env(), f"http://127.0.0.1:{port}{path}"
    plain = {"Content-Type": "image/png", "Accept": "application/json"}
    out = []
    for body in bodies:
        signed = sign_headers(settings, "POST", url, body=body, headers=plain)
        lines = "".join(f"{name}: {value}\r\n" for name, value in signed.items())
        out.append(f"{head}{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def _connection(
    port: int, requests: list[bytes], count: int, offset: int, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        for i in range(count):
            request = requests[(offset + i) % len(requests)]
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
    finally:
        writer.close()
    return errors


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (from /proc; 0 for those gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def run_load(
    name: str,
    port: int,
    requests: list[bytes],
    connections: int,
    total: int,
    server_pids: list[int] | None = None,
    s3_pids: list[int] | None = None,
) -> Result:
    latencies: list[float] = []
    per = total // connections
    pids = server_pids or []
    server_before, client_before = cpu_seconds(pids), time.process_time()
    busy_before, total_before = machine_ticks()
    s3_before = cpu_seconds(s3_pids or [])
    start = time.perf_counter()
    errors = await asyncio.gather(
        *[_connection(port, requests, per, c * 7, latencies) for c in range(connections)]
    )
    seconds = time.perf_counter() - start
    result = Result(name, connections, per * connections, seconds, latencies, sum(errors))
    result.server_cpu = cpu_seconds(pids) - server_before
    result.client_cpu = time.process_time() - client_before
    busy_after, total_after = machine_ticks()
    result.s3_cpu = cpu_seconds(s3_pids or []) - s3_before
    result.machine_busy = (busy_after - busy_before) / max(1, total_after - total_before)
    return result


def rss_mib(pid: int) -> float:
    from scones.twin import processes

    return processes.rss_bytes(processes.process_tree(pid)) / 2**20


@contextlib.contextmanager
def private_twin(home: Path) -> Iterator[tuple[Any, dict[str, int]]]:
    """Start every available twin service in ``home`` on free ports; stop them at the end."""
    from scones.settings import Settings
    from scones.twin import ports, services

    os.environ.update(
        {
            "SCONES_HOME": str(home),
            **ports.free_ports(),
        }
    )
    settings = Settings.from_env()
    os.environ.update(settings.aws_env())
    try:
        for line in services.up(settings, out=lambda _: None):
            print(f"note: {line}", flush=True)
        pids = {}
        for service in services.SERVICES:
            pid = services.running_pid(settings, service)
            if pid is not None:
                pids[service.name] = pid
        yield settings, pids
    finally:
        services.down(settings, out=lambda _: None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model.tar.gz to serve")
    parser.add_argument("--requests", type=int, default=4000, help="requests per row (4000)")
    parser.add_argument("--connections", default="1,8,32", help="concurrency levels (1,8,32)")
    parser.add_argument(
        "--memory-requests", type=int, default=10000, help="requests in the memory run"
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the twin's logs here at the end")
    args = parser.parse_args(argv)

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    levels = [int(c) for c in args.connections.split(",")]
    pngs = load_pngs()
    with tempfile.TemporaryDirectory(prefix="scones-bench-") as tmp:
        model = args.model
        if model is None and (ROOT / ".scones/model/model.tar.gz").is_file():
            model = ROOT / ".scones/model/model.tar.gz"
        if model is None:
            from scones.training.tiny import build_tiny_model

            print("building the tiny test model (no --model and no .scones/model) ...", flush=True)
            model = build_tiny_model(Path(tmp) / "model")
        with private_twin(Path(tmp) / "home") as (settings, pids):
            code = run(settings, pids, model, pngs, levels, args)
        if args.keep_logs:
            import shutil

            shutil.copytree(Path(tmp) / "home" / "logs", args.keep_logs, dirs_exist_ok=True)
        written = dropped = retried = 0
        per_worker: list[int] = []
        log = Path(tmp) / "home" / "logs" / "endpoint.log"
        for line in log.read_text().splitlines():
            if '"capture upload failed' in line:
                retried += 1
                print(f"  {line[:300]}")
            if '"capture writer closed"' in line:
                entry = json.loads(line)
                per_worker.append(entry["records"])
                written += entry["records"]
                dropped += entry["dropped"]
        print(
            f"endpoint workers at shutdown: {written} capture records written, {dropped} dropped, "
            f"{retried} uploads retried; records per worker {per_worker}"
        )
        from scones.endpoint.spool import read_counts

        counts = read_counts(Path(tmp) / "home" / "capture")
        print("capture counts (scones status): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return code


def run(settings, pids, model, pngs, levels, args) -> int:  # type: ignore[no-untyped-def]
    import boto3

    from scones.endpoint.registry import register_endpoint

    load_before = os.getloadavg()[0]
    fresh_twin = {name: rss_mib(pid) for name, pid in pids.items()}
    bucket = "bench-capture"
    boto3.client("s3").create_bucket(Bucket=bucket)
    register_endpoint(settings, "bench", Path(model), capture_s3_uri=f"s3://{bucket}/data_capture")
    register_endpoint(settings, "bench-nocap", Path(model), capture_s3_uri=None)
    port = settings.endpoint_port
    invoke = build_requests(port, "/endpoints/bench/invocations", pngs)
    nocap = build_requests(port, "/endpoints/bench-nocap/invocations", pngs)
    ping = build_requests(port, "/ping", None)
    # warm up: every worker loads the model
    asyncio.run(run_load("warm", port, invoke, 8, 400))
    asyncio.run(run_load("warm", port, nocap, 8, 200))
    time.sleep(2.5)
    endpoint_pid = pids["endpoint"]
    idle_endpoint = rss_mib(endpoint_pid)
    idle_twin = {name: rss_mib(pid) for name, pid in pids.items()}

    from scones.twin import processes

    tree = processes.process_tree(endpoint_pid)
    s3_tree = processes.process_tree(pids["s3"])
    rows: list[Result] = []
    for name, requests in (("GET /ping", ping), ("POST invocations", invoke)):
        for c in levels:
            rows.append(
                asyncio.run(run_load(name, port, requests, c, args.requests, tree, s3_tree))
            )
    top = max(levels)
    rows.append(
        asyncio.run(run_load("invocations, no DC", port, nocap, top, args.requests, tree, s3_tree))
    )

    samples = []
    chunk = max(1, args.memory_requests // 10)
    for _ in range(10):
        asyncio.run(run_load("memory", port, invoke, 32, chunk))
        samples.append(rss_mib(endpoint_pid))
    time.sleep(2.5)  # let the capture writer flush
    after = rss_mib(endpoint_pid)

    print(
        f"\nendpoint benchmark: model {model}, {settings.endpoint_workers} workers, Data Capture on,"
    )
    print(
        f"client and server on the same {os.cpu_count()} cores; {args.requests} requests per row; "
        f"load average at start {load_before:.1f}, at end {os.getloadavg()[0]:.1f}\n"
    )
    print(
        f"{'request':<20} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
        f"{'srv CPU ms/req':>14} {'cli CPU ms/req':>14} {'S3 CPU ms/req':>13} "
        f"{'2-core cap/s':>12} {'busy':>5}"
    )
    for r in rows:
        print(
            f"{r.name:<20} {r.connections:>5} {r.rps:>8.0f} {r.pct(0.50):>8.2f} {r.pct(0.99):>8.2f} "
            f"{r.errors:>6} {1000 * r.server_cpu / r.requests:>14.3f} "
            f"{1000 * r.client_cpu / r.requests:>14.3f} {1000 * r.s3_cpu / r.requests:>13.3f} "
            f"{r.capacity:>12.0f} "
            f"{100 * r.machine_busy:>4.0f}%"
        )
    print(
        "(2-core cap/s = 2 CPU-seconds / (endpoint + client + S3 CPU per request): what two idle cores "
        "would carry at this CPU cost; busy = share of all cores busy during the row, anyone's work)"
    )
    best = max((r for r in rows if r.name == "POST invocations"), key=lambda r: r.rps)
    floor = max((r for r in rows if r.name == "GET /ping"), key=lambda r: r.rps)
    print(
        f"\nbest invocations/s {best.rps:.0f} (target 1000) = {best.rps / floor.rps:.2f} of the /ping floor"
    )
    print(
        f"\nendpoint RSS (all workers): idle {idle_endpoint:.0f} MiB; after each tenth of "
        f"{args.memory_requests} requests at 32 conns: {' '.join(f'{x:.0f}' for x in samples)} MiB; "
        f"after the flush {after:.0f} MiB"
    )
    half = len(samples) // 2
    print(f"growth over the second half of the run: {samples[-1] - samples[half - 1]:+.1f} MiB")
    total = sum(idle_twin.values())
    parts = ", ".join(f"{k} {v:.0f}" for k, v in idle_twin.items())
    fresh = ", ".join(f"{k} {v:.0f}" for k, v in fresh_twin.items())
    print(f"whole twin idle RSS right after `up`: {sum(fresh_twin.values()):.0f} MiB ({fresh})")
    print(f"whole twin idle RSS, model loaded: {total:.0f} MiB ({parts}) (target under 1024 MiB)")
    s3 = boto3.client("s3")
    sent = 400 + sum(r.requests for r in rows if r.name == "POST invocations")
    sent += 10 * (chunk // 32 * 32)
    waited = time.perf_counter()
    counted: dict[str, int] = {}  # capture files are written once: read each once
    while True:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                if obj["Key"] not in counted:
                    body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                    counted[obj["Key"]] = body.count(b"\n")
        files, records = len(counted), sum(counted.values())
        if records >= sent or time.perf_counter() - waited > 30:
            break
        time.sleep(1)
    waited = time.perf_counter() - waited
    print(
        f"Data Capture: {records} records in {files} files for {sent} invocations "
        f"(counted {waited + 2.5:.1f} s after the last request)"
    )
    failed = sum(r.errors for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
