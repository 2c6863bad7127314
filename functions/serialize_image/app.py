"""SerializeImageFunction: read an uploaded image from S3, check it, hand it on as base64.

Input ``{"s3_bucket", "s3_key", ...}``; output: the event plus ``image_data``, ``inferences: []``,
``reduced`` and ``original_format``/``_width``/``_height`` (upright)/``_bytes``. Pillow
(``requirements.txt``) decodes PNG, JPEG, WebP, GIF, BMP, TIFF and HEIC (``pillow-heif``). The
object goes on as it is when it fits a 256 KiB state and the endpoint reads it as it is; else as
an upright RGB PNG of at most ``REDUCED_SIDE`` px a side (<= 173 KB; the same 32 x 32 pixels for
the model within two levels of 255). See docs/sam.md, "SerializeImage: phone photos".
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import logging
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from scones_common import (
    S3_TRANSIENT_CODES,
    ConfigurationError,
    InvalidEventError,
    S3UnavailableError,
    event_object,
    text_field,
)

logger = logging.getLogger(__name__)

#: Largest object sent as it is: its base64 fits a 256 KiB state with 8 KiB for the other keys.
INLINE_MAX_BYTES = (256 * 1024 - 8 * 1024) // 4 * 3
#: Largest object read (env ``MAX_IMAGE_BYTES`` may lower it): MemorySize is measured for it.
HARD_MAX_IMAGE_BYTES = 25 * 1024 * 1024
#: Largest image decoded: 8192 x 6144 (50.3 MP; phones' 48/50 MP modes fit).
MAX_IMAGE_PIXELS = 8192 * 6144
#: Longest side of a reduced copy; a 240 x 240 RGB PNG is at most 173 KB (fits the state).
REDUCED_SIDE = 240
#: The endpoint refuses images above this many pixels before decoding them (ml/serving/inference.py,
#: ``SCONES_MAX_IMAGE_PIXELS``): larger ones are sent as the reduced copy.
ENDPOINT_MAX_PIXELS = 1024 * 1024
#: The Pillow openers allowed -> the format name reported.
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP"}
FORMATS |= {"TIFF": "TIFF", "HEIF": "HEIF"}
#: Formats the endpoint decodes as sent (the classify function names their content type).
PASS_THROUGH = frozenset({"PNG", "JPEG", "WebP", "GIF", "BMP"})
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
#: EXIF orientation -> the transposition that makes the image upright (as ImageOps does).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE"}
_UPRIGHT |= {6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
#: Bucket names boto3 sends (its own check; S3's rules are stricter, and S3 answers the rest).
_BUCKET_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")
#: S3 keys are at most 1,024 bytes of UTF-8.
MAX_KEY_BYTES = 1024
#: S3 error codes that mean the event names no valid location (a 400, not a missing object).
_BAD_LOCATION_CODES = frozenset(
    {"InvalidBucketName", "InvalidRequest", "InvalidArgument", "KeyTooLongError", "InvalidURI"}
)
#: In a JPEG's entropy-coded data, 0xFF is followed by 0x00 (stuffing) or a restart marker;
#: any other byte after 0xFF (fill bytes 0xFF aside) starts the next marker.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: Markers with a length that may follow the frame header: SOFn/DHT/DAC, SOS, DQT, DNL, DRI,
#: DHP, EXP, APPn, COM.
_JPEG_SEGMENTS = frozenset(range(0xC0, 0xD0)) | {0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFE}
_JPEG_SEGMENTS |= frozenset(range(0xE0, 0xF0))


class ImageNotFoundError(LookupError):
    """The bucket or the key does not exist."""


class ImageAccessDeniedError(PermissionError):
    """The function may not read the object (it may read only the incoming prefix)."""


class NotAnImageError(ValueError):
    """The object is not an image in a format we accept, or it is damaged."""


class ImageTooLargeError(ValueError):
    """The object or its pixel count is over the limits."""


def max_image_bytes(environ: dict[str, str] | os._Environ[str] | None = None) -> int:
    """The object size limit: env ``MAX_IMAGE_BYTES`` (1..25 MiB, default 25 MiB)."""
    env = os.environ if environ is None else environ
    raw = env.get("MAX_IMAGE_BYTES", "").strip()
    if not raw:
        return HARD_MAX_IMAGE_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"MAX_IMAGE_BYTES={raw!r} is not an integer") from None
    if not 0 < value <= HARD_MAX_IMAGE_BYTES:
        raise ConfigurationError(
            f"MAX_IMAGE_BYTES={value} must be between 1 and {HARD_MAX_IMAGE_BYTES} "
            "(the function's memory is sized for 25 MiB objects)"
        )
    return value


def parse_event(event: Any) -> tuple[str, str]:
    """Return ``(bucket, key)`` from the event or raise ``InvalidEventError``."""
    event = event_object(event, "s3_bucket", "s3_key")
    bucket = text_field(event["s3_bucket"], "s3_bucket")
    key = text_field(event["s3_key"], "s3_key")
    if not _BUCKET_NAME.fullmatch(bucket):
        raise InvalidEventError(
            f"s3_bucket {bucket[:80]!r} is not a bucket name (letters, digits, '.', '-', '_')"
        )
    if key.endswith("/"):
        raise InvalidEventError(f"s3_key {key[:200]!r} names a folder, not an object")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidEventError(f"s3_key is longer than S3's {MAX_KEY_BYTES} bytes")
    if {".", ".."} & set(key.split("/")):
        # S3 takes such keys as they are, but HTTP clients and S3-compatible stores may
        # resolve them to another object: the function reads only the key it was given.
        raise InvalidEventError(f"s3_key {key[:200]!r} has a '.' or '..' path segment")
    return bucket, key


@functools.cache
def heif_supported() -> bool:
    """Register ``pillow-heif``'s opener once; False when it is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def open_image(data: bytes) -> Any:
    """Open ``data`` with Pillow (header only), allowing the accepted formats and no others."""
    from PIL import Image

    formats = [name for name in FORMATS if name != "HEIF" or heif_supported()]
    try:
        return Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as exc:  # far over the limit: Pillow's own check
        raise ImageTooLargeError(f"{exc} (limit {MAX_IMAGE_PIXELS / 1e6:.1f} MP)") from None
    except Exception:  # UnidentifiedImageError, at times others
        if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not heif_supported():
            raise NotAnImageError("HEIC/HEIF images are not supported here") from None
        raise NotAnImageError(
            "the object is not a PNG, JPEG, WebP, GIF, BMP, TIFF or HEIC image, or its header "
            f"is damaged or truncated (first bytes: {data[:8].hex(' ') or 'none, it is empty'})"
        ) from None


def reduce_image(image: Any, turn: int) -> Any:
    """Decode ``image`` (a JPEG at reduced scale), RGB, at most ``REDUCED_SIDE``, upright."""
    from PIL import Image

    if image.mode not in ("RGB", "L", "CMYK"):  # as the endpoint: RGB first (alpha, palette)
        image = image.convert("RGB")
    image.thumbnail((REDUCED_SIDE, REDUCED_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    image.load()
    if turn in _UPRIGHT:
        image = image.transpose(Image.Transpose[_UPRIGHT[turn]])
    return image.convert("RGB")


def jpeg_damage(data: bytes) -> str | None:
    """Why the JPEG ``data`` is cut short or damaged (its marker structure), or None.

    libjpeg decodes damaged entropy-coded data with warnings only, which Pillow drops: a JPEG
    header followed by random bytes can decode to noise. Walk the markers from SOI to the first
    EOI instead: every segment must be a JPEG marker with its length, and every scan's data
    must end at one. Bytes after the EOI (phones append trailers, MPO more pictures) are fine.
    """
    index, size = 2, len(data)
    while True:
        if index >= size:
            return "it ends before its end-of-image marker (truncated)"
        if data[index] != 0xFF:
            return f"byte {index} is not a JPEG marker"
        while index < size and data[index] == 0xFF:  # fill bytes
            index += 1
        if index >= size:
            return "it ends before its end-of-image marker (truncated)"
        marker = data[index]
        index += 1
        if marker == 0xD9:  # EOI
            return None
        if marker not in _JPEG_SEGMENTS:
            return f"0xFF{marker:02X} at byte {index - 2} is not a JPEG marker"
        if index + 2 > size:
            return "it ends inside a segment header (truncated)"
        length = int.from_bytes(data[index : index + 2], "big")
        if length < 2:
            return f"segment 0xFF{marker:02X} at byte {index - 2} has length {length}"
        index += length
        if marker == 0xDA:  # a scan: entropy-coded data up to the next marker
            found = _JPEG_NEXT_MARKER.search(data, min(index, size))
            if found is None:
                return "its scan data ends without an end-of-image marker (truncated)"
            index = found.start()


def decode(data: bytes) -> tuple[dict[str, Any], int, Any]:
    """Check ``data`` and decode it: (format and upright size, EXIF orientation, copy)."""
    from PIL import ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # set by other code in this process: refuse to guess
        raise ConfigurationError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on here: truncated images would decode"
        )
    with open_image(data) as image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            megapixels = f"{width * height / 1e6:.1f} MP, over {MAX_IMAGE_PIXELS / 1e6:.1f} MP"
            raise ImageTooLargeError(f"image is {width}x{height} = {megapixels}")
        name = FORMATS[image.format.replace("MPO", "JPEG")]  # MPO: a JPEG with more pictures
        image.verify()  # PNG: every chunk's CRC, IDAT included
        damage = jpeg_damage(data) if name == "JPEG" else None
        if damage:
            raise NotAnImageError(f"the image is damaged or truncated: JPEG: {damage}")
    with open_image(data) as image:
        turn = image.getexif().get(0x0112, 1)  # the EXIF orientation; 1: as stored
        turn = turn if turn in _UPRIGHT else 1
        size = image.size if turn < 5 else image.size[::-1]
        original = {"original_format": name, "original_width": size[0], "original_height": size[1]}
        return original, turn, reduce_image(image, turn)


def serialize(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """Return the bytes to send on (``data`` or a reduced PNG) and the output's image keys."""
    try:
        original, turn, small = decode(data)
    except (NotAnImageError, ImageTooLargeError, ConfigurationError, MemoryError):
        raise
    except Exception as exc:  # what Pillow raises for damaged or truncated data
        raise NotAnImageError(f"the image is damaged or truncated: {exc}") from None
    original["original_bytes"] = len(data)
    reduced = not (
        len(data) <= INLINE_MAX_BYTES
        and original["original_format"] in PASS_THROUGH
        and turn == 1
        and original["original_width"] * original["original_height"] <= ENDPOINT_MAX_PIXELS
    )
    if reduced:
        buffer = io.BytesIO()
        small.save(buffer, "PNG", compress_level=1)  # 4 ms, not 18 ms; 70 kB, not 60 kB
        data = buffer.getvalue()
    return data, {"reduced": reduced, **original}


def read_object(s3: Any, bucket: str, key: str, limit: int) -> tuple[bytes, str]:
    """``(bytes, key read)`` of ``s3://bucket/key`` as sent, else URL-decoded; <= ``limit``."""
    from urllib.parse import unquote_plus

    from botocore.exceptions import ClientError

    for name in dict.fromkeys((key, unquote_plus(key))):
        try:
            with s3_unavailable(bucket, name):
                response, key = s3.get_object(Bucket=bucket, Key=name), name
            break
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
                raise ImageAccessDeniedError(
                    f"access to s3://{bucket}/{name} denied ({code}): the function may read "
                    "only the image bucket's incoming prefix"
                ) from None
            if code in _BAD_LOCATION_CODES:
                raise InvalidEventError(
                    f"S3 refused s3://{bucket}/{name[:200]} as a location ({code})"
                ) from None
            if code not in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                raise
            missing = ImageNotFoundError(f"s3://{bucket}/{name} does not exist ({code})")
    else:
        raise missing
    size, body = int(response.get("ContentLength", 0)), response["Body"]
    try:
        with s3_unavailable(bucket, key):
            data: bytes = body.read(limit + 1) if size <= limit else b""
    finally:
        body.close()
    if size > limit or len(data) > limit:
        raise ImageTooLargeError(
            f"s3://{bucket}/{key} is {max(size, len(data))} bytes, over the limit of {limit} "
            "(MAX_IMAGE_BYTES)"
        )
    return data, key


@contextlib.contextmanager
def s3_unavailable(bucket: str, key: str) -> Iterator[None]:
    """Turn S3 not answering into ``S3UnavailableError`` (which the state machine retries):
    connection refused, closed or timed out, a body cut short, and 5xx/SlowDown answers."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
    )

    where = f"s3://{bucket}/{key[:200]}"
    try:
        yield
    except (ConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise S3UnavailableError(f"S3 did not answer for {where}: {exc}") from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in S3_TRANSIENT_CODES or status >= 500:
            raise S3UnavailableError(f"S3 answered {code or status} for {where}") from None
        raise


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
    data, key = read_object(s3_client(), bucket, key, max_image_bytes())
    try:
        image_data, image = serialize(data)
    except (NotAnImageError, ImageTooLargeError) as exc:
        raise type(exc)(f"s3://{bucket}/{key}: {exc}") from None
    logger.info("serialized image", extra={"s3_bucket": bucket, "s3_key": key, **image})
    return {
        **event,
        "s3_bucket": bucket,
        "s3_key": key,
        "image_data": base64.b64encode(image_data).decode("ascii"),
        "inferences": [],
        **image,
    }
