"""Find Data Capture files (local folder or S3 prefix) and read their lines.

SageMaker writes one JSON Lines file per batch of captured requests under
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``; the path tells
the endpoint, the variant and the hour. Files are streamed line by line (local) or fetched a
few at a time on threads (S3), so memory does not grow with the number of files.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scones.monitor.errors import CaptureSourceError

MAX_LINE_BYTES = 16 * 1024 * 1024  # a 6 MB request, base64 in its record, fits with room
PREFETCH_MAX_BYTES = 32 * 1024 * 1024  # larger S3 objects are streamed, not held whole
_CHUNK = 1024 * 1024

# .../<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
_CAPTURE_PATH = re.compile(
    r"(?:^|/)(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<h>\d{2})/[^/]+\.jsonl$"
)


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """One capture file, with what its path says about it."""

    location: str  # a local path or s3://bucket/key, used in messages and error reports
    endpoint: str  # "" when the path does not follow SageMaker's layout
    variant: str
    hour: datetime | None  # the hour folder the file sits in, if any
    size: int


@dataclass(frozen=True, slots=True)
class LongLine:
    """Stands for a line over ``MAX_LINE_BYTES``: skipped without being held, only its size."""

    size: int


def split_lines(chunks: Iterable[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | LongLine]:
    """Yield the lines (with their newline) of a stream of byte chunks; a line longer than
    ``limit`` comes out as a ``LongLine`` and is never held whole, so memory stays at about
    ``limit`` plus one chunk whatever the input."""
    pending = bytearray()
    skipped = 0  # bytes of an over-long line seen so far (0: not skipping)
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start) + 1
            piece = chunk[start:end] if end else chunk[start:]
            if skipped:
                skipped += len(piece)
            elif len(pending) + len(piece) > limit:
                skipped = len(pending) + len(piece)
                pending.clear()
            elif end and not pending:
                yield piece
            else:
                pending += piece
                if end:
                    yield bytes(pending)
                    pending.clear()
            if not end:
                break
            if skipped:
                yield LongLine(skipped)
                skipped = 0
            start = end
    if skipped:
        yield LongLine(skipped)
    elif pending:
        yield bytes(pending)


def describe_path(location: str, size: int) -> CaptureFile:
    """Build a ``CaptureFile``, reading endpoint, variant and hour from a SageMaker-style path."""
    match = _CAPTURE_PATH.search(location.replace("\\", "/"))
    if not match:
        return CaptureFile(location, "", "", None, size)
    hour = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["h"]), tzinfo=UTC)
    return CaptureFile(location, match["endpoint"], match["variant"], hour, size)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into bucket and prefix (a folder prefix ends with ``/``)."""
    if not uri.startswith("s3://"):
        raise CaptureSourceError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise CaptureSourceError(f"{uri!r} names no bucket")
    if prefix and not prefix.endswith("/") and not prefix.endswith(".jsonl"):
        prefix += "/"
    return bucket, prefix


def list_local(root: Path) -> list[CaptureFile]:
    """List ``*.jsonl`` files under ``root`` (or ``root`` itself if it is a file), sorted."""
    if root.is_file():
        return [describe_path(root.resolve().as_posix(), root.stat().st_size)]
    if not root.is_dir():
        raise CaptureSourceError(f"{root} does not exist")
    files = sorted(path for path in root.rglob("*.jsonl") if path.is_file())
    return [describe_path(path.resolve().as_posix(), path.stat().st_size) for path in files]


def list_s3(client: Any, bucket: str, prefix: str) -> list[CaptureFile]:
    """List ``*.jsonl`` objects under ``s3://bucket/prefix`` with an injected boto3 S3 client."""
    found: list[CaptureFile] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith(".jsonl"):
                found.append(describe_path(f"s3://{bucket}/{key}", int(item.get("Size", 0))))
    found.sort(key=lambda f: f.location)
    return found


def list_source(source: str, s3_client: Callable[[], Any]) -> list[CaptureFile]:
    """List the capture files of a local folder or an ``s3://`` prefix.

    ``s3_client`` returns a boto3 S3 client; it is called only for ``s3://`` sources. Every way
    listing can fail becomes a one-line ``CaptureSourceError``.
    """
    if not source.startswith("s3://"):
        return list_local(Path(source))
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    bucket, prefix = split_s3_uri(source)
    try:
        return list_s3(s3_client(), bucket, prefix)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        detail = error.get("Code") or "error"
        if error.get("Message"):
            detail += f" ({error['Message']})"
        raise CaptureSourceError(f"cannot list {source}: {detail}") from None
    except (NoCredentialsError, EndpointConnectionError) as exc:
        hint = 'for the offline twin: eval "$(scones env)" after scones up'
        raise CaptureSourceError(f"cannot list {source}: {exc} ({hint})") from None
    except BotoCoreError as exc:
        raise CaptureSourceError(f"cannot list {source}: {exc}") from None


def read_lines(capture: CaptureFile) -> Iterator[bytes | LongLine]:
    """Yield the lines of one local capture file without loading it (or a huge line) whole."""
    with open(capture.location, "rb") as handle:
        yield from split_lines(iter(lambda: handle.read(_CHUNK), b""))


def _open(capture: CaptureFile, s3_client: Any) -> Any:
    bucket, _, key = capture.location[5:].partition("/")
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"]


def _fetch(capture: CaptureFile, s3_client: Any) -> bytes | None:
    """The whole object, or None when it is too large to hold (it is streamed instead)."""
    if capture.size > PREFETCH_MAX_BYTES:
        return None
    body = _open(capture, s3_client)
    try:
        return bytes(body.read())
    finally:
        body.close()


def _stream(capture: CaptureFile, s3_client: Any) -> Iterator[bytes | LongLine]:
    body = _open(capture, s3_client)
    try:
        yield from split_lines(iter(lambda: bytes(body.read(_CHUNK)), b""))
    finally:
        body.close()


def _raising(exc: BaseException) -> Iterator[bytes]:
    raise exc
    yield b""  # pragma: no cover - makes this a generator


def iter_captures(
    files: Sequence[CaptureFile], s3_client: Any = None, prefetch: int = 8
) -> Iterator[tuple[CaptureFile, Iterator[bytes | LongLine]]]:
    """Yield each file with an iterator over its lines, in order.

    Local files are streamed in chunks. S3 objects up to ``PREFETCH_MAX_BYTES`` are fetched
    ``prefetch`` at a time on threads (one boto3 call costs milliseconds of waiting), so at most
    ``prefetch`` + 1 of them are held at once; larger ones are streamed when their turn comes.
    A file that cannot be fetched yields an iterator that raises the error.
    """
    if not any(f.location.startswith("s3://") for f in files):
        for capture in files:
            yield capture, read_lines(capture)
        return
    with ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="capture-fetch") as pool:
        queue: deque[tuple[CaptureFile, Future[bytes | None]]] = deque()
        upcoming = iter(files)
        for capture in upcoming:
            queue.append((capture, pool.submit(_fetch, capture, s3_client)))
            if len(queue) >= prefetch:
                break
        while queue:
            capture, future = queue.popleft()
            following = next(upcoming, None)
            if following is not None:
                queue.append((following, pool.submit(_fetch, following, s3_client)))
            try:
                body = future.result()
            except Exception as exc:  # reported by the caller as this file's error
                yield capture, _raising(exc)
                continue
            if body is None:
                yield capture, _stream(capture, s3_client)
            else:
                yield capture, split_lines([body])


def in_window(capture: CaptureFile, since: datetime | None, until: datetime | None) -> bool:
    """Whether a file's hour folder can hold records in ``[since, until)``.

    A file is written after the records it holds, so one hour of slack is allowed either way.
    """
    if capture.hour is None:
        return True
    slack = timedelta(hours=1)
    if since is not None and capture.hour + 2 * slack <= since:
        return False
    return not (until is not None and capture.hour - slack >= until)
