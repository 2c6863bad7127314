"""SerializeImageFunction at its limits: both sides of the 25 MiB object, 50 MP decode, 16 MP
endpoint and 186 KiB inline bounds, MAX_IMAGE_BYTES, the key and bucket checks, every S3 error
code it names, the S3 client's settings, the messages a user reads and the log fields
operations count on (what ``make mutation`` found untested; docs/testing.md). Fake S3 clients
and small images made here: no network, nothing slow.
"""

from __future__ import annotations

import base64
import io
import logging
import struct
import zlib
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from scones.twin.lambda_runtime import LambdaContext

MIB = 1024 * 1024


def png(size: tuple[int, int], mode: str = "RGB", **save: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 90).save(buffer, "PNG", **save)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` RGB whose pixel data stops after a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)


def padded(data: bytes, total: int) -> bytes:
    """``data`` (a PNG) with a tEXt chunk before IEND that makes it exactly ``total`` bytes."""
    head, iend = data[:-12], data[-12:]
    body = b"pad\x00" + b"x" * (total - len(data) - 12 - 4)
    chunk = b"tEXt" + body
    out = head + struct.pack(">I", len(body)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + iend
    assert len(out) == total
    return out


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


# ------------------------------------------------------------------------------ MAX_IMAGE_BYTES


@pytest.mark.parametrize(
    ("raw", "limit"),
    [("", 25 * MIB), ("  ", 25 * MIB), ("1", 1), (" 2048 ", 2048), (str(25 * MIB), 25 * MIB)],
)
def test_max_image_bytes_accepted(serialize: ModuleType, raw: str, limit: int) -> None:
    assert serialize.max_image_bytes({"MAX_IMAGE_BYTES": raw}) == limit


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            "0",
            f"MAX_IMAGE_BYTES=0 must be between 1 and {25 * MIB} (the function's memory is sized for 25 MiB objects)",
        ),
        (
            str(25 * MIB + 1),
            f"MAX_IMAGE_BYTES={25 * MIB + 1} must be between 1 and {25 * MIB} (the function's memory is sized for 25 MiB objects)",
        ),
        ("1.5", "MAX_IMAGE_BYTES='1.5' is not an integer"),
    ],
)
def test_max_image_bytes_refused(serialize: ModuleType, raw: str, message: str) -> None:
    with pytest.raises(serialize.ConfigurationError) as caught:
        serialize.max_image_bytes({"MAX_IMAGE_BYTES": raw})
    assert str(caught.value) == message


def test_a_given_environment_wins_over_the_process_one(
    serialize: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_IMAGE_BYTES", "100")
    assert serialize.max_image_bytes() == 100
    assert serialize.max_image_bytes({}) == 25 * MIB


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


# ------------------------------------------------------------------------------ the event


@pytest.mark.parametrize(
    ("bucket", "ok"),
    [("b", True), ("a" * 255, True), ("a" * 256, False), ("A.b-c_9", True), ("b/c", False)],
)
def test_bucket_names(serialize: ModuleType, bucket: str, ok: bool) -> None:
    event = {"s3_bucket": bucket, "s3_key": "incoming/a.png"}
    if ok:
        assert serialize.parse_event(event) == (bucket, "incoming/a.png")
    else:
        with pytest.raises(serialize.InvalidEventError) as caught:
            serialize.parse_event(event)
        assert str(caught.value) == (
            f"s3_bucket {bucket[:80]!r} is not a bucket name (letters, digits, '.', '-', '_')"
        )


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("k" * 1024, True),  # at S3's 1,024 bytes
        ("k" * 1025, False),
        ("é" * 512, True),  # 1,024 bytes of UTF-8
        ("é" * 512 + "k", False),
    ],
)
def test_key_length_in_bytes(serialize: ModuleType, key: str, ok: bool) -> None:
    event = {"s3_bucket": "b", "s3_key": key}
    if ok:
        assert serialize.parse_event(event) == ("b", key)
    else:
        with pytest.raises(serialize.InvalidEventError) as caught:
            serialize.parse_event(event)
        assert str(caught.value) == "s3_key is longer than S3's 1024 bytes"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("incoming/", "s3_key 'incoming/' names a folder, not an object"),
        ("a/./b.png", "s3_key 'a/./b.png' has a '.' or '..' path segment"),
        ("../b.png", "s3_key '../b.png' has a '.' or '..' path segment"),
        ("a/..", "s3_key 'a/..' has a '.' or '..' path segment"),
    ],
)
def test_key_messages(serialize: ModuleType, key: str, message: str) -> None:
    with pytest.raises(serialize.InvalidEventError) as caught:
        serialize.parse_event({"s3_bucket": "b", "s3_key": key})
    assert str(caught.value) == message


def test_a_long_key_with_a_dot_segment_is_cut_in_the_message(serialize: ModuleType) -> None:
    key = "d" * 300 + "/./a.png"
    with pytest.raises(serialize.InvalidEventError) as caught:
        serialize.parse_event({"s3_bucket": "b", "s3_key": key})
    assert str(caught.value) == f"s3_key {('d' * 200)!r} has a '.' or '..' path segment"


def test_dots_inside_names_and_a_long_folder_message(serialize: ModuleType) -> None:
    assert (
        serialize.parse_event({"s3_bucket": "b", "s3_key": "a/.b/c..d/..e"})[1] == "a/.b/c..d/..e"
    )
    with pytest.raises(serialize.InvalidEventError) as caught:
        serialize.parse_event({"s3_bucket": "b", "s3_key": "f" * 300 + "/"})
    assert str(caught.value) == f"s3_key {('f' * 200)!r} names a folder, not an object"


# ------------------------------------------------------------------------------ pixels and bytes


@pytest.mark.parametrize(("width", "height"), [(8192, 6144), (6144, 8192), (1, 8192 * 6144)])
def test_at_50_mp_the_header_is_accepted(serialize: ModuleType, width: int, height: int) -> None:
    """At the pixel limit the header passes (and the missing pixel data is what fails)."""
    with pytest.raises(serialize.NotAnImageError, match="^the image is damaged or truncated: "):
        serialize.serialize(png_header(width, height))


@pytest.mark.parametrize(("width", "height"), [(8192, 6145), (8193, 6144)])
def test_one_row_over_50_mp_is_too_large(serialize: ModuleType, width: int, height: int) -> None:
    with pytest.raises(serialize.ImageTooLargeError) as caught:
        serialize.serialize(png_header(width, height))
    mp = width * height / 1e6
    assert str(caught.value) == f"image is {width}x{height} = {mp:.1f} MP, over 50.3 MP"


@pytest.mark.parametrize(("extra", "reduced"), [(-1, False), (0, False), (1, True)])
def test_the_inline_limit_on_both_sides(serialize: ModuleType, extra: int, reduced: bool) -> None:
    data = padded(png((32, 32)), serialize.INLINE_MAX_BYTES + extra)
    sent, keys = serialize.serialize(data)
    assert keys["reduced"] is reduced and keys["original_bytes"] == len(data)
    assert (sent == data) is not reduced
    if reduced:
        assert Image.open(io.BytesIO(sent)).size == (32, 32)


def test_the_reduced_copy_is_made_at_zlib_level_1(serialize: ModuleType) -> None:
    """The fastest zlib level (4 ms instead of 18): FLEVEL 0 in the IDAT stream's header."""
    sent, keys = serialize.serialize(padded(png((300, 200)), serialize.INLINE_MAX_BYTES + 1))
    assert keys["reduced"] is True
    start = sent.index(b"IDAT") + 4
    assert sent[start] & 0x0F == 8 and (sent[start + 1] >> 6) == 0  # deflate, fastest
    with Image.open(io.BytesIO(sent)) as small:
        assert small.size == (240, 160)


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


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_the_upright_size_for_every_exif_orientation(
    serialize: ModuleType, orientation: int
) -> None:
    """Orientations 5-8 turn the picture a quarter: width and height swap; 9 is not one."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.new("RGB", (48, 16), (10, 200, 30)).save(buffer, "PNG", exif=exif)
    sent, keys = serialize.serialize(buffer.getvalue())
    turned = orientation in (5, 6, 7, 8)
    upright = (16, 48) if turned else (48, 16)
    assert (keys["original_width"], keys["original_height"]) == upright
    assert keys["reduced"] is (orientation in range(2, 9))  # turned or mirrored: a new PNG
    with Image.open(io.BytesIO(sent)) as out:
        assert out.size == upright


def test_the_megapixels_in_the_message_are_rounded_from_the_pixel_count(
    serialize: ModuleType,
) -> None:
    with pytest.raises(serialize.ImageTooLargeError) as caught:
        serialize.serialize(png_header(1, 50_350_020))  # 50.35002 MP: rounds up
    assert str(caught.value) == "image is 1x50350020 = 50.4 MP, over 50.3 MP"


# the slowest last: mutmut stops at the first failing test


@pytest.mark.parametrize(("size", "reduced"), [((4096, 4096), False), ((4097, 4096), True)])
def test_the_endpoints_pixel_limit_on_both_sides(
    serialize: ModuleType, size: tuple[int, int], reduced: bool
) -> None:
    data = png(size, "L", compress_level=9)
    sent, keys = serialize.serialize(data)
    assert keys == {
        "reduced": reduced,
        "original_format": "PNG",
        "original_width": size[0],
        "original_height": size[1],
        "original_bytes": len(data),
    }
    if reduced:
        with Image.open(io.BytesIO(sent)) as small:
            assert (small.size, small.mode) == ((240, 240), "RGB")  # REDUCED_SIDE, aspect kept
    else:
        assert sent == data


def test_truncated_images_allowed_elsewhere_in_the_process_is_named(
    serialize: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(serialize.ConfigurationError) as caught:
        serialize.serialize(png((8, 8)))
    assert str(caught.value) == (
        "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on here: truncated images would decode"
    )
