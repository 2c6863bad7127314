"""The newest Data Capture records of an endpoint, read from S3, with image thumbnails.

Capture files sit under ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mmm>-<uuid>.jsonl``
(see ``scones.monitor.capture``), so names sort by time. Instead of listing every file, the
newest ones are found by walking the folders newest first with ``Delimiter="/"`` (a handful
of ListObjectsV2 calls), then read until enough records are found. Records are parsed with
``scones.monitor.records.parse_record``, as ``scones monitor`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scones.console.payloads import thumbnail

MAX_DEPTH = 8  # endpoint/variant/yyyy/mm/dd/hh + slack


@dataclass(frozen=True)
class CaptureRow:
    """One captured request: when, ids, prediction, and the input image as a thumbnail."""

    time: datetime | None
    event_id: str
    inference_id: str
    label: int | None
    confidence: float | None
    image_uri: str | None
    image_note: str
    file: str
    error: str | None = None  # why the record could not be read


def _level(s3: Any, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """(sub-folders, .jsonl keys) directly under ``prefix``."""
    folders: list[str] = []
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl"))
    return folders, keys


def newest_keys(s3: Any, bucket: str, prefix: str, limit: int, depth: int = 0) -> list[str]:
    """Up to ``limit`` capture keys under ``prefix``, newest first (by folder and file name)."""
    if depth > MAX_DEPTH or limit <= 0:
        return []
    folders, keys = _level(s3, bucket, prefix)
    found = sorted(keys, reverse=True)[:limit]
    for folder in sorted(folders, reverse=True):
        if len(found) >= limit:
            break
        found += newest_keys(s3, bucket, folder, limit - len(found), depth + 1)
    return found


def _row(line: bytes, key: str) -> CaptureRow:
    import json

    from scones.monitor.records import MalformedCaptureError, parse_record

    try:
        record = parse_record(line)
    except MalformedCaptureError as exc:
        return CaptureRow(None, "", "", None, None, None, "", key, error=str(exc))
    section = json.loads(line)["captureData"].get("endpointInput") or {}
    uri, note = None, "input not captured"
    if section.get("encoding") == "BASE64" and isinstance(section.get("data"), str):
        uri, note = thumbnail(section["data"])
    elif section:
        note = f"{section.get('observedContentType', '')} input, not an image"
    return CaptureRow(
        time=record.time,
        event_id=record.event_id,
        inference_id=record.inference_id,
        label=record.label,
        confidence=record.confidence,
        image_uri=uri,
        image_note=note,
        file=key,
    )


def recent_captures(
    s3: Any, capture_uri: str, endpoint: str | None, limit: int = 24
) -> list[CaptureRow]:
    """The newest ``limit`` records under ``capture_uri`` (for ``endpoint`` when given)."""
    from scones.monitor.capture import split_s3_uri

    bucket, prefix = split_s3_uri(capture_uri.rstrip("/") + "/")
    if endpoint:
        prefix += f"{endpoint}/"
    rows: list[CaptureRow] = []
    for key in newest_keys(s3, bucket, prefix, limit):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            lines = [line for line in body.read().splitlines() if line.strip()]
        finally:
            body.close()
        rows += [_row(line, key) for line in reversed(lines)]
        if len(rows) >= limit:
            break
    rows.sort(key=lambda r: r.time.timestamp() if r.time else 0.0, reverse=True)
    return rows[:limit]
