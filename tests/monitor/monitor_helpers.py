"""Builders of Data Capture records and files for the monitor tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

SHARED_CAPTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "data-capture"
# one tiny PNG (1x1) as a request body
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def make_record(
    probabilities: Any = (0.97, 0.03),
    *,
    time: str = "2026-11-27T10:15:00Z",
    event_id: str = "e-1",
    output_encoding: str = "JSON",
    output_type: str = "application/json",
    input_bytes: bytes | None = PNG_1X1,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """A Data Capture record shaped like SageMaker's (output encoded as asked)."""
    if output_encoding == "JSON":
        data = json.dumps(
            list(probabilities) if isinstance(probabilities, tuple) else probabilities
        )
    elif output_encoding == "CSV":
        data = ",".join(str(p) for p in probabilities)
    else:  # BASE64 of the JSON (or CSV) body
        body = (
            ",".join(str(p) for p in probabilities)
            if "csv" in output_type
            else json.dumps(list(probabilities))
        )
        data = base64.b64encode(body.encode()).decode()
    capture: dict[str, Any] = {
        "endpointOutput": {
            "observedContentType": output_type,
            "mode": "OUTPUT",
            "data": data,
            "encoding": output_encoding,
        }
    }
    if input_bytes is not None:
        capture["endpointInput"] = {
            "observedContentType": "image/png",
            "mode": "INPUT",
            "data": base64.b64encode(input_bytes).decode(),
            "encoding": "BASE64",
        }
    metadata = {"eventId": event_id, "inferenceTime": time}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


def write_capture(path: Path, records: list[dict[str, Any] | str]) -> Path:
    """Write records (dicts as JSON, strings verbatim) as one JSON Lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r, separators=(",", ":")) for r in records]
    path.write_text("".join(line + "\n" for line in lines))
    return path
