"""JSON payloads for display: pretty-printed, with images as thumbnails and no walls of base64.

A state's input or output in this workflow carries the whole image as ``image_data`` (base64).
``show_json`` replaces each such value by a one-line note and returns the image as a small PNG
thumbnail (a ``data:`` URI made by re-encoding what Pillow decoded, so only a checked image
reaches the page), or a note saying why there is none. Any other very long string is cut.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
from dataclasses import dataclass, field
from typing import Any

IMAGE_KEYS = frozenset({"image_data"})
MAX_STRING = 400  # longer strings are cut for display
MAX_IMAGE_BYTES = 6 * 1024 * 1024  # the endpoint's own request limit
THUMBNAIL_PX = 128


@dataclass(frozen=True)
class Thumbnail:
    """One image found in a payload: a ``data:`` URI of a PNG thumbnail, or why there is none."""

    path: str  # where it sat in the JSON, e.g. ``$.image_data``
    uri: str | None
    note: str  # e.g. "32x32 PNG, 1,234 bytes" or "not an image (…)"


@dataclass
class Shown:
    """A payload ready for the page: its text and the images it held."""

    text: str
    images: list[Thumbnail] = field(default_factory=list)


@functools.lru_cache(maxsize=512)
def thumbnail(data: str) -> tuple[str | None, str]:
    """``(data URI or None, note)`` for base64 ``data``; the URI only when Pillow decodes it."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return None, f"not base64 ({len(data):,} characters)"
    if len(raw) > MAX_IMAGE_BYTES:
        return None, f"{len(raw):,} bytes: too large to preview"
    try:
        with Image.open(io.BytesIO(raw)) as image:
            kind, size = image.format or "image", image.size
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            small = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"not an image ({type(exc).__name__}), {len(raw):,} bytes"
    out = io.BytesIO()
    small.save(out, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
    return uri, f"{size[0]}x{size[1]} {kind}, {len(raw):,} bytes"


def _cut(text: str) -> str:
    return f"{text[:80]}… ({len(text):,} characters)"


def _walk(value: Any, path: str, images: list[Thumbnail]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in IMAGE_KEYS and isinstance(item, str) and item:
                uri, note = thumbnail(item)
                images.append(Thumbnail(where, uri, note))
                out[key] = f"<image: {note}>"
            else:
                out[key] = _walk(item, where, images)
        return out
    if isinstance(value, list):
        return [_walk(item, f"{path}[{i}]", images) for i, item in enumerate(value)]
    if isinstance(value, str) and len(value) > MAX_STRING:
        return _cut(value)
    return value


def shorten(value: Any) -> tuple[Any, list[Thumbnail]]:
    """``value`` with images replaced by notes and long strings cut, and the images found."""
    images: list[Thumbnail] = []
    return _walk(value, "$", images), images


def show_json(text: str | None) -> Shown:
    """A JSON document (as Step Functions returns it) ready to show; non-JSON text is cut."""
    if text is None or text == "":
        return Shown("")
    try:
        value = json.loads(text)
    except ValueError:
        return Shown(text if len(text) <= MAX_STRING else _cut(text))
    short, images = shorten(value)
    return Shown(json.dumps(short, indent=2, ensure_ascii=False), images)


def show_value(value: Any) -> Shown:
    """Like ``show_json`` for a value already parsed (an event's details)."""
    short, images = shorten(value)
    return Shown(json.dumps(short, indent=2, ensure_ascii=False, default=str), images)
