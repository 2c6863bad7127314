"""Shared by the fault suite (tests/stack/test_faults.py) and bench/soak.py: uniquely tagged
images, a classify run with a fault injected part-way, and the Data Capture accounting.

Every image is a distinct PNG (its index written into its pixels), so each capture record names
the image it belongs to: the record's ``endpointInput.data`` is the image's base64.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from scones.settings import Settings
from scones.twin import services
from scones.twin.classify import ClassifyReport, ImageResult, classify


def tagged_png(index: int, batch: str) -> bytes:
    """A 32 x 32 PNG unique to (``batch``, ``index``): random-looking pixels from the tag."""
    import hashlib

    import numpy as np
    from PIL import Image

    seed = int.from_bytes(hashlib.sha256(f"{batch}/{index}".encode()).digest()[:8], "big")
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def upload_batch(s3: Any, bucket: str, prefix: str, count: int, batch: str) -> dict[str, str]:
    """Upload ``count`` tagged images under ``prefix``; return base64 of each -> its key."""

    def put(index: int) -> tuple[str, str]:
        body, key = tagged_png(index, batch), f"{prefix}{index:06d}.png"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return base64.b64encode(body).decode(), key

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(put, range(count)))


def service(name: str) -> services.Service:
    """The twin's service called ``name`` (s3, sfn, endpoint)."""
    return next(s for s in services.available_services() if s.name == name)


def wait_healthy(settings: Settings, name: str, timeout: float = 60.0) -> None:
    """Wait until the service answers (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not services.healthy(settings, service(name)):
        assert time.monotonic() < deadline, f"{name} did not come back in {timeout:.0f}s"
        time.sleep(0.2)


def restart(settings: Settings, name: str, down_s: float = 0.0) -> None:
    """Stop the service (SIGTERM, as ``scones down``), keep it down ``down_s``, start it."""
    assert services.stop_service(settings, service(name))
    time.sleep(down_s)
    services.start_service(settings, service(name))
    wait_healthy(settings, name)


def endpoint_workers(settings: Settings) -> list[int]:
    """PIDs of the endpoint's worker processes (the supervisor's children)."""
    from scones.twin.processes import process_tree

    pid = int(services.pid_file(settings, service("endpoint")).read_text().split()[0])
    return [p for p in process_tree(pid) if p != pid]


def kill_one_worker(settings: Settings) -> int:
    """``kill -9`` one endpoint worker; return its PID."""
    workers = endpoint_workers(settings)
    assert workers, "the endpoint runs no worker processes"
    os.kill(workers[0], signal.SIGKILL)
    return workers[0]


@dataclass
class FaultRun:
    """One batch through ``scones classify`` with a fault injected once ``after`` images ended."""

    report: ClassifyReport
    fault_at: int  # images ended when the fault began
    fault_s: float  # how long injecting it took
    results_seen: list[ImageResult] = field(default_factory=list)


def classify_with_fault(
    settings: Settings,
    source: str,
    fault: Callable[[], None],
    after: int,
    **options: Any,
) -> FaultRun:
    """Run ``classify`` over ``source``; when ``after`` images have ended, run ``fault`` in a
    thread (classify goes on meanwhile, as a user's batch would)."""
    seen: list[ImageResult] = []
    box: dict[str, float] = {}
    fired = threading.Event()

    def inject() -> None:
        box["at"] = len(seen)
        start = time.monotonic()
        fault()
        box["s"] = time.monotonic() - start

    thread = threading.Thread(target=inject, name="fault", daemon=True)

    def on_result(result: ImageResult) -> None:
        seen.append(result)
        if len(seen) >= after and not fired.is_set():
            fired.set()
            thread.start()

    report = classify(settings, source, progress=False, on_result=on_result, **options)
    if fired.is_set():
        thread.join(timeout=120)
    return FaultRun(report, int(box.get("at", -1)), box.get("s", -1.0), seen)


def capture_records(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The ``endpointInput.data`` of every Data Capture record under ``prefix`` on S3."""
    found: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            text = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            for line in text.splitlines():
                if line.strip():
                    found.append(json.loads(line)["captureData"]["endpointInput"]["data"])
    return found


def capture_counts(settings: Settings) -> dict[str, int] | None:
    """``scones status --json``'s Data Capture counts of the endpoint (None if not reported)."""
    rows = services.status(settings)
    row = next((r for r in rows if r.name == "endpoint"), None)
    counts = getattr(row, "capture", None)
    return dict(counts) if counts else None
