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
import functools
import io
import logging
import os
import threading
from typing import Any

from scones_common import ConfigurationError, InvalidEventError, event_object, text_field

logger = logging.getLogger(__name__)

#: Largest object sent as it is: its base64 fits a 256 KiB state with 8 KiB for the other keys.
INLINE_MAX_BYTES = (256 * 1024 - 8 * 1024) // 4 * 3
#: Largest object read (env ``MAX_IMAGE_BYTES`` may lower it): MemorySize is measured for it.
HARD_MAX_IMAGE_BYTES = 25 * 1024 * 1024
#: Largest image decoded: 8192 x 6144 (50.3 MP; phones' 48/50 MP modes fit).
MAX_IMAGE_PIXELS = 8192 * 6144
#: Longest side of a reduced copy; a 240 x 240 RGB PNG is at most 173 KB (fits the state).
REDUCED_SIDE = 240
#: The endpoint refuses images above this many pixels (ml/serving/inference.py).
ENDPOINT_MAX_PIXELS = 4096 * 4096
#: The Pillow openers allowed -> the format name reported.
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP"}
FORMATS |= {"TIFF": "TIFF", "HEIF": "HEIF"}
#: Formats the endpoint decodes as sent (the classify function names their content type).
PASS_THROUGH = frozenset({"PNG", "JPEG", "WebP", "GIF", "BMP"})
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
#: EXIF orientation -> the transposition that makes the image upright (as ImageOps does).
_UPRIGHT = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE"}
_UPRIGHT |= {6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


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
    if key.endswith("/"):
        raise InvalidEventError(f"s3_key {key!r} names a folder, not an object")
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


def decode(data: bytes) -> tuple[dict[str, Any], int, Any]:
    """Check ``data`` and decode it: (format and upright size, EXIF orientation, copy)."""
    with open_image(data) as image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            megapixels = f"{width * height / 1e6:.1f} MP, over {MAX_IMAGE_PIXELS / 1e6:.1f} MP"
            raise ImageTooLargeError(f"image is {width}x{height} = {megapixels}")
        name = FORMATS[image.format.replace("MPO", "JPEG")]  # MPO: a JPEG with more pictures
        image.verify()  # PNG: every chunk's CRC, IDAT included
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
    except (NotAnImageError, ImageTooLargeError, MemoryError):
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
            response, key = s3.get_object(Bucket=bucket, Key=name), name
            break
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
                raise ImageAccessDeniedError(
                    f"access to s3://{bucket}/{name} denied ({code}): the function may read "
                    "only the image bucket's incoming prefix"
                ) from None
            if code not in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                raise
            missing = ImageNotFoundError(f"s3://{bucket}/{name} does not exist ({code})")
    else:
        raise missing
    size, body = int(response.get("ContentLength", 0)), response["Body"]
    try:
        data: bytes = body.read(limit + 1) if size <= limit else b""
    finally:
        body.close()
    if size > limit or len(data) > limit:
        raise ImageTooLargeError(
            f"s3://{bucket}/{key} is {max(size, len(data))} bytes, over the limit of {limit} "
            "(MAX_IMAGE_BYTES)"
        )
    return data, key


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
