"""``InvokeEndpointAsync`` in-process: the 202 answer as botocore parses it, the background job
reading its input from S3 and writing the output (or the error) where the answer said, the
bounded queue, and the drain at shutdown. S3 is a small in-memory double; the stack tier runs the
same against the twin's SeaweedFS with boto3."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_endpoint_app import Writer, call, model_tar

from scones.endpoint import app as es
from scones.endpoint import async_invoke
from scones.endpoint.registry import endpoint_dir, register_endpoint
from scones.settings import Settings


class FakeS3:
    """``get_object`` / ``put_object`` over a dict; ``gate`` (when set) holds every read."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.gate: threading.Event | None = None

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        if self.gate is not None:
            self.gate.wait(10)
        if (Bucket, Key) not in self.objects:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}}
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]
        body = self.objects[Bucket, Key][0]

        class _Body:
            def read(self) -> bytes:
                return body

        return {"Body": _Body()}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:  # noqa: N803
        self.objects[Bucket, Key] = (Body, ContentType)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")


@pytest.fixture
def s3() -> FakeS3:
    store = FakeS3()
    store.objects["inbox", "inputs/one.txt"] = (b"21", "text/plain")
    store.objects["inbox", "inputs/bad.txt"] = (b"junk", "text/plain")
    return store


@pytest.fixture
def app(settings: Settings, tmp_path: Path, s3: FakeS3) -> es.EndpointServer:
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri="s3://capture/dc")
    return es.EndpointServer(settings, Writer(), s3_factory=lambda: s3)  # type: ignore[arg-type]


@functools.cache
def _operation() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.operation_model("InvokeEndpointAsync")


def parsed(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The answer as boto3's ``invoke_endpoint_async`` returns it (or its ``Error``)."""
    from botocore.awsrequest import HTTPHeaders
    from botocore.parsers import create_parser

    case_insensitive = HTTPHeaders()
    for name, value in headers.items():
        case_insensitive[name] = value
    response = {"status_code": status, "headers": case_insensitive, "body": body}
    answer: dict[str, Any] = create_parser("rest-json").parse(response, _operation().output_shape)
    answer["status"] = status
    return answer


def request(location: str | None = None, body: bytes = b"", **extra: str) -> dict[str, str]:
    headers = {"x-amzn-sagemaker-content-type": "text/plain", **extra}
    if location is not None:
        headers["x-amzn-sagemaker-inputlocation"] = location
    return {k.replace("_", "-"): v for k, v in headers.items()}


async def submit_and_wait(
    app: es.EndpointServer, headers: dict[str, str], body: bytes = b"", name: str = "ep"
) -> dict[str, Any]:
    path = f"/endpoints/{name}/async-invocations"
    answer = parsed(*(await call(app, "POST", path, body, headers)))
    assert await app.async_invocations.join(10)
    return answer


def run(app: es.EndpointServer, headers: dict[str, str], body: bytes = b"") -> dict[str, Any]:
    return asyncio.run(submit_and_wait(app, headers, body))


def test_output_is_written_where_the_answer_says(app: es.EndpointServer, s3: FakeS3) -> None:
    answer = run(app, request("s3://inbox/inputs/one.txt", x_amzn_sagemaker_inference_id="req-1"))
    assert answer["status"] == 202
    assert answer["InferenceId"] == "req-1"
    assert answer["OutputLocation"] == "s3://inbox/async-output/ep/req-1.out"
    assert answer["FailureLocation"] == "s3://inbox/async-output/ep/req-1-error.out"
    assert s3.objects["inbox", "async-output/ep/req-1.out"] == (b"[42.0]", "application/json")
    assert ("inbox", "async-output/ep/req-1-error.out") not in s3.objects
    events = app.writer.events  # type: ignore[union-attr]
    assert [(e.input_data, e.output_data, e.inference_id) for e in events] == [
        (b"21", b"[42.0]", "req-1")
    ]


def test_a_generated_inference_id_names_the_output(app: es.EndpointServer, s3: FakeS3) -> None:
    answer = run(app, request("s3://inbox/inputs/one.txt"))
    uuid.UUID(answer["InferenceId"])
    assert answer["OutputLocation"] == f"s3://inbox/async-output/ep/{answer['InferenceId']}.out"
    assert ("inbox", f"async-output/ep/{answer['InferenceId']}.out") in s3.objects


def test_filename_and_path_extension(app: es.EndpointServer, s3: FakeS3) -> None:
    headers = request(
        "s3://inbox/inputs/one.txt",
        x_amzn_sagemaker_inference_id="r2",
        x_amzn_sagemaker_filename="answer.json",
        x_amzn_sagemaker_s3outputpathextension="batch/7",
    )
    answer = run(app, headers)
    assert answer["OutputLocation"] == "s3://inbox/async-output/ep/batch/7/answer.json"
    assert answer["FailureLocation"] == "s3://inbox/async-output/ep/batch/7/r2-error.out"
    assert ("inbox", "async-output/ep/batch/7/answer.json") in s3.objects


def test_a_model_error_goes_to_the_failure_location(app: es.EndpointServer, s3: FakeS3) -> None:
    answer = run(app, request("s3://inbox/inputs/bad.txt", x_amzn_sagemaker_inference_id="r3"))
    assert answer["status"] == 202  # accepted: the error is found later, as on AWS
    text, content_type = s3.objects["inbox", "async-output/ep/r3-error.out"]
    assert content_type == "text/plain"
    assert b"Received client error (400)" in text and b"InvalidImageError" in text
    assert ("inbox", "async-output/ep/r3.out") not in s3.objects
    assert app.writer.events == []  # type: ignore[union-attr]  # errors are not captured


def test_a_missing_input_goes_to_the_failure_location(app: es.EndpointServer, s3: FakeS3) -> None:
    run(app, request("s3://inbox/inputs/none.txt", x_amzn_sagemaker_inference_id="r4"))
    text, _ = s3.objects["inbox", "async-output/ep/r4-error.out"]
    assert text.startswith(b"Failed to read the input s3://inbox/inputs/none.txt")
    assert b"NoSuchKey" in text


def test_inline_body_and_configured_output_paths(
    app: es.EndpointServer, s3: FakeS3, settings: Settings
) -> None:
    answer = run(app, {**request(x_amzn_sagemaker_inference_id="r5")}, b"4")
    assert answer["OutputLocation"] == "s3://capture/async-output/ep/r5.out"  # the capture bucket
    assert s3.objects["capture", "async-output/ep/r5.out"][0] == b"[8.0]"
    path = endpoint_dir(settings, "ep") / "endpoint.json"
    data = json.loads(path.read_text())
    data["async_inference"] = {
        "s3_output_path": "s3://results/ok",
        "s3_failure_path": "s3://results/bad",
    }
    path.write_text(json.dumps(data))
    answer = run(app, request("s3://inbox/inputs/bad.txt", x_amzn_sagemaker_inference_id="r6"))
    assert (answer["OutputLocation"], answer["FailureLocation"]) == (
        "s3://results/ok/r6.out",
        "s3://results/bad/r6-error.out",
    )
    assert ("results", "bad/r6-error.out") in s3.objects


@pytest.mark.parametrize(
    ("name", "headers", "body", "message"),
    [
        (
            "missing",
            request("s3://inbox/x"),
            b"",
            "Endpoint missing of account 123456789012 not found.",
        ),
        ("ep", request(), b"", "Provide InputLocation"),
        ("ep", request("s3://inbox/x"), b"1", "mutually exclusive"),
        ("ep", request("https://in/x"), b"", "is not a valid S3 URI"),
        ("ep", request("s3://inbox/"), b"", "is not a valid S3 URI"),
        ("ep", request(), b"1" * 128_001, "at most 128000"),
        ("ep", request("s3://inbox/x", x_amzn_sagemaker_filename="a/b"), b"", "must not contain"),
    ],
)
def test_bad_requests_are_validation_errors(
    app: es.EndpointServer, name: str, headers: dict[str, str], body: bytes, message: str
) -> None:
    path = f"/endpoints/{name}/async-invocations"
    answer = parsed(*asyncio.run(call(app, "POST", path, body, headers)))
    assert (answer["status"], answer["Error"]["Code"]) == (400, "ValidationError")
    assert message in answer["Error"]["Message"]


def test_an_endpoint_without_any_bucket_must_name_its_input(
    settings: Settings, tmp_path: Path, s3: FakeS3
) -> None:
    register_endpoint(settings, "bare", model_tar(tmp_path, "2"), capture_s3_uri=None)
    app = es.EndpointServer(settings, None, s3_factory=lambda: s3)
    path = "/endpoints/bare/async-invocations"
    answer = parsed(*asyncio.run(call(app, "POST", path, b"1", request())))
    assert "has no async output path" in answer["Error"]["Message"]


def test_a_full_queue_answers_service_unavailable(
    app: es.EndpointServer, s3: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(async_invoke, "MAX_QUEUED", 2)
    s3.gate = threading.Event()
    path = "/endpoints/ep/async-invocations"

    async def flood() -> list[int]:
        statuses = []
        for i in range(async_invoke.WORKERS + 3):
            headers = request("s3://inbox/inputs/one.txt", x_amzn_sagemaker_inference_id=f"q{i}")
            status, _, body = await call(app, "POST", path, b"", headers)
            statuses.append(status)
            await asyncio.sleep(0.05)  # let the worker tasks take what they can
        assert json.loads(body)["ErrorCode"] == "ServiceUnavailable"
        assert s3.gate is not None
        s3.gate.set()
        assert await app.async_invocations.join(10)
        return statuses

    statuses = asyncio.run(flood())
    assert statuses == [202] * (async_invoke.WORKERS + 2) + [503]
    written = {key for bucket, key in s3.objects if key.startswith("async-output/")}
    assert written == {f"async-output/ep/q{i}.out" for i in range(async_invoke.WORKERS + 2)}


def test_shutdown_finishes_the_queued_jobs(app: es.EndpointServer, s3: FakeS3) -> None:
    app.writer = None  # only the async queue's drain here (test_capture covers the writer's)

    async def lifecycle() -> None:
        for i in range(5):
            headers = request("s3://inbox/inputs/one.txt", x_amzn_sagemaker_inference_id=f"s{i}")
            status, _, _ = await call(app, "POST", "/endpoints/ep/async-invocations", b"", headers)
            assert status == 202
        messages = [{"type": "lifespan.shutdown"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan"}, receive, send)
        assert sent == [{"type": "lifespan.shutdown.complete"}]

    asyncio.run(lifecycle())
    assert {f"async-output/ep/s{i}.out" for i in range(5)} <= {k for _, k in s3.objects}


def test_only_post(app: es.EndpointServer) -> None:
    status, headers, _ = asyncio.run(call(app, "GET", "/endpoints/ep/async-invocations"))
    assert (status, headers["x-amzn-errortype"]) == (405, "ValidationError")
