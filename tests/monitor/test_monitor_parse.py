"""Parsing Data Capture records: every encoding, and every way a record can be broken."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from monitor_helpers import PNG_1X1, make_record

from scones.monitor.records import MalformedCaptureError, parse_record


def line(record: dict[str, Any]) -> str:
    return json.dumps(record)


def test_real_sagemaker_record_parses_exactly(shared_capture: Path) -> None:
    path = shared_capture / "05-12-996-134a89fb-c8d4-4f30-8dde-033e4dd53a08.jsonl"
    raw = path.read_bytes().splitlines()[0]
    payload = json.loads(raw)["captureData"]["endpointInput"]["data"]
    inference = parse_record(raw)
    assert inference.event_id == "695344c2-3858-45e5-a14d-33deaf4310c7"
    assert inference.time == datetime(2024, 10, 15, 14, 5, 12, tzinfo=UTC)
    assert inference.probabilities == (0.9388836622238159, 0.061116307973861694)
    assert inference.label == 0
    assert inference.confidence == pytest.approx(0.9388836622238159)
    assert inference.input_bytes == len(base64.b64decode(payload))
    assert inference.input_content_type == "image/png"
    assert inference.inference_id == ""


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [
        ("JSON", "application/json"),
        ("CSV", "text/csv"),
        ("BASE64", "application/json"),
        ("BASE64", "text/csv"),
    ],
)
def test_output_encodings(encoding: str, content_type: str) -> None:
    record = make_record(
        (0.2, 0.8), output_encoding=encoding, output_type=content_type, inference_id="req-7"
    )
    inference = parse_record(line(record))
    assert inference.probabilities == (0.2, 0.8)
    assert inference.label == 1
    assert inference.inference_id == "req-7"
    assert inference.input_bytes == len(PNG_1X1)


def test_json_and_csv_inputs_count_their_text_bytes() -> None:
    record = make_record()
    record["captureData"]["endpointInput"] = {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "1,2,3",
        "encoding": "CSV",
    }
    assert parse_record(line(record)).input_bytes == 5


def test_batch_of_one_output_and_bytes_line() -> None:
    record = make_record([[0.1, 0.9]])
    assert parse_record(line(record).encode()).probabilities == (0.1, 0.9)


def test_output_only_capture_has_no_input_size() -> None:
    inference = parse_record(line(make_record(input_bytes=None)))
    assert inference.input_bytes is None
    assert inference.input_content_type == ""


def test_time_with_offset_and_fraction_is_utc() -> None:
    inference = parse_record(line(make_record(time="2026-11-27T12:00:00.250+02:00")))
    assert inference.time == datetime(2026, 11, 27, 10, 0, 0, 250000, tzinfo=UTC)


def _drop(path: str) -> dict[str, Any]:
    record = make_record()
    *parents, last = path.split(".")
    node: Any = record
    for key in parents:
        node = node[key]
    del node[last]
    return record


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("captureData", "captureData is missing"),
        ("captureData.endpointOutput", "endpointOutput is missing"),
        ("captureData.endpointOutput.data", "endpointOutput.data is missing"),
        ("captureData.endpointOutput.encoding", "endpointOutput.encoding is missing"),
        ("captureData.endpointInput.data", "endpointInput.data is missing"),
        ("eventMetadata", "eventMetadata is missing"),
        ("eventMetadata.eventId", "eventId is missing"),
        ("eventMetadata.inferenceTime", "inferenceTime is missing"),
    ],
)
def test_missing_keys_are_named(path: str, message: str) -> None:
    with pytest.raises(MalformedCaptureError, match=message):
        parse_record(line(_drop(path)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"captureData": {', "not valid JSON"),
        ("", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        ("[1, 2]", "record is a JSON list"),
        ('"text"', "record is a JSON str"),
    ],
)
def test_bad_json_lines(text: str | bytes, message: str) -> None:
    with pytest.raises(MalformedCaptureError, match=message):
        parse_record(text)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"probabilities": [0.1, 0.9]}, "JSON dict, expected a list"),
        ("bicycle", "JSON str, expected a list"),
        (0.9, "JSON float, expected a list"),
        (None, "JSON NoneType, expected a list"),
        ([], "empty list"),
        ([0.5, "0.5"], "holds str"),
        ([True, False], "holds bool"),
        ([[0.1, 0.9], [0.2, 0.8]], "holds list"),
        ([1.5, -0.5], "not a probability"),
    ],
)
def test_outputs_that_are_not_probabilities(output: Any, message: str) -> None:
    with pytest.raises(MalformedCaptureError, match=message):
        parse_record(line(make_record(output)))


def test_nan_output_is_rejected() -> None:
    record = make_record()
    record["captureData"]["endpointOutput"]["data"] = "[NaN, 0.5]"
    with pytest.raises(MalformedCaptureError, match="not a probability"):
        parse_record(line(record))


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("endpointOutput", "encoding", "XML", "encoding is 'XML', expected BASE64, JSON or CSV"),
        ("endpointOutput", "mode", "INPUT", "mode is 'INPUT', expected OUTPUT"),
        ("endpointInput", "mode", "OUTPUT", "mode is 'OUTPUT', expected INPUT"),
        ("endpointOutput", "data", "[0.1, 0.9", "endpointOutput.data is not valid JSON"),
        ("endpointOutput", "data", 0.9, "endpointOutput.data is not a string"),
        ("endpointInput", "data", "not base64!", "endpointInput.data is not valid base64"),
    ],
)
def test_bad_fields(section: str, key: str, value: Any, message: str) -> None:
    record = make_record()
    record["captureData"][section][key] = value
    with pytest.raises(MalformedCaptureError, match=message):
        parse_record(line(record))


def test_bad_csv_and_base64_outputs() -> None:
    record = make_record(output_encoding="CSV", output_type="text/csv")
    record["captureData"]["endpointOutput"]["data"] = "0.1,bicycle"
    with pytest.raises(MalformedCaptureError, match="not CSV numbers"):
        parse_record(line(record))
    record = make_record(output_encoding="BASE64")
    record["captureData"]["endpointOutput"]["data"] = "%%%"
    with pytest.raises(MalformedCaptureError, match="endpointOutput.data is not valid base64"):
        parse_record(line(record))
    record["captureData"]["endpointOutput"]["data"] = base64.b64encode(PNG_1X1).decode()
    record["captureData"]["endpointOutput"]["observedContentType"] = "image/png"
    with pytest.raises(MalformedCaptureError, match="binary, not probabilities"):
        parse_record(line(record))


def test_bad_time_is_named() -> None:
    with pytest.raises(MalformedCaptureError, match="inferenceTime 'yesterday' is not an ISO 8601"):
        parse_record(line(make_record(time="yesterday")))


def test_twin_writer_records_parse() -> None:
    """The offline twin's capture writer and this parser agree on the format."""
    from scones.endpoint import capture

    when = datetime(2026, 11, 27, 18, 44, 5, tzinfo=UTC)
    record = capture.capture_record(
        input_data=PNG_1X1,
        input_content_type="image/png",
        output_data=b"[0.25, 0.75]",
        output_content_type="application/json",
        event_id="ev-1",
        inference_time=when,
        inference_id="inf-1",
    )
    inference = parse_record(capture.encode_record(record))
    assert (inference.time, inference.event_id, inference.inference_id) == (when, "ev-1", "inf-1")
    assert inference.probabilities == (0.25, 0.75)
    assert inference.input_bytes == len(PNG_1X1)
