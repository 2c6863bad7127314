"""The local SageMaker Runtime, through a real boto3 ``sagemaker-runtime`` client, with the real
tiny model, and Data Capture into the twin's SeaweedFS."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from scones.endpoint.registry import register_endpoint, unregister_endpoint
from scones.settings import Settings
from scones.twin import services

KEY_PATTERN = re.compile(
    r"^(?P<prefix>.+)/(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<h>\d{2})/"
    r"(?P<mm>\d{2})-(?P<ss>\d{2})-(?P<ms>\d{3})-"
    r"(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.jsonl$"
)


def png(color: tuple[int, int, int] = (200, 30, 30), size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def runtime(twin_settings: Settings) -> Any:
    return boto3.client("sagemaker-runtime")


@pytest.fixture(scope="module")
def s3(twin_settings: Settings) -> Any:
    return boto3.client("s3")


@pytest.fixture(scope="module")
def endpoint(twin_settings: Settings, tiny_model_tar: Path, twin_bucket: str) -> str:
    name = f"ep-{uuid.uuid4().hex[:8]}"
    register_endpoint(
        twin_settings,
        name,
        tiny_model_tar,
        capture_s3_uri=f"s3://{twin_bucket}/data_capture",
    )
    return name


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, dict[str, Any]]:
    response: dict[str, Any] = exc.value.response  # type: ignore[assignment]
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response


def _capture_objects(
    s3: Any, bucket: str, prefix: str, want: int, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Records under ``prefix`` once at least ``want`` arrived (each with its key)."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = []
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        for obj in listing.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
            assert body.endswith("\n")
            for line in body.splitlines():
                records.append({"key": obj["Key"], "record": json.loads(line)})
        if len(records) >= want:
            return records
        time.sleep(0.3)
    return records


def test_invoke_returns_probabilities(runtime: Any, endpoint: str) -> None:
    response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=png())
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    probabilities = json.loads(response["Body"].read())
    assert len(probabilities) == 2
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= p <= 1.0 for p in probabilities)


@pytest.mark.parametrize("content_type", ["image/png", "application/x-image"])
def test_accepted_content_types(runtime: Any, endpoint: str, content_type: str) -> None:
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType=content_type, Body=png(), Accept="application/json"
    )
    assert len(json.loads(response["Body"].read())) == 2


def test_jpeg_is_accepted(runtime: Any, endpoint: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 10)).save(buf, "JPEG")
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="image/jpeg", Body=buf.getvalue()
    )
    assert len(json.loads(response["Body"].read())) == 2


def test_different_images_give_different_answers(runtime: Any, endpoint: str) -> None:
    a = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="image/png", Body=png((220, 40, 40))
    )
    b = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="image/png", Body=png((40, 40, 220))
    )
    assert json.loads(a["Body"].read()) != json.loads(b["Body"].read())


def test_bad_bytes_are_a_model_error(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/png", Body=b"not an image"
        )
    code, status, response = _error(exc)
    assert (code, status) == ("ModelError", 424)
    assert response["OriginalStatusCode"] == 400
    assert "InvalidImageError" in response["OriginalMessage"]
    assert "Received client error (400)" in response["Error"]["Message"]
    # boto3 exposes it as the modeled exception class too
    with pytest.raises(runtime.exceptions.ModelError):
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/png", Body=b"\x89PNG broken"
        )


def test_unsupported_content_type_is_a_model_error(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=b"1,2,3")
    code, status, response = _error(exc)
    assert (code, status, response["OriginalStatusCode"]) == ("ModelError", 424, 415)
    assert "UnsupportedContentTypeError" in response["OriginalMessage"]


def test_unsupported_accept_is_a_model_error(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/png", Body=png(), Accept="text/csv"
        )
    code, _, response = _error(exc)
    assert code == "ModelError"
    assert "UnsupportedAcceptError" in response["OriginalMessage"]


def test_unknown_endpoint_is_a_validation_error(runtime: Any, twin_settings: Settings) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(
            EndpointName="no-such-endpoint", ContentType="image/png", Body=png()
        )
    code, status, response = _error(exc)
    assert (code, status) == ("ValidationError", 400)
    assert (
        response["Error"]["Message"]
        == "Endpoint no-such-endpoint of account 123456789012 not found."
    )


def test_unknown_variant_is_a_validation_error(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/png", Body=png(), TargetVariant="Other"
        )
    assert _error(exc)[:2] == ("ValidationError", 400)


def test_body_over_6_mb_is_refused(runtime: Any, endpoint: str) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/png", Body=b"\0" * (6 * 1024 * 1024 + 1)
        )
    code, status, response = _error(exc)
    assert (code, status) == ("413", 413)  # as AWS answers: no error type, a text body
    assert response["Error"]["Message"] == "HTTP content length exceeded 6291456 bytes."
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    # the connection and server are fine afterwards
    runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=png())


def test_model_error_log_stream_names_the_twin_region(
    runtime: Any, endpoint: str, twin_settings: Settings
) -> None:
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=b"junk")
    assert _error(exc)[2]["LogStreamArn"] == (
        f"arn:aws:logs:{twin_settings.region}:123456789012:log-group:"
        f"/aws/sagemaker/Endpoints/{endpoint}"
    )


def _wait_for_object(s3: Any, uri: str, timeout: float = 15.0) -> bytes | None:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        except ClientError:
            time.sleep(0.2)
    return None


def test_invoke_endpoint_async_reads_s3_and_writes_s3(
    runtime: Any, s3: Any, endpoint: str, twin_bucket: str
) -> None:
    """InvokeEndpointAsync: 202 at once, the answer where OutputLocation says, the same
    probabilities as InvokeEndpoint; a bad input's error where FailureLocation says."""
    image = png((10, 220, 90))
    s3.put_object(Bucket=twin_bucket, Key="async-in/good.png", Body=image)
    s3.put_object(Bucket=twin_bucket, Key="async-in/bad.png", Body=b"not an image")
    answer = runtime.invoke_endpoint_async(
        EndpointName=endpoint,
        ContentType="image/png",
        InputLocation=f"s3://{twin_bucket}/async-in/good.png",
        InferenceId="async-good",
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert answer["InferenceId"] == "async-good"
    assert answer["OutputLocation"] == f"s3://{twin_bucket}/async-output/{endpoint}/async-good.out"
    output = _wait_for_object(s3, answer["OutputLocation"])
    assert output is not None, "no async output after 15 s"
    sync = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/png", Body=image)
    assert json.loads(output) == pytest.approx(json.loads(sync["Body"].read()))
    deadline = time.monotonic() + 15  # captured as an InvokeEndpoint call is
    captured: list[dict[str, Any]] = []
    while not captured and time.monotonic() < deadline:
        records = _capture_objects(s3, twin_bucket, f"data_capture/{endpoint}/", 10**6, 0.1)
        captured = [
            r["record"]
            for r in records
            if r["record"]["eventMetadata"].get("inferenceId") == "async-good"
        ]
    assert captured, "the async invocation was not captured"
    assert captured[0]["captureData"]["endpointInput"]["data"] == base64.b64encode(image).decode()
    bad = runtime.invoke_endpoint_async(
        EndpointName=endpoint,
        ContentType="image/png",
        InputLocation=f"s3://{twin_bucket}/async-in/bad.png",
    )
    error = _wait_for_object(s3, bad["FailureLocation"])
    assert error is not None and b"InvalidImageError" in error
    assert _wait_for_object(s3, bad["OutputLocation"], timeout=0.5) is None


def test_large_image_within_limit_is_served(runtime: Any, endpoint: str) -> None:
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType="image/png", Body=png(size=512)
    )
    assert len(json.loads(response["Body"].read())) == 2


def test_container_contract_ping(twin_settings: Settings) -> None:
    with urllib.request.urlopen(twin_settings.endpoint_url + "/ping", timeout=5) as response:
        assert response.status == 200


def _post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    """POST signed with the twin's keys (the server verifies SigV4 on everything but /ping)."""
    from scones.twin.sigv4 import sign_headers

    settings = Settings.from_env()
    headers = sign_headers(settings, "POST", url, body=body, headers={"Content-Type": content_type})
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_container_contract_invocations(
    twin_settings: Settings, tiny_model_tar: Path, tmp_path: Path
) -> None:
    """POST /invocations answers as the single model a server holds (SageMaker's container
    contract), with the container's own status codes; a second server in its own home."""
    from dataclasses import replace

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = replace(
        twin_settings, home=tmp_path / "home", endpoint_port=port, endpoint_workers=1
    )
    service = next(s for s in services.SERVICES if s.name == "endpoint")
    url = settings.endpoint_url + "/invocations"
    services.start_service(settings, service)
    try:
        assert _post(url, png(), "image/png")[0] == 400  # no endpoint registered yet
        register_endpoint(settings, "solo", tiny_model_tar, capture_s3_uri=None)
        status, body = _post(url, png(), "image/png")
        assert status == 200
        assert len(json.loads(body)) == 2
        status, body = _post(url, b"junk", "image/png")
        assert status == 400
        assert b"InvalidImageError" in body
        assert _post(url, png(), "text/plain")[0] == 415
        with urllib.request.urlopen(settings.endpoint_url + "/ping", timeout=5) as response:
            assert response.status == 200
    finally:
        services.stop_service(settings, service)


@pytest.fixture(scope="module")
def captured(
    runtime: Any, s3: Any, twin_settings: Settings, tiny_model_tar: Path, twin_bucket: str
) -> dict[str, Any]:
    """Five invocations of a fresh endpoint with Data Capture, and the capture files they left."""
    endpoint = f"ep-capture-{uuid.uuid4().hex[:6]}"
    register_endpoint(
        twin_settings, endpoint, tiny_model_tar, capture_s3_uri=f"s3://{twin_bucket}/data_capture"
    )
    bodies = [png((i * 40, 100, 255 - i * 40)) for i in range(5)]
    inference_ids = [f"req-{i}" for i in range(5)]
    answers = []
    for body, inference_id in zip(bodies, inference_ids, strict=True):
        response = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/png", Body=body, InferenceId=inference_id
        )
        answers.append(response["Body"].read().decode())
    prefix = f"data_capture/{endpoint}/AllTraffic/"
    found = _capture_objects(s3, twin_bucket, prefix, want=len(bodies))
    mine = {r["record"]["eventMetadata"].get("inferenceId"): r for r in found}
    return {
        "endpoint": endpoint,
        "bodies": bodies,
        "inference_ids": inference_ids,
        "answers": answers,
        "found": mine,
    }


def test_capture_files_have_sagemaker_layout_and_format(captured: dict[str, Any]) -> None:
    endpoint, bodies, inference_ids, answers, mine = (
        captured[k] for k in ("endpoint", "bodies", "inference_ids", "answers", "found")
    )
    assert set(inference_ids) <= set(mine)
    for body, inference_id, answer in zip(bodies, inference_ids, answers, strict=True):
        entry = mine[inference_id]
        match = KEY_PATTERN.match(entry["key"])
        assert match, entry["key"]
        assert (match["prefix"], match["endpoint"], match["variant"]) == (
            "data_capture",
            endpoint,
            "AllTraffic",
        )
        record = entry["record"]
        data_in = record["captureData"]["endpointInput"]
        data_out = record["captureData"]["endpointOutput"]
        assert data_in == {
            "observedContentType": "image/png",
            "mode": "INPUT",
            "data": base64.b64encode(body).decode(),
            "encoding": "BASE64",
        }
        assert data_out == {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": answer,
            "encoding": "JSON",
        }
        assert record["eventVersion"] == "0"
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventMetadata"]["inferenceTime"]
        )
        uuid.UUID(record["eventMetadata"]["eventId"])
        when = record["eventMetadata"]["inferenceTime"]
        assert when[:13].replace("-", "/").replace("T", "/") >= "/".join(
            match.group("y", "m", "d", "h")
        )


def test_capture_records_have_the_structure_of_real_sagemaker_records(
    captured: dict[str, Any], shared_capture: Path
) -> None:
    first = sorted(shared_capture.glob("*.jsonl"))[0]
    real = json.loads(first.read_text().splitlines()[0])
    for entry in captured["found"].values():
        record = entry["record"]
        assert list(record) == list(real)
        assert list(record["captureData"]) == list(real["captureData"])
        for side in ("endpointInput", "endpointOutput"):
            assert list(record["captureData"][side]) == list(real["captureData"][side])
        assert set(real["eventMetadata"]) <= set(record["eventMetadata"])


def test_errors_are_not_captured_and_sampling_zero_captures_nothing(
    runtime: Any, s3: Any, twin_settings: Settings, tiny_model_tar: Path, twin_bucket: str
) -> None:
    name = f"ep-nocap-{uuid.uuid4().hex[:6]}"
    register_endpoint(
        twin_settings,
        name,
        tiny_model_tar,
        capture_s3_uri=f"s3://{twin_bucket}/sampled",
        sampling_percentage=0,
    )
    for _ in range(10):
        runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
    other = f"ep-cap-{uuid.uuid4().hex[:6]}"
    register_endpoint(
        twin_settings, other, tiny_model_tar, capture_s3_uri=f"s3://{twin_bucket}/sampled"
    )
    with pytest.raises(ClientError):
        runtime.invoke_endpoint(EndpointName=other, ContentType="image/png", Body=b"junk")
    runtime.invoke_endpoint(EndpointName=other, ContentType="image/png", Body=png())
    found = _capture_objects(s3, twin_bucket, "sampled/", want=1)
    time.sleep(1.5)  # one more flush interval: nothing else may arrive
    found = _capture_objects(s3, twin_bucket, "sampled/", want=1)
    assert [r["key"].split("/")[1] for r in found] == [other]
    unregister_endpoint(twin_settings, name)
    unregister_endpoint(twin_settings, other)


def test_new_and_changed_endpoints_are_served_without_restart(
    runtime: Any, twin_settings: Settings, tiny_model_tar: Path, tmp_path: Path
) -> None:
    from scones.training.tiny import build_tiny_model

    name = f"ep-hot-{uuid.uuid4().hex[:6]}"
    register_endpoint(twin_settings, name, tiny_model_tar, capture_s3_uri=None)
    first = json.loads(
        runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())[
            "Body"
        ].read()
    )
    other_model = build_tiny_model(tmp_path, epochs=1, seed=7)
    register_endpoint(twin_settings, name, other_model, capture_s3_uri=None, variant="Blue")
    deadline = time.monotonic() + 5
    while True:
        response = runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
        second = json.loads(response["Body"].read())
        if response["InvokedProductionVariant"] == "Blue" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response["InvokedProductionVariant"] == "Blue"
    assert second != first
    unregister_endpoint(twin_settings, name)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ValidationError"
            break
        time.sleep(0.2)
    else:
        pytest.fail("an unregistered endpoint is still served after 5 s")


def test_captures_are_flushed_on_shutdown(
    runtime: Any,
    s3: Any,
    twin_settings: Settings,
    tiny_model_tar: Path,
    twin_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Restart the endpoint with a long flush interval; stopping it must still write everything."""
    service = next(s for s in services.SERVICES if s.name == "endpoint")
    services.stop_service(twin_settings, service)
    monkeypatch.setenv("SCONES_CAPTURE_FLUSH_SECONDS", "600")
    try:
        services.start_service(twin_settings, service)
        name = f"ep-flush-{uuid.uuid4().hex[:6]}"
        register_endpoint(
            twin_settings, name, tiny_model_tar, capture_s3_uri=f"s3://{twin_bucket}/flush"
        )
        for _ in range(12):
            runtime.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
        assert s3.list_objects_v2(Bucket=twin_bucket, Prefix="flush/")["KeyCount"] == 0
        services.stop_service(twin_settings, service)
        found = _capture_objects(s3, twin_bucket, "flush/", want=12, timeout=2)
        assert len(found) == 12
        unregister_endpoint(twin_settings, name)
    finally:
        monkeypatch.setenv("SCONES_CAPTURE_FLUSH_SECONDS", "1")
        services.stop_service(twin_settings, service)
        services.start_service(twin_settings, service)


def test_replacing_the_model_under_load_fails_no_request(
    twin_settings: Settings, tiny_model_tar: Path
) -> None:
    """Requests keep succeeding while the endpoint's model is replaced twice."""
    import threading

    name = f"ep-swap-{uuid.uuid4().hex[:6]}"
    register_endpoint(twin_settings, name, tiny_model_tar, capture_s3_uri=None)
    stop = threading.Event()
    outcomes: list[str] = []

    def hammer() -> None:
        client = boto3.client("sagemaker-runtime")
        while not stop.is_set():
            try:
                client.invoke_endpoint(EndpointName=name, ContentType="image/png", Body=png())
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for variant in ("Blue", "Green"):
            time.sleep(0.7)
            register_endpoint(
                twin_settings, name, tiny_model_tar, capture_s3_uri=None, variant=variant
            )
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    unregister_endpoint(twin_settings, name)
    assert outcomes and set(outcomes) == {"ok"}, {o: outcomes.count(o) for o in set(outcomes)}
