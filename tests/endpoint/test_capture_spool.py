"""The Data Capture spool: records written ahead to disk survive a dead writer, are shipped once,
and every record is counted as shipped, pending or lost (``scones.endpoint.spool``)."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import capture_helpers
import pytest

from scones.endpoint import capture, spool
from scones.endpoint.spool import read_counts


class FakeS3(capture_helpers.FakeS3):
    """The shared fake, which also lists the capture event ids it holds."""

    def event_ids(self) -> list[str]:
        return [
            json.loads(line)["eventMetadata"]["eventId"]
            for body in self.objects.values()
            for line in body.decode().splitlines()
        ]


def event(i: int, when: datetime | None = None) -> capture.CaptureEvent:
    return capture.CaptureEvent(
        destination="s3://b/dc",
        endpoint="ep",
        variant="AllTraffic",
        input_data=f"request {i}".encode(),
        input_content_type="application/octet-stream",
        output_data=b"[1]",
        output_content_type="application/json",
        when=when or datetime.now(UTC),
        event_id=f"event-{i}",
        inference_id=None,
    )


def die(writer: capture.CaptureWriter) -> None:
    """What a ``kill -9`` leaves: files as they are, the flock released (no close, no flush)."""
    os.close(writer.spool.own.lock_fd)


def test_a_dead_writers_records_are_shipped_by_the_next_writer(tmp_path: Path) -> None:
    s3 = FakeS3()
    first = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    for i in range(3):
        assert first.submit(event(i))
    first.spool.rotate()  # one ready file and one still open when it dies
    for i in range(3, 5):
        assert first.submit(event(i))
    second = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    assert second.adopt() == 0  # the first one is alive: its lock is held
    assert read_counts(tmp_path) == {"written": 5, "shipped": 0, "pending": 5, "lost": 0}
    die(first)
    assert second.adopt() == 5
    assert second.flush()
    assert sorted(s3.event_ids()) == [f"event-{i}" for i in range(5)]
    assert read_counts(tmp_path) == {"written": 5, "shipped": 5, "pending": 0, "lost": 0}
    assert second.close(timeout=1)
    assert read_counts(tmp_path) == {"written": 5, "shipped": 5, "pending": 0, "lost": 0}
    assert [p.name for p in tmp_path.glob("*.lock")] == ["totals.lock"]


def test_a_torn_last_line_is_counted_as_lost_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = FakeS3()
    first = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    assert first.submit(event(0))
    open_file = next(tmp_path.glob("*.open"))
    with open_file.open("ab") as fh:  # the worker died in the middle of its next write
        fh.write(capture.spool_line(event(1))[:40])
    die(first)
    assert read_counts(tmp_path)["pending"] == 1
    second = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    with caplog.at_level(logging.ERROR, logger="scones.capture"):
        second.adopt()
        assert second.flush()
    assert s3.event_ids() == ["event-0"]
    assert read_counts(tmp_path) == {"written": 2, "shipped": 1, "pending": 0, "lost": 1}
    assert any("capture records lost" in r.getMessage() for r in caplog.records)


def test_a_crash_between_upload_and_removal_ships_and_counts_once(tmp_path: Path) -> None:
    s3 = FakeS3()
    first = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    for i in range(2):
        first.submit(event(i))
    first.spool.rotate()
    ready = next(tmp_path.glob("*.ready"))
    data = ready.read_bytes()
    assert first.flush()
    ready.write_bytes(data)  # counted as shipped, then killed before the file was removed
    die(first)
    calls = s3.calls
    assert read_counts(tmp_path) == {"written": 2, "shipped": 2, "pending": 0, "lost": 0}
    second = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    second.adopt()
    assert second.flush()
    assert s3.calls == calls and not ready.exists()
    assert read_counts(tmp_path) == {"written": 2, "shipped": 2, "pending": 0, "lost": 0}


def test_shipping_a_file_again_rewrites_the_same_objects() -> None:
    """A crash after the upload and before the count: the retry overwrites, never duplicates."""
    t1 = datetime(2026, 11, 27, 18, 59, 59, tzinfo=UTC)
    t2 = datetime(2026, 11, 27, 19, 0, 1, tzinfo=UTC)
    data = b"".join(capture.spool_line(event(i, when)) for i, when in enumerate([t1, t1, t2]))
    objects, records, bad = capture.objects_of("123-0badc0de-00000001", data)
    again, _, _ = capture.objects_of("123-0badc0de-00000001", data)
    other, _, _ = capture.objects_of("123-0badc0de-00000002", data)
    assert (records, bad) == (3, 0)
    assert [o.key for o in objects] == [o.key for o in again]
    assert not {o.key for o in objects} & {o.key for o in other}
    assert [o.key.rsplit("/", 1)[0] for o in objects] == [
        "dc/ep/AllTraffic/2026/11/27/18",
        "dc/ep/AllTraffic/2026/11/27/19",
    ]
    assert [len(o.lines) for o in objects] == [2, 1]
    assert objects[0].lines[0] == capture.encode_record(
        capture.capture_record(
            input_data=b"request 0",
            input_content_type="application/octet-stream",
            output_data=b"[1]",
            output_content_type="application/json",
            event_id="event-0",
            inference_time=t1,
        )
    )


def test_a_failed_spool_write_is_lost_counted_and_the_next_record_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = FakeS3()
    writer = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    assert writer.submit(event(0))
    real_write = spool._write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, data[:7])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "_write", half_then_full)
    assert not writer.submit(event(1))
    monkeypatch.setattr(spool, "_write", real_write)
    assert writer.submit(event(2))
    with caplog.at_level(logging.ERROR, logger="scones.capture"):
        assert writer.flush()
    assert sorted(s3.event_ids()) == ["event-0", "event-2"]
    assert writer.dropped == 1
    assert read_counts(tmp_path) == {"written": 3, "shipped": 2, "pending": 0, "lost": 1}
    lost = [r for r in caplog.records if r.getMessage() == "capture records lost"]
    assert lost and "No space left" in lost[0].__dict__["reason"]


def test_totals_survive_restarts_and_fold_each_writer_once(tmp_path: Path) -> None:
    s3 = FakeS3()
    for round_ in range(3):
        writer = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
        writer.adopt()
        for i in range(4):
            writer.submit(event(10 * round_ + i))
        assert writer.close(timeout=1)
    totals = json.loads((tmp_path / "totals.json").read_text())
    assert len(totals["folded"]) == 3
    assert read_counts(tmp_path) == {"written": 12, "shipped": 12, "pending": 0, "lost": 0}
    assert len(s3.event_ids()) == 12


def test_the_background_thread_adopts_at_start(tmp_path: Path) -> None:
    s3 = FakeS3()
    s3.down = True
    first = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path)
    first.submit(event(0))
    assert not first.close(timeout=0.2)  # S3 down at shutdown: kept on disk
    s3.down = False
    second = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path, flush_interval=0.1)
    second.start()
    try:
        for _ in range(100):
            if s3.event_ids():
                break
            threading.Event().wait(0.05)
    finally:
        assert second.close(timeout=2)
    assert s3.event_ids() == ["event-0"]
    assert read_counts(tmp_path) == {"written": 1, "shipped": 1, "pending": 0, "lost": 0}


def test_counts_of_a_missing_folder_are_zero(tmp_path: Path) -> None:
    assert read_counts(tmp_path / "none") == {"written": 0, "shipped": 0, "pending": 0, "lost": 0}


def test_the_capture_thread_survives_a_disk_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = FakeS3()
    writer = capture.CaptureWriter(lambda: s3, spool_dir=tmp_path, flush_interval=0.05)
    real_rotate = writer.spool.rotate
    failures: list[int] = []

    def rotate_fails_once() -> None:
        if not failures:
            failures.append(1)
            raise OSError(errno.EIO, "Input/output error")
        real_rotate()

    monkeypatch.setattr(writer.spool, "rotate", rotate_fails_once)
    writer.submit(event(0))
    writer.start()
    try:
        for _ in range(200):
            if s3.event_ids():
                break
            threading.Event().wait(0.05)
    finally:
        assert writer.close(timeout=2)
    assert failures and s3.event_ids() == ["event-0"]
