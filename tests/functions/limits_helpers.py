"""Builders the handlers' limit tests share: PNGs of a given size or declared size, and queued
InvokeEndpoint answers (``make mutation``'s tests; docs/testing.md)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from botocore.response import StreamingBody
from botocore.stub import Stubber
from PIL import Image

ENDPOINT = "scones-image-classifier"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def answer(stub: Stubber, body: bytes, image: bytes | None = None) -> None:
    """Queue one InvokeEndpoint answer (the request checked when ``image`` is given)."""
    expected = None
    if image is not None:
        expected = {
            "EndpointName": ENDPOINT,
            "ContentType": "image/png",
            "Accept": "application/json",
            "Body": image,
        }
    stub.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
        expected,
    )


def png(size: tuple[int, int], mode: str = "RGB", **save: Any) -> bytes:
    """A flat grey PNG of ``size``."""
    buffer = io.BytesIO()
    Image.new(mode, size, 90).save(buffer, "PNG", **save)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` RGB whose pixel data stops after a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return PNG_MAGIC + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
