"""SerializeImageFunction against moto's S3: every path, bad inputs included.

Phone-size photos, HEIC, bombs and the reduced copy: ``test_serialize_photos.py``.
"""

from __future__ import annotations

import base64
import logging
import struct
import zlib
from types import ModuleType
from typing import Any

import boto3
import pytest
from sam_helpers import ASCII_GIF, image_bytes, read_event

from scones.twin.lambda_runtime import LambdaContext

BUCKET = "scones-images-test"
#: The keys SerializeImage adds besides image_data and inferences.
OUTPUT_KEYS = {"reduced", "original_format", "original_width", "original_height", "original_bytes"}
#: What it says of the 32 x 32 sample PNG in events/.
PNG_32 = {"reduced": False, "original_format": "PNG", "original_width": 32, "original_height": 32}


@pytest.fixture
def s3(moto: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def put(s3: Any, key: str, body: bytes) -> dict[str, str]:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return {"s3_bucket": BUCKET, "s3_key": key}


# ------------------------------------------------------------------------------ happy paths


@pytest.mark.parametrize(
    ("fmt", "save", "expected"),
    [
        ("PNG", {}, "PNG"),
        ("PNG", {"interlace": 1}, "PNG"),
        ("JPEG", {"quality": 80}, "JPEG"),
        ("JPEG", {"progressive": True}, "JPEG"),
        ("GIF", {}, "GIF"),
        ("BMP", {}, "BMP"),
        ("WEBP", {}, "WebP"),
        ("WEBP", {"lossless": True}, "WebP"),
    ],
)
def test_small_images_go_on_unchanged_as_base64(
    lambda_context: LambdaContext,
    serialize: ModuleType,
    s3: Any,
    fmt: str,
    save: dict[str, Any],
    expected: str,
) -> None:
    data = image_bytes(fmt, (33, 17), **save)
    event = put(s3, f"incoming/picture.{fmt.lower()}", data)

    result = serialize.lambda_handler(event, lambda_context)

    assert set(result) == {"s3_bucket", "s3_key", "image_data", "inferences", *OUTPUT_KEYS}
    assert result["s3_bucket"] == BUCKET and result["s3_key"] == event["s3_key"]
    assert base64.b64decode(result["image_data"]) == data
    assert result["inferences"] == []
    assert result["reduced"] is False
    assert (result["original_format"], result["original_width"], result["original_height"]) == (
        expected,
        33,
        17,
    )
    assert result["original_bytes"] == len(data)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "1", "RGBA", "I;16"])
def test_png_colour_types_and_depths_decode_and_go_on_unchanged(
    serialize: ModuleType, mode: str
) -> None:
    import io

    from PIL import Image

    image = Image.new("RGB", (21, 9), (10, 200, 30)).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        image = image.convert("I;16")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    data, keys = serialize.serialize(buffer.getvalue())
    assert data == buffer.getvalue() and keys["original_format"] == "PNG" and not keys["reduced"]


def test_passes_other_event_keys_through(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any, png: bytes
) -> None:
    event = {**put(s3, "incoming/a.png", png), "endpoint_name": "ep", "threshold": 0.9}
    result = serialize.lambda_handler(event, lambda_context)
    assert result["endpoint_name"] == "ep" and result["threshold"] == 0.9


def test_the_sample_events_are_what_it_reads_and_makes(
    lambda_context: LambdaContext, serialize: ModuleType, moto: None
) -> None:
    """events/serialize_image.json in, events/classify_image.json (its image) out."""
    event = read_event("serialize_image.json")
    sample = read_event("classify_image.json")
    png = base64.b64decode(sample["image_data"])
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=event["s3_bucket"])
    client.put_object(Bucket=event["s3_bucket"], Key=event["s3_key"], Body=png)
    settings = {"endpoint_name": sample["endpoint_name"], "threshold": sample["threshold"]}
    result = serialize.lambda_handler({**event, **settings}, lambda_context)
    assert result == sample


def test_the_sample_image_in_the_events_is_a_valid_png(serialize: ModuleType) -> None:
    data = base64.b64decode(read_event("classify_image.json")["image_data"])
    assert serialize.serialize(data) == (data, {**PNG_32, "original_bytes": len(data)})


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        # S3 event notifications form-encode keys; for EventBridge events AWS does not say, so
        # the key as sent is read first, and its decoded form when that does not exist
        ("incoming/my bike.png", "incoming/my+bike.png"),
        ("incoming/vélo 100%+.png", "incoming/v%C3%A9lo+100%25%2B.png"),
        ("incoming/vélo 100%+.png", "incoming/vélo 100%+.png"),
        ('incoming/c++ & "quotes" \\.png', 'incoming/c++ & "quotes" \\.png'),
    ],
)
def test_keys_are_read_as_sent_or_url_decoded(
    lambda_context: LambdaContext,
    serialize: ModuleType,
    s3: Any,
    png: bytes,
    stored: str,
    sent: str,
) -> None:
    put(s3, stored, png)
    result = serialize.lambda_handler({"s3_bucket": BUCKET, "s3_key": sent}, lambda_context)
    assert base64.b64decode(result["image_data"]) == png
    assert result["s3_key"] == stored  # the key that exists


def test_a_key_that_exists_as_sent_is_not_decoded(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any, png: bytes
) -> None:
    put(s3, "incoming/a+b.png", png)
    put(s3, "incoming/a b.png", b"not this one")
    result = serialize.lambda_handler(
        {"s3_bucket": BUCKET, "s3_key": "incoming/a+b.png"}, lambda_context
    )
    assert (result["s3_key"], base64.b64decode(result["image_data"])) == ("incoming/a+b.png", png)


def test_logs_carry_no_image_data(
    lambda_context: LambdaContext,
    serialize: ModuleType,
    s3: Any,
    png: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result = serialize.lambda_handler(put(s3, "incoming/a.png", png), lambda_context)
    assert caplog.records, "the handler logs what it did"
    for record in caplog.records:
        assert result["image_data"] not in str(record.__dict__)


def test_the_s3_client_is_created_once(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any, png: bytes
) -> None:
    event = put(s3, "incoming/a.png", png)
    serialize.lambda_handler(event, lambda_context)
    first = serialize.s3_client()
    serialize.lambda_handler(event, lambda_context)
    assert serialize.s3_client() is first


# ------------------------------------------------------------------------------ bad events


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "must be a JSON object"),
        ([], "must be a JSON object"),
        ({}, "missing s3_bucket, s3_key"),
        ({"s3_bucket": BUCKET}, "missing s3_key"),
        ({"s3_bucket": "", "s3_key": "incoming/a.png"}, "s3_bucket must be a non-empty string"),
        ({"s3_bucket": BUCKET, "s3_key": 7}, "s3_key must be a non-empty string"),
        ({"s3_bucket": BUCKET, "s3_key": "incoming/"}, "names a folder"),
        ({"s3_bucket": BUCKET, "s3_key": "incoming/some-folder/"}, "names a folder"),
    ],
)
def test_bad_events_raise_invalid_event_error(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any, event: Any, message: str
) -> None:
    with pytest.raises(serialize.InvalidEventError, match=message):
        serialize.lambda_handler(event, lambda_context)


def test_missing_key_raises_image_not_found(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any
) -> None:
    with pytest.raises(serialize.ImageNotFoundError, match="does not exist"):
        serialize.lambda_handler(
            {"s3_bucket": BUCKET, "s3_key": "incoming/nope.png"}, lambda_context
        )


def test_missing_bucket_raises_image_not_found(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any
) -> None:
    with pytest.raises(serialize.ImageNotFoundError, match="NoSuchBucket"):
        serialize.lambda_handler(
            {"s3_bucket": "no-such-bucket-here", "s3_key": "a.png"}, lambda_context
        )


def test_access_denied_raises_image_access_denied(serialize: ModuleType, aws_env: None) -> None:
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        with pytest.raises(serialize.ImageAccessDeniedError, match="incoming prefix"):
            serialize.read_object(client, BUCKET, "private/a.png", 1000)


def test_other_s3_errors_are_not_swallowed(serialize: ModuleType, aws_env: None) -> None:
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", "InvalidObjectState", "archived", 403)
        with pytest.raises(ClientError, match="InvalidObjectState"):
            serialize.read_object(client, BUCKET, "incoming/a.png", 1000)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("ServiceUnavailable", 503),
        ("InternalError", 500),
        ("BadGateway", 502),
    ],
)
def test_s3_5xx_answers_are_s3_unavailable(
    serialize: ModuleType, aws_env: None, code: str, status: int
) -> None:
    """Transient S3 answers become the named error the state machine retries."""
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", code, "try again", status)
        with pytest.raises(serialize.S3UnavailableError, match=code):
            serialize.read_object(client, BUCKET, "incoming/a.png", 1000)


def test_s3_not_listening_is_s3_unavailable(serialize: ModuleType, aws_env: None) -> None:
    """A refused connection (S3 restarting) is ``S3UnavailableError``, not the raw
    ``EndpointConnectionError`` that failed a quarter of a batch for good (issue 14)."""
    import socket

    from botocore.config import Config

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(serialize.S3UnavailableError, match="S3 did not answer"):
        serialize.read_object(client, BUCKET, "incoming/a.png", 1000)


def test_a_body_cut_short_is_s3_unavailable(serialize: ModuleType) -> None:
    from botocore.exceptions import ResponseStreamingError

    class Body:
        def read(self, _n: int) -> bytes:
            raise ResponseStreamingError(error="Connection broken: IncompleteRead")

        def close(self) -> None:
            pass

    class Client:
        def get_object(self, **_kwargs: Any) -> dict[str, Any]:
            return {"ContentLength": 10, "Body": Body()}

    with pytest.raises(serialize.S3UnavailableError, match="IncompleteRead"):
        serialize.read_object(Client(), BUCKET, "incoming/a.png", 1000)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"s3_bucket": "Bad_Bucket!!", "s3_key": "incoming/a.png"}, "not a bucket name"),
        ({"s3_bucket": "b" * 256, "s3_key": "incoming/a.png"}, "not a bucket name"),
        ({"s3_bucket": "bucket/sub", "s3_key": "incoming/a.png"}, "not a bucket name"),
        ({"s3_bucket": BUCKET, "s3_key": "incoming/../private/a.png"}, "'..' path segment"),
        ({"s3_bucket": BUCKET, "s3_key": "../a.png"}, "'..' path segment"),
        ({"s3_bucket": BUCKET, "s3_key": "incoming/./a.png"}, "'..' path segment"),
        ({"s3_bucket": BUCKET, "s3_key": "k" * 1025}, "longer than S3's 1024 bytes"),
    ],
)
def test_bad_locations_are_invalid_events_before_any_call(
    serialize: ModuleType, event: dict[str, Any], message: str
) -> None:
    """Not botocore's ParamValidationError or S3's raw InvalidRequest (issue 14)."""
    with pytest.raises(serialize.InvalidEventError, match=message):
        serialize.parse_event(event)


def test_keys_with_dots_inside_names_are_fine(serialize: ModuleType) -> None:
    for key in ("incoming/a..b.png", "incoming/.hidden.png", "incoming/x../y.png"):
        assert serialize.parse_event({"s3_bucket": BUCKET, "s3_key": key}) == (BUCKET, key)


@pytest.mark.parametrize("code", ["InvalidRequest", "InvalidBucketName", "InvalidArgument"])
def test_s3_refusing_the_location_is_an_invalid_event(
    serialize: ModuleType, aws_env: None, code: str
) -> None:
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", code, "Invalid Request", 400)
        with pytest.raises(serialize.InvalidEventError, match=code):
            serialize.read_object(client, BUCKET, "incoming/a.png", 1000)


# ------------------------------------------------------------------------------ not an image


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, raw: bytes, *, ihdr: bytes | None = None) -> bytes:
    header = ihdr or struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _bad_crc(png: bytes) -> bytes:
    data = bytearray(png)
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _flip_idat_byte(png: bytes) -> bytes:
    data = bytearray(png)
    index = png.index(b"IDAT") + 10
    data[index] ^= 0xFF
    return bytes(data)


# Pillow decides; the message says which kind of failure. "header": Pillow cannot open it.
NOT_A_FORMAT = "not a PNG, JPEG, WebP, GIF, BMP, TIFF or HEIC image"
HEADER = "header is damaged or truncated"
PIXELS = "image is damaged or truncated"
NOT_IMAGES = {
    "empty object": (b"", "none, it is empty"),
    "text file": (b"hello, this is not a picture\n", NOT_A_FORMAT),
    "PDF": (b"%PDF-1.7\n1 0 obj\n", NOT_A_FORMAT),
    "PNG signature only": (b"\x89PNG\r\n\x1a\n", HEADER),
    "PNG cut in half": (None, PIXELS),
    "PNG with a bad CRC": (None, HEADER),
    "PNG with corrupt pixel data": (None, "checksum"),
    "PNG with too few pixels": (_png(4, 4, b"\x00" * 10), PIXELS),
    "PNG with a truncated zlib stream": (None, PIXELS),
    "PNG 0x0": (_png(0, 0, b""), HEADER),
    "PNG 100000 pixels wide": (_png(100_000, 1, b""), PIXELS),
    "PNG bad bit depth": (
        _png(1, 1, b"\x00\x00\x00\x00", ihdr=struct.pack(">IIBBBBB", 1, 1, 3, 2, 0, 0, 0)),
        HEADER,
    ),
    "JPEG cut short": (None, PIXELS),
    "JPEG magic only": (b"\xff\xd8\xff", HEADER),
    "GIF header only": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00", HEADER),
    "BMP cut short": (None, PIXELS),
    "WebP cut short": (None, HEADER),
    "ICO (Pillow reads it, not accepted)": (None, NOT_A_FORMAT),
    "AVIF (Pillow reads it, not accepted)": (None, NOT_A_FORMAT),
}


def _derived(name: str) -> bytes:
    png = image_bytes("PNG")
    if name == "PNG cut in half":
        return png[: len(png) // 2]
    if name == "PNG with a bad CRC":
        return _bad_crc(png)
    if name == "PNG with corrupt pixel data":
        return _flip_idat_byte(png)
    if name == "PNG with a truncated zlib stream":
        raw = zlib.compress(bytes(range(256)) * 8)[:-6]
        return (
            b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", raw)
            + _png_chunk(b"IEND", b"")
        )
    if name == "JPEG cut short":
        jpeg = image_bytes("JPEG")
        return jpeg[: len(jpeg) - 10]
    if name == "BMP cut short":
        bmp = image_bytes("BMP")
        return bmp[:-1]
    if name == "WebP cut short":
        webp = image_bytes("WEBP")
        return webp[: len(webp) // 2]
    if name.startswith(("ICO", "AVIF")):
        return image_bytes(name.split()[0])
    raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(NOT_IMAGES))
def test_objects_that_are_not_valid_images_raise_not_an_image(
    lambda_context: LambdaContext, serialize: ModuleType, s3: Any, name: str
) -> None:
    data, message = NOT_IMAGES[name]
    body = _derived(name) if data is None else data
    event = put(s3, "incoming/suspect.png", body)
    with pytest.raises(serialize.NotAnImageError, match=message) as caught:
        serialize.lambda_handler(event, lambda_context)
    assert "s3://scones-images-test/incoming/suspect.png" in str(caught.value)


def test_a_png_that_pillow_rejects_is_rejected_too(serialize: ModuleType) -> None:
    import io

    from PIL import Image

    broken = _flip_idat_byte(image_bytes("PNG"))
    with pytest.raises(Exception):  # noqa: B017 - Pillow raises several kinds
        Image.open(io.BytesIO(broken)).load()
    with pytest.raises(serialize.NotAnImageError):
        serialize.serialize(broken)


@pytest.mark.parametrize("name", ["PNG with data after its pixels", "GIF without trailer"])
def test_what_pillow_and_the_endpoint_decode_is_accepted(serialize: ModuleType, name: str) -> None:
    """The hand-written checks refused these; Pillow (also in the endpoint) decodes them."""
    data = {
        "PNG with data after its pixels": _png(1, 1, b"\x00" * 40),
        "GIF without trailer": ASCII_GIF[:-1],
    }[name]
    assert serialize.serialize(data)[0] == data


# ------------------------------------------------------------------------------ size limits


def test_objects_up_to_25_mib_and_state_payload_arithmetic(serialize: ModuleType) -> None:
    assert serialize.max_image_bytes({}) == serialize.HARD_MAX_IMAGE_BYTES == 25 * 1024 * 1024
    assert serialize.INLINE_MAX_BYTES == 190_464  # the old MaxImageBytes ceiling
    assert serialize.INLINE_MAX_BYTES * 4 / 3 <= 256 * 1024 - 8 * 1024
    side = serialize.REDUCED_SIDE  # a reduced PNG: RGB rows plus one filter byte each
    assert side * (3 * side + 1) + 1024 < serialize.INLINE_MAX_BYTES


def test_too_large_is_refused_before_download(
    lambda_context: LambdaContext,
    serialize: ModuleType,
    s3: Any,
    png: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(len(png) - 1))
    event = put(s3, "incoming/a.png", png)
    with pytest.raises(serialize.ImageTooLargeError, match=f"is {len(png)} bytes, over the limit"):
        serialize.lambda_handler(event, lambda_context)


def test_an_image_at_the_limit_is_accepted(
    lambda_context: LambdaContext,
    serialize: ModuleType,
    s3: Any,
    png: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(len(png)))
    assert serialize.lambda_handler(put(s3, "incoming/a.png", png), lambda_context)["image_data"]


def test_a_body_longer_than_its_content_length_is_still_refused(serialize: ModuleType) -> None:
    class Body:
        def read(self, amount: int) -> bytes:
            return b"x" * amount

        def close(self) -> None:
            pass

    class FakeS3:
        def get_object(self, **_: Any) -> dict[str, Any]:
            return {"ContentLength": 10, "Body": Body()}

    with pytest.raises(serialize.ImageTooLargeError):
        serialize.read_object(FakeS3(), BUCKET, "incoming/a.png", 100)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "not an integer"),
        ("0", "between 1 and"),
        ("-5", "between 1 and"),
        (str(25 * 1024 * 1024 + 1), "sized for 25 MiB objects"),
    ],
)
def test_bad_max_image_bytes_raises_configuration_error(
    lambda_context: LambdaContext,
    serialize: ModuleType,
    s3: Any,
    png: bytes,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv("MAX_IMAGE_BYTES", value)
    with pytest.raises(serialize.ConfigurationError, match=message):
        serialize.lambda_handler(put(s3, "incoming/a.png", png), lambda_context)


def test_every_error_is_a_distinct_named_class(serialize: ModuleType) -> None:
    names = {
        cls.__name__
        for cls in (
            serialize.InvalidEventError,
            serialize.ImageNotFoundError,
            serialize.ImageAccessDeniedError,
            serialize.NotAnImageError,
            serialize.ImageTooLargeError,
            serialize.ConfigurationError,
        )
    }
    assert len(names) == 6


def _jpeg_head(size: tuple[int, int]) -> bytes:
    """A JPEG up to and including its scan header (SOS): what precedes the pixel data."""
    data = image_bytes("JPEG", size, quality=90)
    sos = data.index(b"\xff\xda")
    return data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")]


@pytest.mark.parametrize("size", [(32, 32), (640, 480), (4000, 3000)])
def test_a_jpeg_header_followed_by_random_bytes_is_not_an_image(
    serialize: ModuleType, size: tuple[int, int]
) -> None:
    """libjpeg decodes such data with warnings only (Pillow drops them): before the marker
    check about one in ten of these decoded to noise and was classified (issue 14)."""
    import random

    rng = random.Random(14)
    head = _jpeg_head(size)
    for length in (10, 300, 3000, 30000):
        for _ in range(10):
            body = head + rng.randbytes(length)
            with pytest.raises(serialize.NotAnImageError, match="damaged or truncated"):
                serialize.serialize(body)


def test_jpeg_structure_check_accepts_real_jpegs_and_trailers(serialize: ModuleType) -> None:
    for save in ({}, {"progressive": True}, {"quality": 50, "optimize": True}):
        data = image_bytes("JPEG", (48, 40), **save)
        assert serialize.jpeg_damage(data) is None
        assert serialize.jpeg_damage(data + b"SEFT trailer after EOI") is None
        assert "truncated" in serialize.jpeg_damage(data[:-2])
        assert serialize.serialize(data)[1]["original_format"] == "JPEG"
    with pytest.raises(serialize.NotAnImageError, match="end-of-image"):
        serialize.serialize(image_bytes("JPEG", (48, 40))[:-2])


def test_truncated_images_are_never_loaded_as_they_are(
    serialize: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some other code in the process turned Pillow's LOAD_TRUNCATED_IMAGES on: refuse."""
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(serialize.ConfigurationError, match="LOAD_TRUNCATED_IMAGES"):
        serialize.serialize(image_bytes("PNG"))


def test_a_decompression_bomb_is_refused_from_its_header(serialize: ModuleType) -> None:
    """100 KB of IDAT that would inflate to 805 MB (16384 x 16384 RGB): never inflated.

    The process's peak memory for a 60 MP bomb is measured in test_serialize_photos.py."""
    import tracemalloc

    stream = zlib.compress(b"\x00" * (100 * 1024 * 1024), 9)
    assert len(stream) < serialize.INLINE_MAX_BYTES
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16384, 16384, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )
    tracemalloc.start()
    try:
        with pytest.raises(serialize.ImageTooLargeError, match="268435456 pixels.*limit 50.3 MP"):
            serialize.serialize(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
