"""SerializeImageFunction's S3 side at its limits: both sides of the object size limit, every S3
error code it names or passes on, S3 not answering, the S3 client's settings, and the handler's
log fields and the object named in its errors (what ``make mutation`` found untested;
docs/testing.md). In-process fake S3 clients: no network.
"""

from __future__ import annotations

import base64
import logging
from types import ModuleType
from typing import Any

import pytest
from limits_helpers import png, png_header

from scones.twin.lambda_runtime import LambdaContext


class Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.asked, self.closed = data, -1, False

    def read(self, amount: int) -> bytes:
        self.asked = amount
        return self.data[:amount]

    def close(self) -> None:
        self.closed = True


class FakeS3:
    """``get_object`` answers from ``objects`` (key -> bytes or an exception); calls recorded."""

    def __init__(self, objects: dict[str, Any], length: int | None = None) -> None:
        self.objects, self.length, self.calls = objects, length, []  # type: ignore[var-annotated]
        self.bodies: list[Body] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        self.calls.append((Bucket, Key))
        found = self.objects.get(Key)
        if isinstance(found, Exception):
            raise found
        if found is None:
            raise client_error("NoSuchKey")
        self.bodies.append(Body(found))
        size = len(found) if self.length is None else self.length
        return {"ContentLength": size, "Body": self.bodies[-1]}


def client_error(code: str, status: int = 400) -> Exception:
    from botocore.exceptions import ClientError

    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the object size


@pytest.mark.parametrize(("size", "refused"), [(99, False), (100, False), (101, True)])
def test_the_object_limit_on_both_sides(serialize: ModuleType, size: int, refused: bool) -> None:
    s3 = FakeS3({"k": b"x" * size})
    if refused:
        with pytest.raises(serialize.ImageTooLargeError) as caught:
            serialize.read_object(s3, "bkt", "k", 100)
        assert str(caught.value) == (
            f"s3://bkt/k is {size} bytes, over the limit of 100 (MAX_IMAGE_BYTES)"
        )
        assert s3.bodies[0].asked == -1  # refused from ContentLength: nothing downloaded
    else:
        assert serialize.read_object(s3, "bkt", "k", 100) == (b"x" * size, "k")
        assert s3.bodies[0].asked == 101  # one byte more than the limit, to see a longer body
    assert s3.bodies[0].closed


@pytest.mark.parametrize(("length", "size"), [(0, 101), (100, 101), (10, 150)])
def test_a_body_longer_than_announced_is_refused(
    serialize: ModuleType, length: int, size: int
) -> None:
    s3 = FakeS3({"k": b"x" * size}, length=length)
    with pytest.raises(serialize.ImageTooLargeError) as caught:
        serialize.read_object(s3, "bkt", "k", 100)
    assert str(caught.value) == "s3://bkt/k is 101 bytes, over the limit of 100 (MAX_IMAGE_BYTES)"
    assert s3.bodies[0].closed


def test_a_missing_content_length_still_reads_the_object(serialize: ModuleType) -> None:
    class NoLength(FakeS3):
        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
            answer = super().get_object(Bucket, Key)
            del answer["ContentLength"]
            return answer

    assert serialize.read_object(NoLength({"k": b"abc"}), "b", "k", 10) == (b"abc", "k")


# ------------------------------------------------------------------------------ keys and codes


def test_the_key_is_tried_as_sent_then_url_decoded(serialize: ModuleType) -> None:
    s3 = FakeS3({"incoming/my photo.png": b"data"})
    assert serialize.read_object(s3, "b", "incoming/my+photo.png", 10) == (
        b"data",
        "incoming/my photo.png",
    )
    assert s3.calls == [("b", "incoming/my+photo.png"), ("b", "incoming/my photo.png")]


def test_a_key_without_escapes_is_tried_once(serialize: ModuleType) -> None:
    s3 = FakeS3({})
    with pytest.raises(serialize.ImageNotFoundError) as caught:
        serialize.read_object(s3, "b", "incoming/a.png", 10)
    assert str(caught.value) == "s3://b/incoming/a.png does not exist (NoSuchKey)"
    assert s3.calls == [("b", "incoming/a.png")]


def test_the_missing_key_named_is_the_decoded_one(serialize: ModuleType) -> None:
    with pytest.raises(serialize.ImageNotFoundError) as caught:
        serialize.read_object(FakeS3({}), "b", "a+b.png", 10)
    assert str(caught.value) == "s3://b/a b.png does not exist (NoSuchKey)"


@pytest.mark.parametrize("code", ["NoSuchKey", "NoSuchBucket", "404", "NotFound"])
def test_every_missing_code(serialize: ModuleType, code: str) -> None:
    with pytest.raises(serialize.ImageNotFoundError) as caught:
        serialize.read_object(FakeS3({"k": client_error(code)}), "b", "k", 10)
    assert str(caught.value) == f"s3://b/k does not exist ({code})"


@pytest.mark.parametrize("code", ["AccessDenied", "403", "Forbidden", "AllAccessDisabled"])
def test_every_denied_code(serialize: ModuleType, code: str) -> None:
    s3 = FakeS3({"a b": b"never read", "a+b": client_error(code)})
    with pytest.raises(serialize.ImageAccessDeniedError) as caught:
        serialize.read_object(s3, "b", "a+b", 10)
    assert str(caught.value) == (
        f"access to s3://b/a+b denied ({code}): the function may read only the image "
        "bucket's incoming prefix"
    )
    assert s3.calls == [("b", "a+b")]  # denied: the decoded key is not tried


@pytest.mark.parametrize(
    "code",
    ["InvalidBucketName", "InvalidRequest", "InvalidArgument", "KeyTooLongError", "InvalidURI"],
)
def test_every_bad_location_code(serialize: ModuleType, code: str) -> None:
    with pytest.raises(serialize.InvalidEventError) as caught:
        serialize.read_object(FakeS3({"k": client_error(code)}), "b", "k", 10)
    assert str(caught.value) == f"S3 refused s3://b/k as a location ({code})"


@pytest.mark.parametrize(("code", "status"), [("PreconditionFailed", 412), ("", 400), ("499", 499)])
def test_other_client_errors_go_on_as_they_are(
    serialize: ModuleType, code: str, status: int
) -> None:
    from botocore.exceptions import ClientError

    error = client_error(code, status)
    with pytest.raises(ClientError) as caught:
        serialize.read_object(FakeS3({"k": error}), "b", "k", 10)
    assert caught.value is error


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("ServiceUnavailable", 503),
        ("InternalError", 500),
        ("RequestTimeout", 400),
        ("500", 500),
        ("502", 502),
        ("503", 503),
        ("504", 504),
        ("", 500),  # any 5xx, whatever its code
        ("Whatever", 501),
    ],
)
def test_s3_answers_that_mean_try_again(serialize: ModuleType, code: str, status: int) -> None:
    with pytest.raises(serialize.S3UnavailableError) as caught:
        serialize.read_object(FakeS3({"k": client_error(code, status)}), "b", "k", 10)
    assert str(caught.value) == f"S3 answered {code or status} for s3://b/k"


def test_the_common_layer_lists_the_transient_s3_codes(serialize: ModuleType) -> None:
    import scones_common

    assert {
        "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
        "500", "502", "503", "504",
    } == scones_common.S3_TRANSIENT_CODES  # fmt: skip


def test_a_body_cut_short_names_the_location(serialize: ModuleType) -> None:
    from botocore.exceptions import IncompleteReadError

    class CutBody(Body):
        def read(self, amount: int) -> bytes:
            raise IncompleteReadError(actual_bytes=3, expected_bytes=10)

    class S3(FakeS3):
        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
            self.bodies.append(CutBody(b""))
            return {"ContentLength": 10, "Body": self.bodies[-1]}

    s3 = S3({})
    with pytest.raises(serialize.S3UnavailableError) as caught:
        serialize.read_object(s3, "b", "k" * 300, 100)
    assert str(caught.value).startswith(f"S3 did not answer for s3://b/{'k' * 200}: ")
    assert s3.bodies[0].closed


def test_a_connection_failure_is_s3_unavailable(serialize: ModuleType) -> None:
    from botocore.exceptions import EndpointConnectionError, HTTPClientError

    for error in (EndpointConnectionError(endpoint_url="https://s3"), HTTPClientError(error="x")):
        with pytest.raises(serialize.S3UnavailableError) as caught:
            serialize.read_object(FakeS3({"k": error}), "b", "k", 10)
        assert str(caught.value) == f"S3 did not answer for s3://b/k: {error}"


def test_a_client_error_without_an_error_part_goes_on_as_it_is(serialize: ModuleType) -> None:
    from botocore.exceptions import ClientError

    error = ClientError({}, "GetObject")  # type: ignore[typeddict-item]
    with pytest.raises(ClientError) as caught:
        serialize.read_object(FakeS3({"k": error}), "b", "k", 10)
    assert caught.value is error


def test_a_long_refused_location_is_cut_in_the_message(serialize: ModuleType) -> None:
    key = "k" * 300
    with pytest.raises(serialize.InvalidEventError) as caught:
        serialize.read_object(FakeS3({key: client_error("KeyTooLongError")}), "b", key, 10)
    assert str(caught.value) == f"S3 refused s3://b/{'k' * 200} as a location (KeyTooLongError)"


def test_the_size_named_for_a_tiny_limit(serialize: ModuleType) -> None:
    with pytest.raises(serialize.ImageTooLargeError) as caught:
        serialize.read_object(FakeS3({"k": b"xy"}), "b", "k", 1)
    assert str(caught.value) == "s3://b/k is 2 bytes, over the limit of 1 (MAX_IMAGE_BYTES)"


# ------------------------------------------------------------------------------ client and logs


def test_the_s3_client_uses_the_standard_settings(serialize: ModuleType, aws_env: None) -> None:
    client = serialize.s3_client()
    assert client.meta.service_model.service_name == "s3"
    assert client.meta.region_name == "us-east-1"  # from AWS_REGION, as Lambda sets it
    assert serialize.s3_client() is client and serialize._clients == {"s3": client}


def test_the_handler_logs_its_fields_and_names_the_object_in_errors(
    serialize: ModuleType,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    image = png((20, 10))
    s3 = FakeS3({"incoming/a b.png": image, "incoming/bad.png": b"not an image"})
    monkeypatch.setattr(serialize, "s3_client", lambda: s3)
    event = {"s3_bucket": "bkt", "s3_key": "incoming/a+b.png", "other": 1}
    with caplog.at_level(logging.INFO):
        result = serialize.lambda_handler(event, lambda_context)
    keys = {"reduced": False, "original_format": "PNG", "original_width": 20}
    keys |= {"original_height": 10, "original_bytes": len(image)}
    assert result == {
        "s3_bucket": "bkt",
        "s3_key": "incoming/a b.png",  # the key read
        "other": 1,
        "image_data": base64.b64encode(image).decode("ascii"),
        "inferences": [],
        **keys,
    }
    (record,) = [r for r in caplog.records if r.getMessage() == "serialized image"]
    assert record.levelno == logging.INFO
    fields = {k: getattr(record, k, "missing") for k in ("s3_bucket", "s3_key", *keys)}
    assert fields == {"s3_bucket": "bkt", "s3_key": "incoming/a b.png", **keys}
    assert not hasattr(record, "image_data")
    with pytest.raises(serialize.NotAnImageError) as caught:
        serialize.lambda_handler({"s3_bucket": "bkt", "s3_key": "incoming/bad.png"}, None)
    assert str(caught.value).startswith("s3://bkt/incoming/bad.png: the object is not a PNG")
    too_large = png_header(8192, 6145)
    s3.objects["incoming/big.png"] = too_large
    with pytest.raises(serialize.ImageTooLargeError) as caught:
        serialize.lambda_handler({"s3_bucket": "bkt", "s3_key": "incoming/big.png"}, None)
    assert (
        str(caught.value) == "s3://bkt/incoming/big.png: image is 8192x6145 = 50.3 MP, over 50.3 MP"
    )
