"""Builders for the console tests: a small state machine shaped like the workflow, executions
with real PNG images in their payloads, Data Capture files, and an in-process ASGI GET."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from typing import Any

from PIL import Image

PORT = 8090
HOST = f"127.0.0.1:{PORT}"
ROLE = "arn:aws:iam::123456789012:role/console-test"
XSS = "<script>alert('x')</script>"

# The workflow's shape with Pass/Choice/Fail states (moto's interpreter runs them, no Lambda):
# the input carries image_data, label and confidence as ClassifyImage would add them.
DEFINITION = {
    "StartAt": "SerializeImage",
    "States": {
        "SerializeImage": {"Type": "Pass", "Next": "CheckImage"},
        "CheckImage": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.broken", "IsPresent": True, "Next": "NotAnImage"}],
            "Default": "ClassifyImage",
        },
        "ClassifyImage": {"Type": "Pass", "Next": "FilterInferences"},
        "FilterInferences": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.confidence", "NumericGreaterThanEquals": 0.93, "Next": "Done"}
            ],
            "Default": "LowConfidence",
        },
        "Done": {"Type": "Succeed"},
        "LowConfidence": {
            "Type": "Fail",
            "Error": "LowConfidenceError",
            "Cause": f"confidence below 0.93 {XSS}",
        },
        "NotAnImage": {"Type": "Fail", "Error": "NotAnImageError", "Cause": "not an image"},
    },
}


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: int = 32) -> bytes:
    """A real PNG image (with a text chunk, so the console's re-encoded thumbnail differs)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "scones console test image")
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def png_b64(color: tuple[int, int, int] = (200, 30, 30)) -> str:
    """A real PNG, base64 (as SerializeImage puts it in image_data)."""
    return base64.b64encode(png_bytes(color)).decode()


def work_item(label: int, confidence: float, **extra: Any) -> dict[str, Any]:
    """An execution input as the workflow's item looks after ClassifyImage."""
    return {
        "s3_bucket": "images",
        "s3_key": f"incoming/{label}-{confidence}.png",
        "image_data": png_b64(),
        "inferences": [1 - confidence, confidence] if label else [confidence, 1 - confidence],
        "label": label,
        "confidence": confidence,
        **extra,
    }


def create_machine(sfn: Any, name: str = "scones-ImageClassification") -> str:
    """Create the test state machine; return its ARN."""
    created = sfn.create_state_machine(name=name, definition=json.dumps(DEFINITION), roleArn=ROLE)
    return str(created["stateMachineArn"])


def start(sfn: Any, arn: str, name: str, payload: dict[str, Any]) -> str:
    """Start one execution; return its ARN."""
    return str(
        sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))[
            "executionArn"
        ]
    )


def wait_all(sfn: Any, arns: list[str], timeout_s: float = 60) -> None:
    """Wait until none of ``arns`` is RUNNING."""
    deadline = time.monotonic() + timeout_s
    pending = list(arns)
    while pending:
        pending = [
            a for a in pending if sfn.describe_execution(executionArn=a)["status"] == "RUNNING"
        ]
        if pending and time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} executions still running")
        time.sleep(0.02)


def capture_line(event_id: str, when: str, probabilities: list[float], image: bytes | None) -> str:
    """One Data Capture record, as the endpoint writes it."""
    capture: dict[str, Any] = {
        "endpointOutput": {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": json.dumps(probabilities),
            "encoding": "JSON",
        }
    }
    if image is not None:
        capture["endpointInput"] = {
            "observedContentType": "image/png",
            "mode": "INPUT",
            "data": base64.b64encode(image).decode(),
            "encoding": "BASE64",
        }
    record = {
        "captureData": capture,
        "eventMetadata": {"eventId": event_id, "inferenceTime": when, "inferenceId": XSS},
        "eventVersion": "0",
    }
    return json.dumps(record)


def asgi_get(
    app: Any, path: str, *, host: str = HOST, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    """Call the ASGI ``app`` once in-process; return status, headers and the body as text."""
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", host.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", PORT),
    }
    messages: list[dict[str, Any]] = []

    async def call() -> None:
        done = asyncio.Event()
        requests = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive() -> dict[str, Any]:
            request = next(requests, None)
            if request is not None:
                return request
            await done.wait()  # as a server does: the client goes once the answer is sent
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        await app(scope, receive, send)

    asyncio.run(call())
    start_message = next(m for m in messages if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start_message.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start_message["status"], headers, body.decode("utf-8")
