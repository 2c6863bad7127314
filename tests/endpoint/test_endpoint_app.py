"""The endpoint server's ASGI app (``scones.endpoint.app``) in-process: routing, error shapes, batching, reloads, capture.

These tests drive the app with a small test-double ``inference.py`` (text in, numbers out) so
they can check the server's own mechanics: how it batches, isolates a failing input, maps model
errors and reloads endpoints. The real model is served in tests/stack/test_endpoint.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tarfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from scones.endpoint import app as es
from scones.endpoint.capture import CaptureEvent
from scones.endpoint.model import RECHECK_SECONDS, status_of
from scones.endpoint.registry import register_endpoint, unregister_endpoint
from scones.endpoint.responses import MAX_BODY_BYTES
from scones.settings import Settings

DOUBLE = textwrap.dedent(
    '''
    """Test double: body is a decimal number as text; the 'model' doubles it."""
    import json

    CALLS = []


    class UnsupportedContentTypeError(ValueError):
        pass


    class UnsupportedAcceptError(ValueError):
        pass


    class InvalidImageError(ValueError):
        pass


    def model_fn(model_dir):
        with open(model_dir + "/factor.txt") as f:
            return {"factor": float(f.read())}


    def input_fn(body, content_type):
        if content_type != "text/plain":
            raise UnsupportedContentTypeError(content_type)
        try:
            return float(body.decode())
        except ValueError as exc:
            raise InvalidImageError(str(exc)) from None


    def predict_batch_fn(batch, model):
        CALLS.append(len(batch))
        if any(x < 0 for x in batch):
            raise RuntimeError("negative input in batch")
        return [[x * model["factor"]] for x in batch]


    def predict_fn(data, model):
        if data < 0:
            raise RuntimeError("cannot predict a negative number")
        return [data * model["factor"]]


    def output_fn(prediction, accept):
        if accept not in ("application/json", "*/*"):
            raise UnsupportedAcceptError(accept)
        return json.dumps(prediction).encode()
    '''
)


def model_tar(tmp_path: Path, factor: str, code: str = DOUBLE) -> Path:
    path = tmp_path / f"model-{factor}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {
            "factor.txt": factor.encode(),
            "code/inference.py": code.encode(),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class Writer:
    """Collects capture events like ``CaptureWriter.submit``."""

    def __init__(self) -> None:
        self.events: list[CaptureEvent] = []

    def submit(self, event: CaptureEvent) -> bool:
        self.events.append(event)
        return True

    def start(self) -> None:
        pass

    def close(self, timeout: float = 10.0) -> bool:
        return True


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")


@pytest.fixture
def app(settings: Settings, tmp_path: Path) -> es.EndpointServer:
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri="s3://bkt/dc")
    return es.EndpointServer(settings, Writer())  # type: ignore[arg-type]


async def call(
    app: es.EndpointServer,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    chunk: int = 0,
    leave: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """One request through the app; ``leave``: the client disconnects before the body's end."""
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    messages = [
        {"type": "http.request", "body": c, "more_body": leave or i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    start = sent[0]
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], response_headers, b"".join(m.get("body", b"") for m in sent[1:])


def invoke(
    app: es.EndpointServer, body: bytes, name: str = "ep", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    headers = {"content-type": "text/plain", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return asyncio.run(call(app, "POST", f"/endpoints/{name}/invocations", body, headers))


def test_invoke(app: es.EndpointServer) -> None:
    status, headers, body = invoke(app, b"21")
    assert status == 200
    assert json.loads(body) == [42.0]
    assert headers["content-type"] == "application/json"
    assert headers["x-amzn-invoked-production-variant"] == "AllTraffic"


def test_capture_event_is_submitted_for_successes_only(app: es.EndpointServer) -> None:
    invoke(app, b"3", x_amzn_sagemaker_inference_id="abc")
    invoke(app, b"junk")
    events = app.writer.events  # type: ignore[union-attr]
    assert len(events) == 1
    event = events[0]
    assert (event.destination, event.endpoint, event.variant) == ("s3://bkt/dc", "ep", "AllTraffic")
    assert (event.input_data, event.output_data, event.inference_id) == (b"3", b"[6.0]", "abc")


def test_model_errors_have_sagemaker_shape(app: es.EndpointServer) -> None:
    status, headers, body = invoke(app, b"junk")
    error = json.loads(body)
    assert (status, headers["x-amzn-errortype"]) == (424, "ModelError")
    assert error["OriginalStatusCode"] == 400 and "InvalidImageError" in error["OriginalMessage"]
    status, _, body = invoke(app, b"1", content_type="image/png")
    assert (status, json.loads(body)["OriginalStatusCode"]) == (424, 415)
    status, _, body = invoke(app, b"1", accept="text/csv")
    assert (status, json.loads(body)["OriginalStatusCode"]) == (424, 406)
    status, _, body = invoke(app, b"-1")
    error = json.loads(body)
    assert (status, error["OriginalStatusCode"]) == (424, 500)
    assert "Received server error (500)" in error["Message"]


def runtime_error(status: int, headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """(Error.Code, Error.Message) as botocore's rest-json parser reads this error answer."""
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpoint").output_shape
    response = {"status_code": status, "headers": headers, "body": body}
    error = create_parser("rest-json").parse(response, shape)["Error"]
    return error["Code"], error["Message"]


def test_log_stream_arn_names_the_settings_region(tmp_path: Path) -> None:
    settings = Settings(project_root=tmp_path, home=tmp_path / "home", region="eu-west-2")
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri=None)
    status, _, body = invoke(es.EndpointServer(settings, None), b"junk")
    assert status == 424
    assert json.loads(body)["LogStreamArn"] == (
        "arn:aws:logs:eu-west-2:123456789012:log-group:/aws/sagemaker/Endpoints/ep"
    )


def test_unknown_endpoint_route_and_method(app: es.EndpointServer) -> None:
    status, headers, body = invoke(app, b"1", name="missing")
    assert (status, headers["x-amzn-errortype"]) == (400, "ValidationError")
    assert json.loads(body)["Message"] == "Endpoint missing of account 123456789012 not found."
    status, headers, _ = invoke(app, b"1", name="bad_name!")
    assert status == 400
    status, headers, _ = asyncio.run(call(app, "GET", "/endpoints/ep/invocations"))
    assert status == 405
    status, headers, _ = asyncio.run(call(app, "GET", "/nowhere"))
    assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException")
    stream = "/endpoints/ep/invocations-response-stream"  # InvokeEndpointWithResponseStream
    status, headers, _ = asyncio.run(call(app, "POST", stream, b"1"))
    assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException")


def test_body_limit_counts_every_chunk(app: es.EndpointServer) -> None:
    big = b"1" * (MAX_BODY_BYTES + 1)
    status, headers, body = asyncio.run(
        call(
            app,
            "POST",
            "/endpoints/ep/invocations",
            big,
            {"content-type": "text/plain"},
            chunk=65536,
        )
    )
    assert (status, headers["content-type"]) == (413, "text/plain; charset=utf-8")
    assert "x-amzn-errortype" not in headers  # AWS's front end answers before the API does
    parsed = runtime_error(status, headers, body)
    assert parsed == ("413", f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
    exact = b" " * (MAX_BODY_BYTES - 1) + b"1"
    status, _, body = asyncio.run(
        call(
            app,
            "POST",
            "/endpoints/ep/invocations",
            exact,
            {"content-type": "text/plain"},
            chunk=65536,
        )
    )
    assert (status, json.loads(body)) == (200, [2.0])


def test_queued_requests_run_as_one_batch_and_a_bad_input_only_fails_itself(
    app: es.EndpointServer,
) -> None:
    async def many() -> list[tuple[int, dict[str, str], bytes]]:
        bodies = [b"1", b"2", b"-3", b"4", b"oops", b"6"]
        tasks = [
            call(app, "POST", "/endpoints/ep/invocations", b, {"content-type": "text/plain"})
            for b in bodies
        ]
        return await asyncio.gather(*tasks)

    assert invoke(app, b"0")[0] == 200  # load the model first
    results = asyncio.run(many())
    statuses = [r[0] for r in results]
    assert statuses == [200, 200, 424, 200, 424, 200]
    assert [json.loads(r[2]) for r in results if r[0] == 200] == [[2.0], [4.0], [8.0], [12.0]]
    module = app.endpoints.loaded["ep"].batcher.model.module  # type: ignore[union-attr]
    assert module.CALLS == [1, 5]  # one batch: every decodable input queued together


def test_endpoint_changes_are_picked_up(
    app: es.EndpointServer, settings: Settings, tmp_path: Path
) -> None:
    assert json.loads(invoke(app, b"1")[2]) == [2.0]
    first_module = app.endpoints.loaded["ep"].batcher.model.module.__name__  # type: ignore[union-attr]
    assert first_module in sys.modules
    register_endpoint(
        settings, "ep", model_tar(tmp_path, "10"), capture_s3_uri=None, variant="Blue"
    )
    app.endpoints.loaded["ep"].checked -= RECHECK_SECONDS  # as if a second went by
    status, headers, body = invoke(app, b"1")
    assert (status, json.loads(body), headers["x-amzn-invoked-production-variant"]) == (
        200,
        [10.0],
        "Blue",
    )
    assert first_module not in sys.modules  # the old model's code is released
    unregister_endpoint(settings, "ep")
    app.endpoints.loaded["ep"].checked -= RECHECK_SECONDS
    assert invoke(app, b"1")[0] == 400


def test_a_model_that_fails_to_load_answers_model_error(settings: Settings, tmp_path: Path) -> None:
    register_endpoint(
        settings,
        "broken",
        model_tar(tmp_path, "2", code="raise ImportError('no numpy here')\n"),
        capture_s3_uri=None,
    )
    app = es.EndpointServer(settings, None)
    status, headers, body = invoke(app, b"1", name="broken")
    error = json.loads(body)
    assert (status, headers["x-amzn-errortype"], error["OriginalStatusCode"]) == (
        424,
        "ModelError",
        500,
    )
    assert "no numpy here" in error["OriginalMessage"]


def test_ping_and_container_invocations(
    app: es.EndpointServer, settings: Settings, tmp_path: Path
) -> None:
    assert asyncio.run(call(app, "GET", "/ping"))[0] == 200
    status, _, body = asyncio.run(
        call(app, "POST", "/invocations", b"5", {"content-type": "text/plain"})
    )
    assert (status, json.loads(body)) == (200, [10.0])
    status, _, body = asyncio.run(
        call(app, "POST", "/invocations", b"x", {"content-type": "text/plain"})
    )
    assert status == 400 and b"InvalidImageError" in body
    register_endpoint(settings, "second", model_tar(tmp_path, "3"), capture_s3_uri=None)
    status, _, body = asyncio.run(
        call(app, "POST", "/invocations", b"5", {"content-type": "text/plain"})
    )
    assert status == 400 and b"exactly one" in body


def test_sampling_percentage(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_endpoint(
        settings,
        "half",
        model_tar(tmp_path, "2"),
        capture_s3_uri="s3://bkt/x",
        sampling_percentage=50,
    )
    app = es.EndpointServer(settings, Writer())  # type: ignore[arg-type]
    draws = iter([0.10, 0.90, 0.49, 0.51])
    monkeypatch.setattr(es.random, "random", lambda: next(draws))
    for _ in range(4):
        assert invoke(app, b"1", name="half")[0] == 200
    assert len(app.writer.events) == 2  # type: ignore[union-attr]


def test_create_app_reads_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCONES_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SCONES_CAPTURE_FLUSH_SECONDS", "0.5")
    app = es.create_app()
    assert app.settings.home == (tmp_path / "h").resolve()
    assert app.writer is not None and app.writer.flush_interval == 0.5
    assert os.environ["SCONES_HOME"] == str(tmp_path / "h")


def test_container_contract_errors_are_plain_text(
    app: es.EndpointServer, settings: Settings, tmp_path: Path
) -> None:
    big = b"1" * (MAX_BODY_BYTES + 1)
    status, headers, body = asyncio.run(
        call(app, "POST", "/invocations", big, {"content-type": "text/plain"}, chunk=65536)
    )
    assert (status, headers["content-type"]) == (413, "text/plain")
    assert body == f"request body over {MAX_BODY_BYTES} bytes".encode()
    status, headers, body = asyncio.run(
        call(app, "POST", "/invocations", b"-1", {"content-type": "text/plain"})
    )
    assert (status, headers["content-type"]) == (500, "text/plain")
    assert body == b"RuntimeError: cannot predict a negative number"
    status, headers, _ = asyncio.run(call(app, "GET", "/invocations"))
    assert (status, headers["x-amzn-errortype"]) == (404, "UnknownOperationException")


def test_a_model_error_may_carry_its_own_status() -> None:
    class Toolkit(Exception):  # like sagemaker_inference's BaseInferenceToolkitError
        status_code = 422

    class NotAStatus(ValueError):
        status_code = "teapot"

    assert status_of(Toolkit()) == 422
    assert status_of(NotAStatus()) == 400  # falls back to the class names
    assert status_of(KeyError("x")) == 500


def test_a_client_that_leaves_mid_body_runs_nothing_and_captures_nothing(
    app: es.EndpointServer,
) -> None:
    path, headers = "/endpoints/ep/invocations", {"content-type": "text/plain"}
    status, response_headers, _ = asyncio.run(call(app, "POST", path, b"2", headers, leave=True))
    assert (status, response_headers["x-amzn-errortype"]) == (400, "ClientDisconnected")
    assert app.writer.events == []  # type: ignore[union-attr]
    assert invoke(app, b"21")[0] == 200  # the next whole request is served
