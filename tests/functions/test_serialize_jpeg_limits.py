"""SerializeImage's JPEG structure walk and format gate, case by case: every message
``jpeg_damage`` gives, both sides of its length checks, the formats refused although Pillow
reads them, MPO, and what a user reads for empty and bomb objects (what ``make mutation`` found
untested; docs/testing.md).
"""

from __future__ import annotations

import io
import struct
import zlib
from types import ModuleType

import pytest
from PIL import Image

SOI, EOI = b"\xff\xd8", b"\xff\xd9"


@pytest.mark.parametrize(
    ("data", "damage"),
    [
        (SOI, "it ends before its end-of-image marker (truncated)"),
        (SOI + b"\x00", "byte 2 is not a JPEG marker"),
        (SOI + b"\xff\xff", "it ends before its end-of-image marker (truncated)"),  # fill only
        (SOI + b"\xff\x01", "0xFF01 at byte 2 is not a JPEG marker"),
        (SOI + b"\xff\xff\x01", "0xFF01 at byte 3 is not a JPEG marker"),  # after a fill byte
        (SOI + b"\xff\xe0\x00", "it ends inside a segment header (truncated)"),
        (SOI + b"\xff\xe0", "it ends inside a segment header (truncated)"),
        # the two length bytes are there: the segment itself is what is cut short
        (SOI + b"\xff\xe0\x00\x10", "it ends before its end-of-image marker (truncated)"),
        (SOI + b"\xff\xe0\x00\x01", "segment 0xFFE0 at byte 2 has length 1"),
        (SOI + b"\xff\xfe\x00\x00", "segment 0xFFFE at byte 2 has length 0"),
        (
            SOI + b"\xff\xda\x00\x02\x12\x34",
            "its scan data ends without an end-of-image marker (truncated)",
        ),
        (
            SOI + b"\xff\xda\x00\x09\x12",
            "its scan data ends without an end-of-image marker (truncated)",
        ),
        (SOI + b"\xff\xe1\x00\x04ab" + b"\x00" + EOI, "byte 8 is not a JPEG marker"),
    ],
)
def test_jpeg_damage_says_what_is_wrong(serialize: ModuleType, data: bytes, damage: str) -> None:
    assert serialize.jpeg_damage(data) == damage


@pytest.mark.parametrize(
    "data",
    [
        SOI + EOI,
        SOI + b"\xff\xff\xff" + EOI,  # fill bytes before a marker
        SOI + b"\xff\xe0\x00\x02" + EOI,  # the shortest segment: its length field only
        SOI + b"\xff\xe0\x00\x04ab\xff\xfe\x00\x03c" + EOI,  # APP0, COM
        SOI + b"\xff\xdb\x00\x03q\xff\xc4\x00\x03h\xff\xc0\x00\x03f" + EOI,  # DQT, DHT, SOF0
        # a scan: stuffed 0xFF00 and restart markers are data; the next real marker ends it
        SOI + b"\xff\xda\x00\x02" + b"\x12\xff\x00\x34\xff\xd0\x56\xff\xd7" + EOI,
        SOI + b"\xff\xda\x00\x02\x12" + b"\xff\xff" + EOI,  # fill bytes end a scan too
        SOI + b"\xff\xda\x00\x02\x12\xff\xda\x00\x02\x34" + EOI,  # two scans
        SOI + EOI + b"trailer after the image",
    ],
)
def test_jpeg_structures_that_are_whole(serialize: ModuleType, data: bytes) -> None:
    assert serialize.jpeg_damage(data) is None


def test_a_damaged_jpeg_is_named_by_the_handler(serialize: ModuleType) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "JPEG")
    whole = buffer.getvalue()
    assert serialize.serialize(whole)[1]["original_format"] == "JPEG"
    cut = whole[:-2] + b"\x00\x00"  # the EOI overwritten
    with pytest.raises(serialize.NotAnImageError) as caught:
        serialize.serialize(cut)
    assert str(caught.value) == (
        "the image is damaged or truncated: JPEG: its scan data ends without an end-of-image "
        "marker (truncated)"
    )


def test_an_mpo_is_a_jpeg(serialize: ModuleType) -> None:
    """A camera's MPO (a JPEG followed by more pictures) is named and sent as a JPEG."""
    first, second = Image.new("RGB", (24, 16), (0, 90, 0)), Image.new("RGB", (24, 16), 0)
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    sent, keys = serialize.serialize(data)
    assert keys["original_format"] == "JPEG" and keys["reduced"] is False and sent == data


@pytest.mark.parametrize(
    ("fmt", "mode"), [("TGA", "RGB"), ("PCX", "RGB"), ("PPM", "RGB"), ("ICO", "RGBA")]
)
def test_formats_pillow_reads_but_the_function_does_not(
    serialize: ModuleType, fmt: str, mode: str
) -> None:
    buffer = io.BytesIO()
    Image.new(mode, (16, 16)).save(buffer, fmt)
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself reads it
    with pytest.raises(serialize.NotAnImageError) as caught:
        serialize.serialize(data)
    assert str(caught.value) == (
        "the object is not a PNG, JPEG, WebP, GIF, BMP, TIFF or HEIC image, or its header is "
        f"damaged or truncated (first bytes: {data[:8].hex(' ')})"
    )


@pytest.mark.parametrize(
    ("data", "shown"),
    [(b"", "none, it is empty"), (b"GIF8", "47 49 46 38"), (b"\x00" * 20, "00 " * 7 + "00")],
)
def test_what_a_user_reads_for_unreadable_objects(
    serialize: ModuleType, data: bytes, shown: str
) -> None:
    with pytest.raises(serialize.NotAnImageError) as caught:
        serialize.serialize(data)
    assert str(caught.value).endswith(f"damaged or truncated (first bytes: {shown})")


def test_a_bomb_far_over_the_limit_says_the_limit(serialize: ModuleType) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 20_000, 10_000, 8, 2, 0, 0, 0)  # 200 MP: Pillow's own check
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00"))
    with pytest.raises(serialize.ImageTooLargeError) as caught:
        serialize.serialize(data)
    assert str(caught.value).endswith(" (limit 50.3 MP)")
    assert "200000000 pixels" in str(caught.value)


def test_alpha_is_dropped_before_the_reduction_as_the_endpoint_does(serialize: ModuleType) -> None:
    """Transparent pixels keep their colour, as in the endpoint's ``convert("RGB")``."""
    buffer = io.BytesIO()
    Image.new("RGBA", (480, 480), (250, 20, 20, 0)).save(buffer, "PNG")
    sent, keys = serialize.serialize(padded_past_inline(buffer.getvalue()))
    assert keys["reduced"] is True
    with Image.open(io.BytesIO(sent)) as small:
        assert (small.mode, small.size) == ("RGB", (240, 240))
        assert small.getpixel((120, 120)) == (250, 20, 20)


def test_a_palette_image_is_reduced_in_rgb(serialize: ModuleType) -> None:
    """A 1-pixel black and white checkerboard halves to grey, as the endpoint sees it."""
    board = Image.new("P", (480, 480))
    board.putpalette([0, 0, 0, 255, 255, 255])
    board.putdata([(x + y) % 2 for y in range(480) for x in range(480)])
    buffer = io.BytesIO()
    board.save(buffer, "PNG")
    sent, keys = serialize.serialize(padded_past_inline(buffer.getvalue()))
    assert keys["reduced"] is True
    with Image.open(io.BytesIO(sent)) as small:
        pixel = small.getpixel((120, 120))
    assert isinstance(pixel, tuple)
    red, green, blue = pixel
    assert 100 <= red <= 156 and red == green == blue


def padded_past_inline(data: bytes) -> bytes:
    """``data`` (a PNG) made one byte longer than SerializeImage sends as it is."""
    total = (256 * 1024 - 8 * 1024) // 4 * 3 + 1
    head, iend = data[:-12], data[-12:]
    body = b"pad\x00" + b"x" * (total - len(data) - 12 - 4)
    chunk = b"tEXt" + body
    out = head + struct.pack(">I", len(body)) + chunk + struct.pack(">I", zlib.crc32(chunk)) + iend
    assert len(out) == total
    return out


def test_a_small_heic_is_read_when_pillow_heif_is_there(serialize: ModuleType) -> None:
    """HEIC decodes through pillow-heif (requirements.txt), and is sent on as an RGB PNG."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, "HEIF")
    assert serialize.heif_supported() is True
    sent, keys = serialize.serialize(buffer.getvalue())
    assert keys["original_format"] == "HEIF" and keys["reduced"] is True
    with Image.open(io.BytesIO(sent)) as small:
        assert (small.format, small.size) == ("PNG", (64, 48))


def test_without_pillow_heif_only_heic_is_named_so(
    serialize: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serialize, "heif_supported", lambda: False)
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 16
    with pytest.raises(serialize.NotAnImageError) as caught:
        serialize.serialize(heic)
    assert str(caught.value) == "HEIC/HEIF images are not supported here"
    for other in (
        b"\x00\x00\x00\x18ftypavif" + b"\x00" * 16,
        b"\x00\x00\x00\x18qqqqheic" + b"\x00" * 16,
    ):
        with pytest.raises(serialize.NotAnImageError) as caught:
            serialize.serialize(other)
        assert str(caught.value).startswith("the object is not a PNG, JPEG, WebP, GIF, BMP, TIFF")
