"""Parse one SageMaker Data Capture record into the few values monitoring needs.

Each line of a capture file holds ``captureData.endpointInput`` / ``captureData.endpointOutput``
(``observedContentType``, ``mode``, ``encoding`` BASE64 / JSON / CSV, ``data``),
``eventMetadata`` (``eventId``, ``inferenceTime``, optional ``inferenceId``) and
``eventVersion``. A parsed record keeps the class probabilities and the input's size, never the
payloads.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_ENCODINGS = ("BASE64", "JSON", "CSV")
_PROBABILITY_SLACK = 1e-4  # float32 softmax outputs may overshoot [0, 1] by rounding
MAX_CLASSES = 1_000  # more probabilities than this in one output is refused before parsing them
MAX_TEXT = 1_024  # longest event id, inference id or content type kept


class MalformedCaptureError(ValueError):
    """A Data Capture record that cannot be read as one inference."""


@dataclass(frozen=True, slots=True)
class Inference:
    """The parts of one captured request that monitoring needs (payloads are not kept)."""

    time: datetime  # aware, UTC
    event_id: str
    inference_id: str
    probabilities: tuple[float, ...]
    input_bytes: int | None  # size of the request body; None when input was not captured
    input_content_type: str

    @property
    def label(self) -> int:
        """Index of the most probable class (the first one on a tie)."""
        probs = self.probabilities
        return max(range(len(probs)), key=probs.__getitem__)

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return max(self.probabilities)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 timestamp such as ``2024-10-16T09:16:33Z``; naive means UTC.

    ``ValueError`` when it is not one, or when it falls outside the years 1-9999 in UTC."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1-9999 in UTC") from None


def format_time(value: datetime) -> str:
    """Format a UTC time the way Data Capture does (``Z`` suffix, milliseconds if any)."""
    value = value.astimezone(UTC)
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def _section(record: dict[str, Any], name: str, mode: str, *, required: bool) -> dict[str, Any]:
    capture = record["captureData"]
    section = capture.get(name)
    if section is None:
        if required:
            raise MalformedCaptureError(f"captureData.{name} is missing")
        return {}
    if not isinstance(section, dict):
        raise MalformedCaptureError(f"captureData.{name} is not an object")
    for key in ("data", "encoding"):
        if key not in section:
            raise MalformedCaptureError(f"captureData.{name}.{key} is missing")
    if not isinstance(section["data"], str):
        raise MalformedCaptureError(f"captureData.{name}.data is not a string")
    if section["encoding"] not in _ENCODINGS:
        raise MalformedCaptureError(
            f"captureData.{name}.encoding is {section['encoding']!r}, expected BASE64, JSON or CSV"
        )
    if section.get("mode", mode) != mode:
        raise MalformedCaptureError(
            f"captureData.{name}.mode is {section['mode']!r}, expected {mode}"
        )
    return section


def _csv_numbers(text: str, where: str) -> list[Any]:
    cells = [cell.strip() for cell in re.split(r"[,\n]", text.strip()) if cell.strip()]
    try:
        return [float(cell) for cell in cells]
    except ValueError:
        raise MalformedCaptureError(f"{where} is not CSV numbers: {text[:40]!r}") from None


def _decode_output(section: dict[str, Any]) -> Any:
    """Turn endpointOutput's ``data`` into a Python value according to its encoding."""
    data: str = section["data"]
    encoding = section["encoding"]
    content_type = str(section.get("observedContentType", "")).lower()
    if encoding == "BASE64":
        try:
            raw = binascii.a2b_base64(data, strict_mode=True)
        except (binascii.Error, ValueError):
            raise MalformedCaptureError(
                "captureData.endpointOutput.data is not valid base64"
            ) from None
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedCaptureError(
                f"endpointOutput ({content_type or 'no content type'}) is binary, not probabilities"
            ) from None
        encoding = "CSV" if "csv" in content_type else "JSON"
    values = data.count(",") + 1
    if values > MAX_CLASSES:
        raise MalformedCaptureError(
            f"endpointOutput holds about {values:,} values, more than the {MAX_CLASSES:,} "
            "classes the monitor reads"
        )
    if encoding == "CSV":
        return _csv_numbers(data, "captureData.endpointOutput.data")
    try:
        return json.loads(data)
    except RecursionError:
        raise MalformedCaptureError(
            "captureData.endpointOutput.data is nested too deeply"
        ) from None
    except ValueError:
        raise MalformedCaptureError(
            f"captureData.endpointOutput.data is not valid JSON: {data[:40]!r}"
        ) from None


def _probabilities(value: Any) -> tuple[float, ...]:
    """Check a decoded model output is a list of class probabilities (or one such row)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]  # a batch of one: [[p0, p1, ...]]
    if not isinstance(value, list):
        raise MalformedCaptureError(
            f"endpointOutput is a JSON {type(value).__name__}, expected a list of class probabilities"
        )
    if not value:
        raise MalformedCaptureError("endpointOutput is an empty list")
    probs: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise MalformedCaptureError(
                f"endpointOutput holds {type(item).__name__} {str(item)[:20]!r}, expected numbers"
            )
        number = float(item)
        if not math.isfinite(number) or not -_PROBABILITY_SLACK <= number <= 1 + _PROBABILITY_SLACK:
            raise MalformedCaptureError(f"endpointOutput value {number!r} is not a probability")
        probs.append(number)
    return tuple(probs)


def _input_size(section: dict[str, Any]) -> int | None:
    if not section:
        return None
    data: str = section["data"]
    if section["encoding"] == "BASE64":
        try:
            return len(binascii.a2b_base64(data, strict_mode=True))
        except (binascii.Error, ValueError):
            raise MalformedCaptureError(
                "captureData.endpointInput.data is not valid base64"
            ) from None
    return len(data.encode("utf-8"))


def _text(value: Any, where: str) -> str:
    """A string field to keep: a string, at most ``MAX_TEXT`` characters, writable as UTF-8."""
    if not isinstance(value, str):
        raise MalformedCaptureError(f"{where} is missing or not a string")
    if len(value) > MAX_TEXT:
        raise MalformedCaptureError(f"{where} is {len(value):,} characters, over {MAX_TEXT:,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedCaptureError(f"{where} holds an unpaired surrogate (not text)") from None
    return value


def parse_record(line: str | bytes) -> Inference:
    """Parse one Data Capture JSON line; raise ``MalformedCaptureError`` saying what is wrong."""
    try:
        record = json.loads(line)
    except UnicodeDecodeError as exc:
        raise MalformedCaptureError(
            f"not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at {exc.start:,})"
        ) from None
    except RecursionError:
        raise MalformedCaptureError("JSON nested too deeply (the recursion limit)") from None
    except ValueError as exc:
        raise MalformedCaptureError(f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(record, dict):
        raise MalformedCaptureError(f"record is a JSON {type(record).__name__}, expected an object")
    if not isinstance(record.get("captureData"), dict):
        raise MalformedCaptureError("captureData is missing or not an object")
    metadata = record.get("eventMetadata")
    if not isinstance(metadata, dict):
        raise MalformedCaptureError("eventMetadata is missing or not an object")
    event_id = _text(metadata.get("eventId"), "eventMetadata.eventId")
    if not event_id:
        raise MalformedCaptureError("eventMetadata.eventId is missing")
    when = metadata.get("inferenceTime")
    if not isinstance(when, str):
        raise MalformedCaptureError("eventMetadata.inferenceTime is missing")
    try:
        time = parse_time(when)
    except ValueError:
        raise MalformedCaptureError(
            f"eventMetadata.inferenceTime {when[:40]!r} is not an ISO 8601 time in the years 1-9999"
        ) from None
    inference_id = metadata.get("inferenceId", "")
    if not isinstance(inference_id, str):
        inference_id = str(inference_id)[:MAX_TEXT]
    output = _section(record, "endpointOutput", "OUTPUT", required=True)
    inputs = _section(record, "endpointInput", "INPUT", required=False)
    return Inference(
        time=time,
        event_id=event_id,
        inference_id=_text(inference_id, "eventMetadata.inferenceId"),
        probabilities=_probabilities(_decode_output(output)),
        input_bytes=_input_size(inputs),
        input_content_type=_text(
            str(inputs.get("observedContentType", "")), "endpointInput.observedContentType"
        ),
    )
