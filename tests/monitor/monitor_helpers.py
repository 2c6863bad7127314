"""Builders of Data Capture records and files for the monitor tests.

``write_generated_captures`` writes a realistic capture folder with the offline twin's own
capture writer format (``scones.endpoint.capture``), so most tests need no shared data.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


# The generated capture set: 22 requests of a two-class model over two days, in 12 files, with
# the shape of the real shared captures (2 on day one, 20 within 20 minutes on day two).
# Each entry: (inference time, probability of class 0). Class 1 gets 1 - p.
_DAY_TWO = datetime(2026, 11, 27, 9, 16, tzinfo=UTC)
GENERATED: list[tuple[datetime, float]] = [
    (datetime(2026, 11, 26, 14, 5, tzinfo=UTC), 0.94),
    (datetime(2026, 11, 26, 14, 57, tzinfo=UTC), 0.95),
    *(
        (_DAY_TWO + timedelta(minutes=i), p)
        for i, p in enumerate(
            # below 0.93: 0.86, 0.81, 0.77, 0.79, 0.52, 0.76, 0.82 (7); of those below 0.8: 4
            [0.06, 0.98, 0.02, 0.99, 0.86, 0.03, 0.19, 0.23, 0.01, 0.21,
             0.05, 0.52, 0.995, 0.24, 0.01, 0.99, 0.004, 0.82, 0.02, 0.007]
        )
    ),
]  # fmt: skip
GENERATED_FILE_SIZES = [1, 1, 1, 2, 1, 2, 3, 2, 3, 3, 2, 1]  # records per file, in time order
GENERATED_BELOW_093 = 7
GENERATED_BICYCLES = 9  # class 0 predicted (p >= 0.5)


def generated_record(index: int) -> dict[str, Any]:
    """Record ``index`` of the generated set, built by the twin's capture writer."""
    from scones.endpoint.capture import capture_record

    when, p = GENERATED[index]
    return capture_record(
        input_data=PNG_1X1,
        input_content_type="image/png",
        output_data=json.dumps([p, 1 - p]).encode(),
        output_content_type="application/json",
        event_id=f"gen-{index:02d}",
        inference_time=when,
    )


def write_generated_captures(
    root: Path, *, endpoint: str | None = None, variant: str = "AllTraffic"
) -> Path:
    """Write the generated set under ``root``: flat (like the shared captures) or, with
    ``endpoint``, in SageMaker's ``<endpoint>/<variant>/yyyy/mm/dd/hh/`` layout."""
    from scones.endpoint.capture import capture_key, encode_record

    first = 0
    for number, size in enumerate(GENERATED_FILE_SIZES):
        when = GENERATED[first][0]
        key = capture_key("", endpoint or "ep", variant, when, file_id=f"file-{number:02d}")
        path = root / (key if endpoint else key.rsplit("/", 1)[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            b"".join(encode_record(generated_record(i)) for i in range(first, first + size))
        )
        first += size
    assert first == len(GENERATED)
    return root
