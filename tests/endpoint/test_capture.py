"""Data Capture: record format against real SageMaker files, key layout, and the writer."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capture_helpers import FakeS3

from scones.endpoint import capture
from scones.endpoint.spool import read_counts

KEY = re.compile(r"^p/q/ep/AllTraffic/2026/11/27/18/44-05-123-[0-9a-f-]{36}\.jsonl$")
# The file name of a real SageMaker capture file: MM-SS-mmm-<uuid>.jsonl
FILE_NAME = re.compile(
    r"^\d{2}-\d{2}-\d{3}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$"
)


def real_records(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        out += [(line, json.loads(line)) for line in path.read_text().splitlines()]
    return out


def test_records_match_real_sagemaker_records_byte_for_byte(shared_capture: Path) -> None:
    """Rebuild each real record from its decoded parts; the line must come out identical."""
    records = real_records(shared_capture)
    assert len(records) == 22
    for line, real in records:
        data_in = real["captureData"]["endpointInput"]
        data_out = real["captureData"]["endpointOutput"]
        rebuilt = capture.capture_record(
            input_data=base64.b64decode(data_in["data"]),
            input_content_type=data_in["observedContentType"],
            output_data=data_out["data"].encode(),
            output_content_type=data_out["observedContentType"],
            event_id=real["eventMetadata"]["eventId"],
            inference_time=datetime.strptime(
                real["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ"
            ).replace(tzinfo=UTC),
        )
        assert capture.encode_record(rebuilt) == line.encode() + b"\n"


def test_our_file_names_have_the_form_of_sagemakers() -> None:
    when = datetime(2026, 11, 27, 18, 44, 5, 123456, tzinfo=UTC)
    ours = capture.capture_key("p/q", "ep", "AllTraffic", when).rsplit("/", 1)[1]
    assert FILE_NAME.match(ours)


def test_real_file_names_match_our_key_layout(shared_capture: Path) -> None:
    names = [p.name for p in shared_capture.glob("*.jsonl")]
    assert names and all(FILE_NAME.match(name) for name in names)


def test_capture_key_layout() -> None:
    when = datetime(2026, 11, 27, 18, 44, 5, 123456, tzinfo=UTC)
    assert KEY.match(capture.capture_key("p/q", "ep", "AllTraffic", when))
    assert capture.capture_key("", "ep", "v", when, "u").startswith(
        "ep/v/2026/11/27/18/44-05-123-u"
    )
    assert capture.split_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert capture.split_s3_uri("s3://bucket") == ("bucket", "")


def test_encodings_follow_content_types() -> None:
    record = capture.capture_record(
        input_data=b"1,2,3",
        input_content_type="text/csv",
        output_data=b"\xff\x00",
        output_content_type="application/json",  # not UTF-8: falls back to base64
        event_id="e",
        inference_time=datetime(2026, 1, 1, tzinfo=UTC),
        inference_id="my-id",
    )
    assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
    assert record["captureData"]["endpointInput"]["data"] == "1,2,3"
    assert record["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert record["captureData"]["endpointOutput"]["data"] == "/wA="
    assert record["eventMetadata"] == {
        "eventId": "e",
        "inferenceId": "my-id",
        "inferenceTime": "2026-01-01T00:00:00Z",
    }


def event(
    when: datetime, endpoint: str = "ep", size: int = 10, destination: str = "s3://b/dc"
) -> capture.CaptureEvent:
    return capture.CaptureEvent(
        destination=destination,
        endpoint=endpoint,
        variant="AllTraffic",
        input_data=b"x" * size,
        input_content_type="image/png",
        output_data=b"[0.5, 0.5]",
        output_content_type="application/json",
        when=when,
        event_id="00000000-0000-0000-0000-000000000000",
        inference_id=None,
    )


def records_of(s3: FakeS3) -> list[dict[str, Any]]:
    return [json.loads(line) for body in s3.objects.values() for line in body.decode().splitlines()]


def test_writer_groups_by_endpoint_and_hour() -> None:
    s3 = FakeS3()
    writer = capture.CaptureWriter(lambda: s3)
    t1 = datetime(2026, 11, 27, 18, 59, 59, tzinfo=UTC)
    t2 = datetime(2026, 11, 27, 19, 0, 1, tzinfo=UTC)
    for when, endpoint in [(t1, "ep"), (t1, "ep"), (t2, "ep"), (t1, "other")]:
        assert writer.submit(event(when, endpoint))
    assert writer.flush()
    keys = sorted(k for _, k in s3.objects)
    assert [k.rsplit("/", 1)[0] for k in keys] == [
        "dc/ep/AllTraffic/2026/11/27/18",
        "dc/ep/AllTraffic/2026/11/27/19",
        "dc/other/AllTraffic/2026/11/27/18",
    ]
    assert len(records_of(s3)) == 4
    assert writer.buffered_bytes == 0
    assert (writer.written_records, writer.written_files) == (4, 3)


def test_writer_keeps_records_while_s3_is_down_and_retries(tmp_path: Path) -> None:
    s3 = FakeS3()
    s3.down = True
    writer = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    now = datetime.now(UTC)
    for _ in range(3):
        writer.submit(event(now))
    assert not writer.flush()
    assert writer.buffered_bytes > 0 and writer.failed_puts == 1
    writer.submit(event(now))
    assert not writer.flush()
    assert read_counts(tmp_path) == {"written": 4, "shipped": 0, "pending": 4, "lost": 0}
    s3.down = False
    assert writer.flush()
    assert len(records_of(s3)) == 4
    assert writer.buffered_bytes == 0
    assert read_counts(tmp_path) == {"written": 4, "shipped": 4, "pending": 0, "lost": 0}


def test_records_arriving_during_a_flush_do_not_slow_the_next_flush() -> None:
    """Under steady traffic a flush always finds new records waiting: that is no failure, so
    the writer must keep its interval (it once backed off to 30 s here)."""
    s3 = FakeS3()
    writer = capture.CaptureWriter(lambda: s3, flush_interval=0.1)
    real_put = s3.put_object

    def put_while_traffic_continues(**kwargs: Any) -> dict[str, Any]:
        writer.submit(event(datetime.now(UTC)))
        return real_put(**kwargs)

    s3.put_object = put_while_traffic_continues  # type: ignore[method-assign]
    writer.submit(event(datetime.now(UTC)))
    assert writer.flush() is True
    writer.start()
    time.sleep(1.0)
    assert s3.calls >= 5  # about one flush per 0.1 s, not a growing backoff
    s3.put_object = real_put  # type: ignore[method-assign]
    assert writer.close(timeout=5)


def test_writer_loses_new_records_when_the_spool_is_full_and_counts_them(tmp_path: Path) -> None:
    s3 = FakeS3()
    s3.down = True
    line = len(capture.spool_line(event(datetime.now(UTC), size=30)))
    writer = capture.CaptureWriter(lambda: s3, max_spool_bytes=2 * line + 10, spool_dir=tmp_path)
    now = datetime.now(UTC)
    accepted = [writer.submit(event(now, size=30)) for _ in range(5)]
    assert accepted == [True, True, False, False, False]
    assert writer.dropped == 3
    s3.down = False
    assert writer.flush()
    assert len(records_of(s3)) == 2
    assert writer.submit(event(now, size=30))  # room again
    assert writer.flush()
    assert read_counts(tmp_path) == {"written": 6, "shipped": 3, "pending": 0, "lost": 3}


def test_background_thread_flushes_within_the_interval_and_close_flushes_the_rest() -> None:
    s3 = FakeS3()
    writer = capture.CaptureWriter(lambda: s3, flush_interval=0.2)
    writer.start()
    writer.submit(event(datetime.now(UTC)))
    deadline = time.monotonic() + 3
    while not s3.objects and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(records_of(s3)) == 1
    slow = capture.CaptureWriter(lambda: s3, flush_interval=600)
    slow.start()
    slow.submit(event(datetime.now(UTC), endpoint="late"))
    assert slow.close(timeout=5)
    assert any("/late/" in key for _, key in s3.objects)
    assert writer.close(timeout=5)


def test_close_keeps_the_records_on_disk_when_s3_stays_down(tmp_path: Path) -> None:
    """SIGTERM with S3 down: nothing is lost, the next writer on the folder ships it."""
    s3 = FakeS3()
    s3.down = True
    writer = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    for _ in range(3):
        writer.submit(event(datetime.now(UTC)))
    started = time.monotonic()
    assert writer.close(timeout=1.0) is False
    assert time.monotonic() - started < 5
    assert read_counts(tmp_path) == {"written": 3, "shipped": 0, "pending": 3, "lost": 0}
    s3.down = False
    following = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    assert following.adopt() == 3
    assert following.flush()
    assert len(records_of(s3)) == 3
    assert following.close(timeout=1.0)
    assert read_counts(tmp_path) == {"written": 3, "shipped": 3, "pending": 0, "lost": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["totals.json", "totals.lock"]


def test_writer_with_a_real_boto3_client_on_moto() -> None:
    """The put_object call is what boto3 accepts (moto's S3 mock, in-process)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="capture-bucket")
        writer = capture.CaptureWriter(lambda: client)
        writer.submit(event(datetime.now(UTC), destination="s3://capture-bucket/dc"))
        assert writer.flush()
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="capture-bucket")["Contents"]]
        assert len(keys) == 1 and keys[0].startswith("dc/ep/AllTraffic/")
        body = client.get_object(Bucket="capture-bucket", Key=keys[0])["Body"].read()
        assert (
            json.loads(body)["captureData"]["endpointInput"]["data"]
            == base64.b64encode(b"x" * 10).decode()
        )
