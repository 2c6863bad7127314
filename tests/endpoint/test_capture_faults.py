"""Data Capture through real faults (stack tier): a private SeaweedFS and endpoint server
(``scones up --only s3 --only endpoint`` in a temporary state directory, free loopback ports).

- ``kill -9`` of one endpoint worker in the middle of a batch: every answered request's record
  reaches S3 once (the restarted worker ships the dead one's spool), and the counts add up.
- SIGTERM with S3 down: the records stay on disk (``scones status --json`` counts them as
  pending), and the next start ships them.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scones.endpoint.capture import spool_folder
from scones.endpoint.registry import register_endpoint
from scones.endpoint.spool import read_counts
from scones.settings import Settings
from scones.twin import ports, processes, services

pytestmark = pytest.mark.stack

ECHO = textwrap.dedent(
    """
    import json

    def model_fn(model_dir):
        return None

    def input_fn(body, content_type):
        return bytes(body)

    def predict_batch_fn(batch, model):
        return [len(body) for body in batch]

    def predict_fn(data, model):
        return len(data)

    def output_fn(prediction, accept):
        return json.dumps([prediction]).encode()
    """
)


def _service(name: str) -> services.Service:
    return next(s for s in services.SERVICES if s.name == name)


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """S3 + endpoint only, flushing captures every 5 s (so a killed worker has unshipped ones)."""
    import boto3

    home = tmp_path_factory.mktemp("capture-faults")
    saved = dict(os.environ)
    os.environ.update(
        {"SCONES_HOME": str(home), **ports.free_ports(), "SCONES_CAPTURE_FLUSH_SECONDS": "5"}
    )
    settings = Settings.from_env()
    os.environ.update(settings.aws_env())
    boto3.DEFAULT_SESSION = None
    try:
        services.up(settings, only=["s3", "endpoint"], out=lambda _: None)
        yield settings
    finally:
        services.down(settings, out=lambda _: None)
        os.environ.clear()
        os.environ.update(saved)
        boto3.DEFAULT_SESSION = None


def _endpoint(settings: Settings, tmp_path: Path) -> tuple[str, str]:
    import boto3

    tar_path = tmp_path / "echo.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(ECHO.encode())
        tar.addfile(info, io.BytesIO(ECHO.encode()))
    bucket = f"capture-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    name = f"ep-{uuid.uuid4().hex[:8]}"
    register_endpoint(settings, name, tar_path, capture_s3_uri=f"s3://{bucket}/dc")
    return name, bucket


def _runtime() -> Any:
    import boto3
    from botocore.config import Config

    # no retries: a request that fails with its worker is not answered (and not re-sent)
    config = Config(retries={"total_max_attempts": 1}, read_timeout=30, max_pool_connections=8)
    return boto3.client("sagemaker-runtime", config=config)


def _send(runtime: Any, endpoint: str, bodies: list[str], answered: list[str]) -> None:
    for body in bodies:
        try:
            runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType="text/plain", Body=body.encode()
            )
        except Exception:  # the worker died under it: not answered
            continue
        answered.append(body)


def _captured(bucket: str) -> list[str]:
    """The request bodies in every capture record under ``bucket`` (decoded)."""
    import base64

    import boto3

    s3 = boto3.client("s3")
    bodies = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            for line in data.decode().splitlines():
                payload = json.loads(line)["captureData"]["endpointInput"]
                bodies.append(base64.b64decode(payload["data"]).decode())
    return bodies


def _wait_for(bucket: str, want: set[str], timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        got = _captured(bucket)
        if want <= set(got) or time.monotonic() > deadline:
            return got
        time.sleep(1)


def _workers(settings: Settings) -> list[int]:
    pid = services.running_pid(settings, _service("endpoint"))
    assert pid is not None
    return processes.process_tree(pid)[1:]


def test_kill_9_of_a_worker_mid_batch_loses_no_answered_record(
    twin: Settings, tmp_path: Path
) -> None:
    endpoint, bucket = _endpoint(twin, tmp_path)
    runtime = _runtime()
    answered: list[str] = []
    _send(runtime, endpoint, [f"warm-{i}" for i in range(20)], answered)  # both workers load
    workers = _workers(twin)
    assert len(workers) == 2
    batches = [[f"r{k}-{i}" for i in range(150)] for k in range(4)]
    threads = [
        threading.Thread(target=_send, args=(_runtime(), endpoint, b, answered)) for b in batches
    ]
    for t in threads:
        t.start()
    while len(answered) < 20 + 200:
        time.sleep(0.01)
    os.kill(workers[0], signal.SIGKILL)  # mid-batch, with up to 5 s of its records unshipped
    for t in threads:
        t.join(120)
    sent = 20 + sum(len(b) for b in batches)
    assert 20 + 200 <= len(answered) < sent + 1
    captured = _wait_for(bucket, set(answered))
    assert set(answered) <= set(captured), f"{len(set(answered) - set(captured))} records lost"
    assert max(Counter(captured).values()) == 1  # none shipped twice
    replaced = _workers(twin)
    assert workers[0] not in replaced and len(replaced) == 2  # the supervisor restarted it
    counts = read_counts(spool_folder(twin))
    assert counts["lost"] == 0 and counts["pending"] == 0
    assert counts["shipped"] == counts["written"] >= len(captured)
    adopted = [
        entry
        for line in (twin.home / "logs" / "endpoint.log").read_text().splitlines()
        if '"capture: shipping the spooled records' in line
        for entry in [json.loads(line)]
        if any(w.startswith(f"{workers[0]}-") for w in entry["workers"])
    ]
    assert adopted and adopted[0]["records"] > 0  # the dead worker's records came from disk


def test_sigterm_with_s3_down_keeps_records_on_disk_and_the_next_start_ships_them(
    twin: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scones.cli import main

    endpoint, bucket = _endpoint(twin, tmp_path)
    before = read_counts(spool_folder(twin))
    answered: list[str] = []
    _send(_runtime(), endpoint, [f"up-{i}" for i in range(30)], answered)
    services.stop_service(twin, _service("s3"))
    _send(_runtime(), endpoint, [f"down-{i}" for i in range(30)], answered)
    assert len(answered) == 60  # capture never fails a request
    services.stop_service(twin, _service("endpoint"))  # SIGTERM: S3 still down
    counts = read_counts(spool_folder(twin))
    assert counts["lost"] == before["lost"]
    assert counts["written"] - before["written"] == 60
    assert counts["pending"] >= 30  # at least what came after S3 went down
    capsys.readouterr()
    main(["status", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert next(r for r in rows if r["name"] == "endpoint")["capture"] == counts

    services.up(twin, only=["s3", "endpoint"], out=lambda _: None)
    captured = _wait_for(bucket, set(answered))
    assert sorted(captured) == sorted(answered)
    after = read_counts(spool_folder(twin))
    assert after["pending"] == 0 and after["lost"] == before["lost"]
    assert after["shipped"] - before["shipped"] == 60
