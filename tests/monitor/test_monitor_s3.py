"""``scones monitor s3://...`` against moto's S3 (mock_aws: no network)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from monitor_helpers import PNG_1X1, make_record, write_generated_captures
from moto import mock_aws

from scones.monitor.cli import EXIT_OK, EXIT_SOURCE
from scones.monitor.run import MonitorOptions, run_monitor

BUCKET = "scones-images-local"
Cli = Callable[..., int]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(client: Any, key: str, records: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    client.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_captures_uploaded_in_sagemaker_layout(s3: Any, tmp_path: Path, monitor_cli: Cli) -> None:
    folder = write_generated_captures(tmp_path / "gen", endpoint="scones-image-classifier")
    for path in sorted(folder.rglob("*.jsonl")):
        s3.upload_file(str(path), BUCKET, f"data_capture/{path.relative_to(folder).as_posix()}")
    s3.put_object(Bucket=BUCKET, Key="data_capture/README.txt", Body=b"not a capture")
    put(s3, "data_capture_old/x/AllTraffic/2024/10/16/09/00-00-000-x.jsonl", [make_record()])
    out = tmp_path / "o"
    assert monitor_cli(f"s3://{BUCKET}/data_capture", "-o", str(out)) == EXIT_OK
    rows = read_csv(out / "inferences.csv")
    assert len(rows) == 22
    assert {(r["endpoint"], r["variant"]) for r in rows} == {
        ("scones-image-classifier", "AllTraffic")
    }
    assert all(
        r["source"].startswith(f"s3://{BUCKET}/data_capture/scones-image-classifier/") for r in rows
    )
    assert sum(r["passed_threshold"] == "false" for r in rows) == 7


def test_window_prunes_hour_folders_and_unreadable_objects_are_reported(
    s3: Any, tmp_path: Path
) -> None:
    base = "data_capture/ep/AllTraffic/2026/11/27"
    for hour in range(6, 14):
        put(
            s3,
            f"{base}/{hour:02d}/00-00-000-{hour}.jsonl",
            [
                make_record(time=f"2026-11-27T{hour:02d}:10:00Z", event_id=f"h{hour}"),
            ],
        )
    fetched: list[str] = []

    class CountingClient:
        def __init__(self) -> None:
            self._client = boto3.client("s3", region_name="us-east-1")

        def get_paginator(self, name: str) -> Any:
            return self._client.get_paginator(name)

        def get_object(self, **kwargs: Any) -> Any:
            fetched.append(kwargs["Key"])
            if kwargs["Key"].endswith("-11.jsonl"):
                raise self._client.exceptions.NoSuchKey(
                    {"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject"
                )
            return self._client.get_object(**kwargs)

    options = MonitorOptions(
        source=f"s3://{BUCKET}/data_capture",
        output=tmp_path / "o",
        since=datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        until=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        progress=False,
    )
    result = run_monitor(options, s3_client=CountingClient)
    # hours 08..12 may hold records of 09:00-12:00 (one hour of slack each way); 06, 07, 13 are skipped
    assert sorted(int(k.rsplit("-", 1)[1].removesuffix(".jsonl")) for k in fetched) == [
        8,
        9,
        10,
        11,
        12,
    ]
    rows = read_csv(tmp_path / "o" / "inferences.csv")
    assert [r["event_id"] for r in rows] == ["h9", "h10"]
    assert result.collector.outside_window == 2  # h8 and h12
    errors = read_csv(tmp_path / "o" / "parse_errors.csv")
    assert len(errors) == 1 and errors[0]["line"] == "0"
    assert errors[0]["file"].endswith("-11.jsonl") and "NoSuchKey" in errors[0]["error"]


def test_window_before_every_hour_folder_exit_3(
    s3: Any, tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    put(s3, "data_capture/ep/AllTraffic/2026/11/27/10/00-00-000-a.jsonl", [make_record()])
    assert (
        monitor_cli(
            f"s3://{BUCKET}/data_capture", "-o", str(tmp_path / "o"), "--since", "2026-11-28"
        )
        == 3
    )
    assert capsys.readouterr().err.strip() == (
        f"scones monitor: no captures in the window: the 1 files under s3://{BUCKET}/data_capture "
        "are all in hour folders outside --since/--until"
    )


def test_missing_bucket_exit_4(
    s3: Any, tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert monitor_cli("s3://no-such-bucket/data_capture", "-o", str(tmp_path / "o")) == EXIT_SOURCE
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "scones monitor: cannot list s3://no-such-bucket/data_capture: NoSuchBucket"
    )
    assert "\n" not in err


def test_unreachable_s3_exit_4(
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a loopback port nothing listens on: what a user sees when the twin is not up
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert monitor_cli(f"s3://{BUCKET}/data_capture", "-o", str(tmp_path / "o")) == EXIT_SOURCE
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        f"scones monitor: cannot list s3://{BUCKET}/data_capture: Could not connect"
    )


def test_reads_what_the_offline_twin_writes(s3: Any, tmp_path: Path, monitor_cli: Cli) -> None:
    """Contract with the twin's capture writer: its files on S3 are this command's input."""
    from scones.endpoint import capture

    writer = capture.CaptureWriter(lambda: boto3.client("s3", region_name="us-east-1"))
    hours = [
        datetime(2026, 11, 27, 18, 44, 5, tzinfo=UTC),
        datetime(2026, 11, 27, 19, 2, 0, tzinfo=UTC),
    ]
    for i, (when, probs) in enumerate(zip(hours, ([0.97, 0.03], [0.4, 0.6]), strict=True)):
        assert writer.submit(
            capture.CaptureEvent(
                destination=f"s3://{BUCKET}/data_capture",
                endpoint="scones-image-classifier",
                variant="AllTraffic",
                input_data=PNG_1X1,
                input_content_type="image/png",
                output_data=json.dumps(probs).encode(),
                output_content_type="application/json",
                when=when,
                event_id=f"ev-{i}",
                inference_id=f"inf-{i}" if i else None,
            )
        )
    assert writer.flush()
    out = tmp_path / "o"
    assert (
        monitor_cli(
            f"s3://{BUCKET}/data_capture", "-o", str(out), "--classes", "bicycle,motorcycle"
        )
        == EXIT_OK
    )
    rows = read_csv(out / "inferences.csv")
    assert [
        (r["time"], r["event_id"], r["inference_id"], r["endpoint"], r["variant"], r["predicted_label"],
         r["passed_threshold"], r["input_bytes"])
        for r in rows
    ] == [
        ("2026-11-27T18:44:05Z", "ev-0", "", "scones-image-classifier", "AllTraffic", "bicycle", "true", str(len(PNG_1X1))),
        ("2026-11-27T19:02:00Z", "ev-1", "inf-1", "scones-image-classifier", "AllTraffic", "motorcycle", "false", str(len(PNG_1X1))),
    ]  # fmt: skip
    assert "/2026/11/27/18/" in rows[0]["source"] and "/2026/11/27/19/" in rows[1]["source"]
