"""SerializeImageFunction at its limits: both sides of the 50 MP decode, 16 MP endpoint and 186 KiB
inline bounds, MAX_IMAGE_BYTES, the key and bucket checks, EXIF orientations and the messages a
user reads (what ``make mutation`` found untested; docs/testing.md). Small images made here; the
S3 side is in test_serialize_s3_limits.py.
"""

from __future__ import annotations

import io
import struct
import zlib
from types import ModuleType

import pytest
from limits_helpers import png, png_header
from PIL import Image

MIB = 1024 * 1024


def padded(data: bytes, total: int) -> bytes:
    """``data`` (a PNG) with a tEXt chunk before IEND that makes it exactly ``total`` bytes."""
    head, iend = data[:-12], data[-12:]
    body = b"pad\x00" + b"x" * (total - len(data) - 12 - 4)
    chunk = b"tEXt" + body
    out = head + struct.pack(">I", len(body)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + iend
    assert len(out) == total
    return out


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


@pytest.mark.parametrize(("size", "reduced"), [((1024, 1024), False), ((1025, 1024), True)])
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
