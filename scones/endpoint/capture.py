"""SageMaker Data Capture for the local endpoint: the record format, the S3 key layout, and a
background writer that batches records into JSON Lines files on S3 without slowing requests.

Records and keys match what a real SageMaker endpoint writes:
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``.

The writer keeps at most ``max_buffer_bytes`` of records in memory. While S3 is unreachable it
keeps them and retries with backoff; when the buffer is full, new records are dropped (counted and
logged), as a real endpoint drops captures rather than failing or slowing inference.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("scones.capture")

JSON_TYPES = ("application/json", "application/jsonlines", "application/x-ndjson")
CSV_TYPES = ("text/csv",)


class S3Putter(Protocol):
    """The one method of a boto3 S3 client that the writer uses."""

    def put_object(self, **kwargs: Any) -> Any: ...


def _encoding_for(content_type: str | None) -> str:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    if base in JSON_TYPES:
        return "JSON"
    if base in CSV_TYPES:
        return "CSV"
    return "BASE64"


def _payload(data: bytes, content_type: str | None, mode: str) -> dict[str, str]:
    encoding = _encoding_for(content_type)
    if encoding != "BASE64":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        text = base64.b64encode(data).decode("ascii")
    return {
        "observedContentType": content_type or "",
        "mode": mode,
        "data": text,
        "encoding": encoding,
    }


def capture_record(
    *,
    input_data: bytes,
    input_content_type: str | None,
    output_data: bytes,
    output_content_type: str | None,
    event_id: str,
    inference_time: datetime,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """Build one Data Capture record, as SageMaker writes it (JSON/CSV as text, else base64)."""
    metadata: dict[str, str] = {"eventId": event_id}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = inference_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "captureData": {
            "endpointInput": _payload(input_data, input_content_type, "INPUT"),
            "endpointOutput": _payload(output_data, output_content_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSON Lines line (compact separators, as in SageMaker's files)."""
    return json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def capture_key(
    prefix: str, endpoint: str, variant: str, when: datetime, file_id: str | None = None
) -> str:
    """S3 key of a capture file started at ``when``:
    ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``."""
    when = when.astimezone(UTC)
    name = f"{when:%M-%S}-{when.microsecond // 1000:03d}-{file_id or uuid.uuid4()}.jsonl"
    parts = [prefix] if prefix else []
    parts += [endpoint, variant, f"{when:%Y/%m/%d/%H}", name]
    return "/".join(parts)


@dataclass
class _Pending:
    """Records waiting for one capture file."""

    bucket: str
    key: str
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    attempts: int = 0


@dataclass(frozen=True)
class CaptureEvent:
    """What the request path hands to the writer (serialised later, off the request path)."""

    destination: str
    endpoint: str
    variant: str
    input_data: bytes
    input_content_type: str | None
    output_data: bytes
    output_content_type: str | None
    when: datetime
    event_id: str
    inference_id: str | None


class CaptureWriter:
    """Buffers capture events and writes them to S3 from one background thread.

    ``submit`` never blocks: it appends to an in-memory buffer bounded by ``max_buffer_bytes``
    (input + output bytes) and drops the event when the buffer is full. The thread flushes every
    ``flush_interval`` seconds (or sooner when ``flush_bytes`` are waiting), one file per
    destination, endpoint, variant and hour. Failed uploads are kept and retried with backoff.
    ``close`` flushes what is left (used on shutdown / SIGTERM).
    """

    def __init__(
        self,
        client_factory: Callable[[], S3Putter],
        *,
        flush_interval: float = 2.0,
        flush_bytes: int = 4 * 1024 * 1024,
        max_buffer_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._client_factory = client_factory
        self._client: S3Putter | None = None
        self.flush_interval = flush_interval
        self.flush_bytes = flush_bytes
        self.max_buffer_bytes = max_buffer_bytes
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._events: list[CaptureEvent] = []
        self._retry: list[_Pending] = []
        self._buffered = 0
        self.dropped = 0
        self.written_records = 0
        self.written_files = 0
        self.failed_puts = 0
        self._dropped_logged = 0
        self._thread: threading.Thread | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes of events held in memory, including files waiting for a retry."""
        return self._buffered

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
            self._thread.start()

    def submit(self, event: CaptureEvent) -> bool:
        """Queue ``event``; return False (and count it) if the buffer is full."""
        size = len(event.input_data) + len(event.output_data)
        with self._lock:
            if self._buffered + size > self.max_buffer_bytes:
                self.dropped += 1
                return False
            self._events.append(event)
            self._buffered += size
            if self._buffered >= self.flush_bytes:
                self._wake.set()
        return True

    def _group(self, events: list[CaptureEvent]) -> list[_Pending]:
        groups: dict[tuple[str, str, str, str], _Pending] = {}
        for event in events:
            hour = event.when.astimezone(UTC).strftime("%Y%m%d%H")
            gkey = (event.destination, event.endpoint, event.variant, hour)
            pending = groups.get(gkey)
            if pending is None:
                bucket, prefix = split_s3_uri(event.destination)
                key = capture_key(prefix, event.endpoint, event.variant, event.when)
                pending = groups[gkey] = _Pending(bucket, key)
            record = capture_record(
                input_data=event.input_data,
                input_content_type=event.input_content_type,
                output_data=event.output_data,
                output_content_type=event.output_content_type,
                event_id=event.event_id,
                inference_time=event.when,
                inference_id=event.inference_id,
            )
            pending.lines.append(encode_record(record))
            pending.size += len(event.input_data) + len(event.output_data)
        return list(groups.values())

    def _put(self, pending: _Pending) -> bool:
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._client.put_object(
                Bucket=pending.bucket,
                Key=pending.key,
                Body=b"".join(pending.lines),
                ContentType="application/octet-stream",
            )
        except Exception as exc:  # S3 down, bucket missing, credentials: keep and retry
            pending.attempts += 1
            self.failed_puts += 1
            log.warning(
                "capture upload failed, will retry",
                extra={"key": pending.key, "attempts": pending.attempts, "error": str(exc)},
            )
            return False
        self.written_files += 1
        self.written_records += len(pending.lines)
        return True

    def flush(self) -> bool:
        """Write everything buffered now; return True when every upload succeeded."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> bool:
        with self._lock:
            events, self._events = self._events, []
            retry, self._retry = self._retry, []
        started = time.monotonic()
        failed: list[_Pending] = []
        for pending in retry + self._group(events):
            if not self._put(pending):
                failed.append(pending)
        if events:
            oldest = min(e.when for e in events)
            log.debug(
                "capture flushed",
                extra={
                    "records": len(events),
                    "seconds": round(time.monotonic() - started, 3),
                    "oldest_age_s": round((datetime.now(UTC) - oldest).total_seconds(), 3),
                },
            )
        with self._lock:
            done = sum(len(e.input_data) + len(e.output_data) for e in events)
            done += sum(p.size for p in retry)
            self._buffered -= done
            self._buffered += sum(p.size for p in failed)
            self._retry = failed + self._retry
            if self.dropped > self._dropped_logged:
                log.warning(
                    "capture buffer full: records dropped",
                    extra={"dropped_total": self.dropped, "buffer_bytes": self.max_buffer_bytes},
                )
                self._dropped_logged = self.dropped
            return not self._retry  # events that arrived meanwhile wait for the next round

    def _run(self) -> None:
        backoff = self.flush_interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                break
            ok = self.flush()
            backoff = self.flush_interval if ok else min(backoff * 2, 30.0)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread and flush what is left, retrying until ``timeout``; True if all written."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while True:
            if self.flush() and not self._events:
                return True
            if time.monotonic() >= deadline:
                lost = sum(len(p.lines) for p in self._retry)
                log.error("capture records lost at shutdown", extra={"records": lost})
                return False
            time.sleep(0.5)
