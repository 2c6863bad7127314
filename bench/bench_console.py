"""Benchmark: `scones console` pages over a twin holding 10,000 executions.

Starts a private twin (temporary SCONES_HOME, free loopback ports, the sfn server keeping every
execution), deploys template.yaml with a tiny real model (threshold 0.75 so outcomes mix), runs
N executions of the real workflow over small generated images (a few of them not images), then
serves the console on a free port with uvicorn and times real HTTP GETs of its pages:

1. the executions page followed page by page through all N (25 a page) as fast as one client
   can, by a fresh console (each row needs a DescribeExecution for label/confidence/error;
   the next page is described in the background), then again (finished rows are cached);
2. the first 40 pages with 0.5 s between clicks, with and without that prefetch; 100 a page;
   the first page filtered by status;
3. one execution's page (graph drawn by D2, events, states' input/output with thumbnails),
   first visit and again (a finished execution's graph is cached);
4. the endpoint page (newest Data Capture records from S3, thumbnails).

Usage: .venv/bin/python bench/bench_console.py [--executions 10000] [--images 200]
Prints a table (no assertion).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import os
import random
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NEXT = re.compile(r'<a id="next" href="([^"]+)"')
ROW = re.compile(r'<tr data-status="(\w+)">\s*<td><a href="(/execution\?arn=[^"]+)"')


def make_images(folder: Path, count: int) -> None:
    """Small PNGs (a few hundred bytes: shapes on a plain ground) and 2% that are not images."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True)
    rng = random.Random(0)
    for i in range(count):
        if i % 50 == 49:
            (folder / f"broken-{i:04d}.png").write_bytes(b"not a png " * 10)
            continue
        image = Image.new("RGB", (32, 32), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        box = (
            sorted(rng.randrange(32) for _ in range(2)),
            sorted(rng.randrange(32) for _ in range(2)),
        )
        draw.ellipse((box[0][0], box[1][0], box[0][1], box[1][1]), fill=(rng.randrange(256), 0, 0))
        out = io.BytesIO()
        image.save(out, format="PNG")
        (folder / f"image-{i:04d}.png").write_bytes(out.getvalue())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Client:
    """Timed GETs over one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, path: str) -> tuple[float, str]:
        start = time.perf_counter()
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read().decode()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]}")
        return elapsed, body


def walk(
    client: Client, first: str, limit: int | None = None, pause_s: float = 0.0
) -> tuple[list[float], int, str]:
    """Follow the next-page links from ``first`` (``pause_s`` between pages, as a reader
    would); (ms per page, rows seen, last page's body)."""
    times: list[float] = []
    rows = 0
    path: str | None = first
    body = ""
    while path and (limit is None or len(times) < limit):
        ms, body = client.get(path)
        times.append(ms)
        rows += len(ROW.findall(body))
        link = NEXT.search(body)
        path = unescape(link.group(1)) if link else None
        time.sleep(pause_s)
    return times, rows, body


def line(name: str, times: list[float]) -> tuple[str, ...]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (
        name,
        f"{len(times)}",
        f"{statistics.median(times):.0f}",
        f"{p95:.0f}",
        f"{max(times):.0f}",
        f"{sum(t > 300 for t in times)}",
    )


def run_executions(settings: Any, work: Path, args: argparse.Namespace) -> dict[str, int]:
    """Upload the images and classify them until ``args.executions`` executions exist."""
    from scones.twin.classify import classify, upload_images
    from scones.twin.clients import twin_clients
    from scones.twin.deploy import read_deployed

    folder = work / "images"
    make_images(folder, args.images)
    bucket = read_deployed(settings)["bucket"]
    (s3,) = twin_clients(settings, "s3")
    upload_images(s3, bucket, "bench/", folder, sorted(folder.iterdir()), progress=False)
    done = 0
    outcomes: dict[str, int] = {}
    start = time.perf_counter()
    while done < args.executions:
        report = classify(settings, f"s3://{bucket}/bench/", progress=False, rerun=True)
        done += args.images
        counts = report.counts()
        for key in ("classified", "review", "failed"):
            value = counts[key]
            outcomes[key] = outcomes.get(key, 0) + (
                sum(value.values()) if isinstance(value, dict) else value
            )
        rate = done / (time.perf_counter() - start)
        print(f"{done} executions ({rate:.0f}/s)", flush=True)
    return outcomes


@contextlib.contextmanager
def serve(source: Any, **options: Any) -> Iterator[int]:
    """A fresh console over ``source`` (empty caches) served by uvicorn; yields its port."""
    import uvicorn

    from scones.console.app import close_app, create_app

    port = free_port()
    app = create_app(source, port)
    app.app.state.console.executions.prefetch = options.get("prefetch", True)  # type: ignore[attr-defined]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        close_app(app)


def measure_paging(source: Any, machine: str) -> list[tuple[str, ...]]:
    """The executions page, walked page by page by fresh consoles (cold caches)."""
    sm = quote(machine, safe="")
    rows = []
    with serve(source) as port:
        client = Client(port)
        cold, seen, _ = walk(client, f"/?sm={sm}")
        rows.append(
            line(f"executions, 25 a page, all pages at once, first visit ({seen:,} rows)", cold)
        )
        warm, _, _ = walk(client, f"/?sm={sm}")
        rows.append(line("executions, 25 a page, all pages, again (summaries cached)", warm))
    with serve(source) as port:
        reader, _, _ = walk(Client(port), f"/?sm={sm}", 40, pause_s=0.5)
        rows.append(
            line("executions, 25 a page, first 40 pages, 0.5 s between, first visit", reader)
        )
    with serve(source, prefetch=False) as port:
        plain, _, _ = walk(Client(port), f"/?sm={sm}", 40, pause_s=0.5)
        rows.append(line("  the same without next-page prefetch", plain))
    with serve(source) as port:
        big = walk(Client(port), f"/?sm={sm}&size=100", 20)[0]
        rows.append(line("executions, 100 a page, first 20 pages, first visit", big))
    return rows


def measure_api(source: Any, machine: str) -> list[tuple[str, ...]]:
    """The floor: the calls the pages make, one at a time from one boto3 client."""

    def timed(call: Any, times: int) -> list[float]:
        out = []
        for _ in range(times):
            start = time.perf_counter()
            call()
            out.append((time.perf_counter() - start) * 1000)
        return out

    sfn = source.sfn
    listed = sfn.list_executions(stateMachineArn=machine, maxResults=25)["executions"]
    arn = listed[0]["executionArn"]
    return [
        line(
            "  API alone: ListExecutions, 25 (20 times)",
            timed(lambda: sfn.list_executions(stateMachineArn=machine, maxResults=25), 20),
        ),
        line(
            "  API alone: DescribeExecution (20 times)",
            timed(lambda: sfn.describe_execution(executionArn=arn), 20),
        ),
        line(
            "  API alone: GetExecutionHistory (20 times)",
            timed(lambda: sfn.get_execution_history(executionArn=arn), 20),
        ),
    ]


def measure_pages(source: Any, machine: str) -> list[tuple[str, ...]]:
    """Filters, one execution, the endpoint page (a fresh console)."""
    sm = quote(machine, safe="")
    rows = []
    with serve(source) as port:
        client = Client(port)
        for status in ("SUCCEEDED", "FAILED"):
            times = [client.get(f"/?sm={sm}&status={status}")[0] for _ in range(5)]
            rows.append(line(f"executions, status={status}, first page (5 times)", times))
        _, first_page = client.get(f"/?sm={sm}&status=SUCCEEDED")
        _, failed_page = client.get(f"/?sm={sm}&status=FAILED")
        for label, page in (("succeeded", first_page), ("failed", failed_page)):
            link = unescape(ROW.findall(page)[0][1])
            first = client.get(link)[0]
            again = [client.get(link)[0] for _ in range(5)]
            rows.append(line(f"one execution ({label}), first visit (D2 draws the graph)", [first]))
            rows.append(line(f"one execution ({label}), again (graph cached)", again))
        endpoint = [client.get("/endpoint")[0] for _ in range(5)]
        rows.append(line("endpoint: 24 newest capture records (5 times)", endpoint))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument(
        "--images", type=int, default=200, help="distinct images, rerun until --executions"
    )
    parser.add_argument(
        "--threshold", default="0.75", help="ConfidenceThreshold (the tiny model: outcomes mix)"
    )
    args = parser.parse_args()

    from scones.twin import ports

    work = Path(tempfile.mkdtemp(prefix="bench-console-"))
    os.environ.update(
        {
            "SCONES_HOME": str(work / "home"),
            "SCONES_SFN_KEEP_EXECUTIONS": str(args.executions + args.images),
            "SCONES_BRIDGE": "0",
            **ports.free_ports(),
        }
    )
    os.chdir(ROOT)
    from scones.cli import main as scones
    from scones.console.source import twin_source
    from scones.settings import Settings
    from scones.training.tiny import build_tiny_model

    settings = Settings.from_env()
    os.environ.update(settings.aws_env())
    try:
        if scones(["up"]) != 0:
            print("scones up failed", file=sys.stderr)
            return 1
        model = build_tiny_model(work / "tiny")
        overrides = ["--parameter-overrides", f"ConfidenceThreshold={args.threshold}"]
        assert scones(["deploy", "--local", "--model", str(model), *overrides]) == 0
        outcomes = run_executions(settings, work, args)
        time.sleep(3)  # let the endpoint flush its Data Capture
        source = twin_source(settings)
        machine = str(source.state_machine_arn)
        rows = (
            measure_paging(source, machine)
            + measure_pages(source, machine)
            + measure_api(source, machine)
        )
    finally:
        scones(["down"])
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nexecutions in the twin: {args.executions:,} ({outcomes}); load average {os.getloadavg()[0]:.1f}"
    )
    print(
        "\n| page (real HTTP GET, uvicorn, one client) | pages | median ms | p95 ms | max ms"
        " | over 300 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
