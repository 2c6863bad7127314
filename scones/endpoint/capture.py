"""SageMaker Data Capture for the local endpoint: the record format, the S3 key layout, and the
writer that gets every captured record of an answered request into S3, or counts it as lost.

Records and keys match what a real SageMaker endpoint writes:
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``.

``CaptureWriter.submit`` writes the record ahead to the worker's spool file on local disk
(``spool``) before the request is answered; a background thread ships spool files to S3 (one
object per destination, endpoint, variant and hour of each file) and removes them once shipped.
While S3 is unreachable the files wait on disk and the thread retries with backoff; files of a
worker that died, or that stopped while S3 was down, are adopted and shipped by a worker of the
same state directory (the next one started, or a sibling). Object keys are derived from the
spool file's name, so shipping a file twice after a crash rewrites the same objects.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from scones.endpoint.spool import Spool, SpoolFile, count_records, spool_folder

if TYPE_CHECKING:
    from scones.settings import Settings

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


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder: half the cost of json.dumps


def encode_record(record: dict[str, Any]) -> bytes:
    """One JSON Lines line (compact separators, as in SageMaker's files)."""
    return _COMPACT.encode(record).encode("utf-8") + b"\n"


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


@dataclass(frozen=True)
class CaptureEvent:
    """What the request path hands to the writer (serialised and spooled before the answer)."""

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


SPOOL_MB_ENV = "SCONES_CAPTURE_SPOOL_MB"
ADOPT_EVERY = 10.0  # seconds between looks for a dead worker's spool files


_TARGETS: dict[tuple[str, str, str], bytes] = {}  # JSON of (destination, endpoint, variant)


def spool_line(event: CaptureEvent) -> bytes:
    """The spool line of ``event``: ``<epoch ms>\\t<JSON [destination, endpoint, variant]>\\t``
    + its capture record line (JSON never holds a raw tab)."""
    record = capture_record(
        input_data=event.input_data,
        input_content_type=event.input_content_type,
        output_data=event.output_data,
        output_content_type=event.output_content_type,
        event_id=event.event_id,
        inference_time=event.when,
        inference_id=event.inference_id,
    )
    target = (event.destination, event.endpoint, event.variant)
    head = _TARGETS.get(target)
    if head is None:
        if len(_TARGETS) > 256:
            _TARGETS.clear()
        head = _TARGETS[target] = json.dumps(target).encode("utf-8")
    millis = b"%d\t" % int(event.when.timestamp() * 1000)
    return millis + head + b"\t" + encode_record(record)


@dataclass
class CaptureObject:
    """One S3 object made from (part of) a spool file."""

    bucket: str
    key: str
    lines: list[bytes] = field(default_factory=list)


def objects_of(name: str, data: bytes) -> tuple[list[CaptureObject], int, int]:
    """Group a spool file's lines into capture objects (per destination, endpoint, variant and
    hour). Returns (objects, records, unusable lines: a torn last line or a corrupt one)."""
    lines = data.split(b"\n")
    bad = 1 if lines.pop() else 0  # a last line without its newline: the writer died in it
    groups: dict[tuple[str, str, str, int], CaptureObject] = {}
    targets: dict[bytes, tuple[str, str, str]] = {}
    records = 0
    for line in lines:
        try:
            millis_text, head, record = line.split(b"\t", 2)
            millis = int(millis_text)
            target = targets.get(head)
            if target is None:
                destination, endpoint, variant = json.loads(head)
                target = targets[head] = (str(destination), str(endpoint), str(variant))
        except (ValueError, TypeError):
            bad += 1
            continue
        group = (*target, millis // 3_600_000)
        obj = groups.get(group)
        if obj is None:
            bucket, prefix = split_s3_uri(group[0])
            when = datetime.fromtimestamp(millis / 1000, UTC)
            file_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{'/'.join(map(str, group))}"))
            key = capture_key(prefix, group[1], group[2], when, file_id)
            obj = groups[group] = CaptureObject(bucket, key)
        obj.lines.append(record + b"\n")
        records += 1
    return list(groups.values()), records, bad


class CaptureWriter:
    """Spools capture events on the request path; ships them to S3 from one background thread.

    ``submit`` serialises the event and appends it to the spool (one ``write``; no S3 call);
    if it cannot (disk error, or ``max_spool_bytes`` already waiting) the record is counted in
    ``lost`` and logged. The thread rotates the spool file every ``flush_interval`` seconds
    (sooner when ``flush_bytes`` are waiting) and ships ready files, backing off while S3
    fails. ``close`` ships what is left, and leaves it on disk for the next start if S3 is down.
    Without ``spool_dir`` (library use, tests) a private temporary folder is used.
    """

    def __init__(
        self,
        client_factory: Callable[[], S3Putter],
        *,
        flush_interval: float = 2.0,
        flush_bytes: int = 4 * 1024 * 1024,
        max_spool_bytes: int = 512 * 1024 * 1024,
        spool_dir: Path | None = None,
    ) -> None:
        self._client_factory = client_factory
        self._client: S3Putter | None = None
        self.flush_interval = flush_interval
        self.flush_bytes = flush_bytes
        self._private = spool_dir is None
        folder = (
            Path(tempfile.mkdtemp(prefix="scones-capture-")) if spool_dir is None else spool_dir
        )
        self.spool = Spool(folder, max_bytes=max_spool_bytes)
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_records = 0  # records this writer put into S3 (own and adopted)
        self.written_files = 0  # S3 objects written
        self.failed_puts = 0
        self.adopted_records = 0  # records found in dead workers' spools

    @classmethod
    def for_settings(
        cls, settings: Settings, client_factory: Callable[[], S3Putter], **kw: Any
    ) -> CaptureWriter:
        """The endpoint worker's writer: spool under the state directory, size from
        ``SCONES_CAPTURE_SPOOL_MB`` (default 512 per worker)."""
        megabytes = float(os.environ.get(SPOOL_MB_ENV, "512"))
        kw.setdefault("max_spool_bytes", int(megabytes * 1024 * 1024))
        return cls(client_factory, spool_dir=spool_folder(settings), **kw)

    @property
    def dropped(self) -> int:
        """Records lost: not spooled (disk error, spool full) or torn by a dying worker."""
        return self.spool.own.lost

    @property
    def buffered_bytes(self) -> int:
        """Bytes of this worker's records on disk, not yet in S3."""
        return self.spool.pending_bytes

    def start(self) -> None:
        """Start the background thread (idempotent); it first adopts dead workers' spools."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
            self._thread.start()

    def submit(self, event: CaptureEvent) -> bool:
        """Spool ``event`` (before the request is answered); False when it is lost (counted)."""
        ok = self.spool.append(spool_line(event))
        if self.spool.active_bytes >= self.flush_bytes:
            self._wake.set()
        return ok

    def _put(self, obj: CaptureObject) -> bool:
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._client.put_object(
                Bucket=obj.bucket,
                Key=obj.key,
                Body=b"".join(obj.lines),
                ContentType="application/octet-stream",
            )
        except Exception as exc:  # S3 down, bucket missing, credentials: keep and retry
            self.failed_puts += 1
            log.warning(
                "capture upload failed, will retry", extra={"key": obj.key, "error": str(exc)}
            )
            return False
        self.written_files += 1
        return True

    def _ship(self, item: SpoolFile) -> bool:
        try:
            data = item.path.read_bytes()
        except FileNotFoundError:
            return True  # shipped by another worker that adopted it meanwhile
        objects, records, bad = objects_of(item.path.stem, data)
        if not all(self._put(obj) for obj in objects):
            return False
        if bad:
            log.error(
                "capture records lost: unreadable spool lines",
                extra={"file": item.path.name, "records": bad},
            )
        self.spool.shipped(item, records, bad, len(data))
        self.written_records += records
        return True

    def flush(self) -> bool:
        """Rotate the spool and ship every ready file; True when nothing is left to ship."""
        with self._flush_lock:
            started, before = time.monotonic(), self.written_records
            self.spool.rotate()
            for item in self.spool.ready_files():
                if not self._ship(item):
                    return False
            for ident in [i for i in self.spool.adopted.values()]:
                self.spool.finish(ident)
            self.spool.save_counts(self.spool.own)
            self.spool.log_lost()
            log.debug(
                "capture flushed",
                extra={
                    "records": self.written_records - before,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
            return True

    def adopt(self) -> int:
        """Adopt the spools of dead workers; return how many records were waiting in them."""
        with self._flush_lock:
            waiting = self.spool.adopt_orphans_logged()
        self.adopted_records += waiting
        return waiting

    def _run(self) -> None:
        backoff = self.flush_interval
        next_ship = next_adopt = 0.0
        woken = False
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_adopt:
                    self.adopt()
                    next_adopt = now + ADOPT_EVERY
                if now >= next_ship or (woken and backoff == self.flush_interval):
                    ok = self.flush()
                    backoff = self.flush_interval if ok else min(backoff * 2, 30.0)
                    next_ship = time.monotonic() + backoff
                else:  # S3 failing: keep rotating (and fsyncing) on schedule, ship later
                    self.spool.rotate()
            except Exception as exc:  # the disk (full, removed): the thread must go on
                log.exception("capture thread error, will retry", extra={"error": str(exc)})
                backoff = min(backoff * 2, 30.0)
                next_ship = time.monotonic() + backoff
            woken = self._wake.wait(self.flush_interval)
            self._wake.clear()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread and ship what is left, retrying until ``timeout``; True if all was
        shipped. Otherwise the records stay on disk and the next worker started ships them."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline, shipped = time.monotonic() + timeout, False
        while not shipped and time.monotonic() < deadline:
            try:
                shipped = self.flush()
            except Exception as exc:  # the disk: what is spooled stays for the next start
                log.exception("capture flush error", extra={"error": str(exc)})
                break
            if not shipped:
                time.sleep(0.5)
        self.spool.log_lost()
        if not shipped:
            pending = sum(count_records(f.path) for f in self.spool.ready_files())
            log.warning(
                "capture records kept on disk: S3 unreachable at shutdown; shipped at next start",
                extra={"records": pending, "folder": str(self.spool.folder)},
            )
        self.spool.close(finish_own=shipped)
        if self._private and shipped:
            shutil.rmtree(self.spool.folder, ignore_errors=True)
        return shipped
