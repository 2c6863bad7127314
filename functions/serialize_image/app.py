"""SerializeImageFunction: read an uploaded image from S3 and hand it on as base64.

Input event: ``{"s3_bucket": str, "s3_key": str, ...}``.
Output: the event with ``image_data`` (the object's bytes, unchanged, base64) and an empty
``inferences`` list. Other keys of the event pass through unchanged.

The object must really be an image: its magic bytes must name a format we know (PNG, JPEG,
GIF, BMP, WebP) and its structure must hold together. Pillow is not in the Lambda, so the check
is done with the standard library: for PNG every chunk's CRC is verified and the image data is
inflated with ``zlib`` and must have exactly the size the header promises; for the other formats
the header, the dimensions and the container structure are checked.

The errors it shares with the other functions come from the ``CommonLayer``
(``functions/common/scones_common.py``); otherwise only the standard library and boto3 are used.
"""

from __future__ import annotations

import base64
import logging
import os
import struct
import threading
import zlib
from typing import Any, NamedTuple

from scones_common import ConfigurationError, InvalidEventError, event_object, text_field

logger = logging.getLogger(__name__)

#: Step Functions refuses state payloads above 256 KiB (262,144 bytes).
STATE_PAYLOAD_LIMIT = 256 * 1024
#: Room kept for the other keys of the state (bucket, key up to 1 KiB, inferences, error info).
PAYLOAD_HEADROOM = 8 * 1024
#: The largest object whose base64 form still fits in a state payload with the headroom above.
HARD_MAX_IMAGE_BYTES = (STATE_PAYLOAD_LIMIT - PAYLOAD_HEADROOM) // 4 * 3
#: Default limit (env ``MAX_IMAGE_BYTES``): 150,000 bytes -> 200,000 base64 characters.
DEFAULT_MAX_IMAGE_BYTES = 150_000
#: Largest width/height we accept from a header (guards the PNG inflate size).
MAX_DIMENSION = 16_384


class ImageNotFoundError(LookupError):
    """The bucket or the key does not exist."""


class ImageAccessDeniedError(PermissionError):
    """The function may not read the object (it may read only the incoming prefix)."""


class NotAnImageError(ValueError):
    """The object is not an image in a format we accept, or it is damaged."""


class ImageTooLargeError(ValueError):
    """The object is larger than the state payload allows."""


class ImageInfo(NamedTuple):
    """What the structural check found out about an image."""

    format: str
    mime_type: str
    width: int
    height: int


# --------------------------------------------------------------------------------------------
# settings (read at call time, so one process can host several functions)


def max_image_bytes(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    """Return the size limit from ``MAX_IMAGE_BYTES`` (default 150,000 bytes).

    Raises ``ConfigurationError`` when the value is not a positive integer or would let the
    base64 form outgrow the 256 KiB Step Functions payload.
    """
    env = os.environ if environ is None else environ
    raw = env.get("MAX_IMAGE_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"MAX_IMAGE_BYTES={raw!r} is not an integer") from None
    if not 0 < value <= HARD_MAX_IMAGE_BYTES:
        raise ConfigurationError(
            f"MAX_IMAGE_BYTES={value} must be between 1 and {HARD_MAX_IMAGE_BYTES} "
            "(base64 grows by 4/3 and a Step Functions state holds at most 256 KiB)"
        )
    return value


# --------------------------------------------------------------------------------------------
# event


def parse_event(event: Any) -> tuple[str, str]:
    """Return ``(bucket, key)`` from the event or raise ``InvalidEventError``."""
    event = event_object(event, "s3_bucket", "s3_key")
    bucket = text_field(event["s3_bucket"], "s3_bucket")
    key = text_field(event["s3_key"], "s3_key")
    if key.endswith("/"):
        raise InvalidEventError(f"s3_key {key!r} names a folder, not an object")
    return bucket, key


# --------------------------------------------------------------------------------------------
# image checks (standard library only)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> (samples per pixel, allowed bit depths)
_PNG_COLOUR_TYPES = {
    0: (1, (1, 2, 4, 8, 16)),
    2: (3, (8, 16)),
    3: (1, (1, 2, 4, 8)),
    4: (2, (8, 16)),
    6: (4, (8, 16)),
}
# Adam7 passes: (x start, y start, x step, y step)
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _check_dimensions(fmt: str, width: int, height: int) -> None:
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise NotAnImageError(
            f"{fmt} header gives an implausible size {width}x{height} "
            f"(allowed 1..{MAX_DIMENSION} per side)"
        )


def _png_row_bytes(width: int, samples: int, depth: int) -> int:
    return 1 + (width * samples * depth + 7) // 8  # one filter byte per row


def _png_expected_size(width: int, height: int, samples: int, depth: int, interlaced: bool) -> int:
    if not interlaced:
        return height * _png_row_bytes(width, samples, depth)
    total = 0
    for x0, y0, dx, dy in _ADAM7:
        pass_w = (width - x0 + dx - 1) // dx if width > x0 else 0
        pass_h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if pass_w and pass_h:
            total += pass_h * _png_row_bytes(pass_w, samples, depth)
    return total


def _inspect_png(data: bytes) -> ImageInfo:
    pos = len(_PNG_SIGNATURE)
    header: tuple[int, int, int, int, int] | None = None
    idat = bytearray()
    seen_plte = False
    while True:
        if pos + 12 > len(data):
            raise NotAnImageError("PNG is truncated (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise NotAnImageError(f"PNG is truncated inside the {ctype!r} chunk")
        body = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(ctype + body) != crc:
            raise NotAnImageError(f"PNG chunk {ctype.decode('latin-1')!r} fails its CRC check")
        if header is None and ctype != b"IHDR":
            raise NotAnImageError("PNG does not start with an IHDR chunk")
        if ctype == b"IHDR":
            if header is not None or length != 13:
                raise NotAnImageError("PNG has a malformed IHDR chunk")
            width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            _check_dimensions("PNG", width, height)
            if colour not in _PNG_COLOUR_TYPES or depth not in _PNG_COLOUR_TYPES[colour][1]:
                raise NotAnImageError(f"PNG has bit depth {depth} with colour type {colour}")
            if comp != 0 or filt != 0 or interlace not in (0, 1):
                raise NotAnImageError("PNG uses an unknown compression, filter or interlace method")
            header = (width, height, depth, colour, interlace)
        elif ctype == b"PLTE":
            seen_plte = True
        elif ctype == b"IDAT":
            idat += body
        elif ctype == b"IEND":
            break
        pos = end + 4
    assert header is not None
    width, height, depth, colour, interlace = header
    if colour == 3 and not seen_plte:
        raise NotAnImageError("PNG with a palette has no PLTE chunk")
    if not idat:
        raise NotAnImageError("PNG has no image data (IDAT)")
    expected = _png_expected_size(
        width, height, _PNG_COLOUR_TYPES[colour][0], depth, interlace == 1
    )
    size = _inflated_size(bytes(idat), expected + 1)
    if size != expected:
        raise NotAnImageError(
            f"PNG image data holds {size}{'+' if size > expected else ''} bytes, "
            f"the header promises {expected}"
        )
    return ImageInfo("PNG", "image/png", width, height)


def _inflated_size(stream: bytes, limit: int) -> int:
    """Inflate a zlib stream in 1 MiB steps, counting (not keeping) the bytes, up to ``limit``.

    Memory stays small whatever the header claims; an incomplete stream is ``NotAnImageError``.
    """
    inflater = zlib.decompressobj()
    total, pending = 0, stream
    try:
        while pending and total < limit:
            total += len(inflater.decompress(pending, min(1 << 20, limit - total)))
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error as exc:
        raise NotAnImageError(f"PNG image data does not inflate: {exc}") from None
    if total < limit and not inflater.eof:
        raise NotAnImageError("PNG image data is truncated (the zlib stream does not end)")
    return total


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _inspect_jpeg(data: bytes) -> ImageInfo:
    pos = 2
    size: tuple[int, int] | None = None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise NotAnImageError(f"JPEG has a broken marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            raise NotAnImageError("JPEG is truncated inside a header segment")
        if marker in _JPEG_SOF:
            if length < 8:
                raise NotAnImageError("JPEG has a malformed frame header")
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            _check_dimensions("JPEG", width, height)
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if size is None:
                raise NotAnImageError("JPEG has image data before a frame header")
            if data.rfind(b"\xff\xd9", pos + 2 + length) < 0:
                raise NotAnImageError("JPEG is truncated (no end-of-image marker)")
            return ImageInfo("JPEG", "image/jpeg", *size)
        pos += 2 + length
    raise NotAnImageError("JPEG is truncated before its image data")


def _inspect_gif(data: bytes) -> ImageInfo:
    if len(data) < 14:
        raise NotAnImageError("GIF is truncated")
    width, height = struct.unpack("<HH", data[6:10])
    _check_dimensions("GIF", width, height)
    if b"\x2c" not in data[13:] or data.rstrip(b"\x00")[-1:] != b"\x3b":
        raise NotAnImageError("GIF is truncated (no image descriptor or trailer)")
    return ImageInfo("GIF", "image/gif", width, height)


def _inspect_bmp(data: bytes) -> ImageInfo:
    if len(data) < 26:
        raise NotAnImageError("BMP is truncated")
    offset, dib = struct.unpack("<II", data[10:18])
    if dib == 12:
        width, height = struct.unpack("<HH", data[18:22])
    elif dib in (40, 52, 56, 64, 108, 124) and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
    else:
        raise NotAnImageError(f"BMP has an unknown header size {dib}")
    _check_dimensions("BMP", width, abs(height))
    if not 14 + dib <= offset < len(data):
        raise NotAnImageError("BMP pixel data offset points outside the file")
    (declared,) = struct.unpack("<I", data[2:6])
    if declared > len(data):
        raise NotAnImageError(f"BMP is truncated ({len(data)} of {declared} bytes)")
    if dib >= 40:
        (bits,) = struct.unpack("<H", data[28:30])
        (compression,) = struct.unpack("<I", data[30:34])
        if compression in (0, 3) and bits in (1, 4, 8, 16, 24, 32):
            stride = (width * bits + 31) // 32 * 4
            if offset + stride * abs(height) > len(data):
                raise NotAnImageError("BMP is truncated (pixel rows missing)")
    return ImageInfo("BMP", "image/bmp", width, abs(height))


def _inspect_webp(data: bytes) -> ImageInfo:
    if len(data) < 30:
        raise NotAnImageError("WebP is truncated")
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 > len(data):
        raise NotAnImageError("WebP is truncated (RIFF size exceeds the file)")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise NotAnImageError("WebP VP8 frame has no start code")
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise NotAnImageError("WebP VP8L stream has a bad signature")
        (bits,) = struct.unpack("<I", data[21:25])
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
    else:
        raise NotAnImageError(f"WebP has an unknown first chunk {chunk!r}")
    _check_dimensions("WebP", width, height)
    return ImageInfo("WebP", "image/webp", width, height)


def inspect_image(data: bytes) -> ImageInfo:
    """Identify ``data`` by its magic bytes and check its structure.

    Returns the format, MIME type and dimensions; raises ``NotAnImageError`` otherwise.
    """
    if not data:
        raise NotAnImageError("the object is empty")
    if data.startswith(_PNG_SIGNATURE):
        return _inspect_png(data)
    if data.startswith(b"\xff\xd8\xff"):
        return _inspect_jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _inspect_gif(data)
    if data.startswith(b"BM"):
        return _inspect_bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _inspect_webp(data)
    raise NotAnImageError(
        f"the object is not a PNG, JPEG, GIF, BMP or WebP image (first bytes {data[:8].hex(' ')})"
    )


# --------------------------------------------------------------------------------------------
# S3


def read_object(s3: Any, bucket: str, key: str, limit: int) -> tuple[bytes, str]:
    """Return the bytes of ``s3://bucket/key`` and the key they were read from.

    When the key is not found and looks URL-encoded (S3 event notifications encode keys, a
    space as ``+``), the decoded key is tried as well, and returned when it exists. Objects
    larger than ``limit`` are refused. Raises ``ImageNotFoundError`` for a
    missing bucket or key, ``ImageAccessDeniedError`` when S3 refuses access, and
    ``ImageTooLargeError`` before downloading an object that is too large.
    """
    from urllib.parse import unquote_plus

    try:
        response = _get_object(s3, bucket, key)
    except ImageNotFoundError:
        decoded = unquote_plus(key)
        if decoded == key:
            raise
        response = _get_object(s3, bucket, decoded)
        key = decoded
    size = int(response.get("ContentLength", 0))
    body = response["Body"]
    try:
        if size > limit:
            raise ImageTooLargeError(_too_large(bucket, key, size, limit))
        data: bytes = body.read(limit + 1)
    finally:
        body.close()
    if len(data) > limit:
        raise ImageTooLargeError(_too_large(bucket, key, len(data), limit))
    return data, key


def _get_object(s3: Any, bucket: str, key: str) -> Any:
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
            raise ImageNotFoundError(f"s3://{bucket}/{key} does not exist ({code})") from None
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            raise ImageAccessDeniedError(
                f"access to s3://{bucket}/{key} denied ({code}): the function may read only "
                "the image bucket's incoming prefix"
            ) from None
        raise


def _too_large(bucket: str, key: str, size: int, limit: int) -> str:
    return (
        f"s3://{bucket}/{key} is {size} bytes, over the limit of {limit} "
        "(MAX_IMAGE_BYTES; base64 in a 256 KiB Step Functions state)"
    )


def serialize_image(s3: Any, bucket: str, key: str, limit: int) -> tuple[str, str, ImageInfo, int]:
    """Read and check the image; return ``(key read, base64 text, image info, size in bytes)``."""
    data, key = read_object(s3, bucket, key, limit)
    try:
        info = inspect_image(data)
    except NotAnImageError as exc:
        raise NotAnImageError(f"s3://{bucket}/{key}: {exc}") from None
    return key, base64.b64encode(data).decode("ascii"), info, len(data)


# --------------------------------------------------------------------------------------------
# handler

_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def s3_client() -> Any:
    """The module's S3 client, created on first use from the standard boto3 settings."""
    with _client_lock:
        if "s3" not in _clients:
            import boto3

            _clients["s3"] = boto3.session.Session().client("s3")
        return _clients["s3"]


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: ``{"s3_bucket", "s3_key"}`` -> the event plus ``image_data``."""
    bucket, key = parse_event(event)
    limit = max_image_bytes()
    key, image_data, info, size = serialize_image(s3_client(), bucket, key, limit)
    logger.info(
        "serialized image",
        extra={
            "s3_bucket": bucket,
            "s3_key": key,
            "format": info.format,
            "width": info.width,
            "height": info.height,
            "bytes": size,
        },
    )
    return {**event, "s3_bucket": bucket, "s3_key": key, "image_data": image_data, "inferences": []}
