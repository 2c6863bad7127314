"""SageMaker inference handlers for the scones classifier (shipped as ``code/inference.py``).

SageMaker's PyTorch inference containers (and the offline twin's endpoint server) load this
module from ``model.tar.gz`` and call ``model_fn`` once, then ``input_fn`` -> ``predict_fn`` ->
``output_fn`` per request. ``predict_batch_fn`` is an extension the local endpoint uses to run
requests that queued up as one batch.

Only onnxruntime, numpy and Pillow are used. Images that are not 32x32 (the CIFAR size the model
was trained on) are resized to 32x32 (bilinear, aspect ratio not kept); images that are not RGB
(grayscale, palette, RGBA) are converted to RGB. Decoding costs time in proportion to the pixels
an image declares (a 65 KB PNG can declare 4096 x 4096 and take a second), so the declared size
is checked from the header before any pixel is decoded: more than ``SCONES_MAX_IMAGE_PIXELS``
(default 1024 x 1024) is refused with ``ImageTooLargeError`` (a client error, 400). JPEGs are
decoded at a reduced scale (libjpeg's DCT scaling, at most 1/8 a side) when they are larger than
needed, and the cap applies to that decoded size.

Environment: ``SCONES_ORT_THREADS`` sets onnxruntime's intra-op threads (default 1: the endpoint
server runs one worker per core instead); ``SCONES_MAX_IMAGE_PIXELS`` the pixel cap.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger(__name__)

IMAGE_CONTENT_TYPES = ("image/png", "image/jpeg", "application/x-image")
JSON_ACCEPTS = ("application/json", "*/*", "application/*")
THREADS_ENV = "SCONES_ORT_THREADS"
MAX_PIXELS_ENV = "SCONES_MAX_IMAGE_PIXELS"
MAX_IMAGE_PIXELS = 1024 * 1024  # default cap on the pixels decoded per image


class InvalidImageError(ValueError):
    """The request body is not an image Pillow can decode."""


class ImageTooLargeError(InvalidImageError):
    """The image declares more pixels than the endpoint decodes (``SCONES_MAX_IMAGE_PIXELS``)."""


class UnsupportedContentTypeError(ValueError):
    """The request's content type is not one of image/png, image/jpeg, application/x-image."""


class UnsupportedAcceptError(ValueError):
    """The request's Accept is not application/json."""


class OnnxClassifier:
    """An onnxruntime session plus what is needed to feed it (``mean``/``std``: [3, 1, 1])."""

    __slots__ = ("session", "classes", "image_size", "mean", "std", "input_name", "output_name")

    def __init__(
        self,
        session: Any,
        classes: tuple[str, ...],
        image_size: int,
        mean: np.ndarray,
        std: np.ndarray,
        input_name: str,
        output_name: str,
    ) -> None:
        self.session = session
        self.classes = classes
        self.image_size = image_size
        self.mean = mean
        self.std = std
        self.input_name = input_name
        self.output_name = output_name


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _threads() -> int:
    raw = os.environ.get(THREADS_ENV, "1").strip() or "1"
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be an integer, got {raw!r}") from None
    return max(0, threads)


def _max_pixels() -> int:
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_IMAGE_PIXELS
    try:
        return max(1, int(raw))
    except ValueError:
        raise ValueError(f"{MAX_PIXELS_ENV} must be an integer, got {raw!r}") from None


def model_fn(model_dir: str | os.PathLike[str]) -> OnnxClassifier:
    """Load ``model.onnx`` and ``classes.json`` from ``model_dir`` into an ``OnnxClassifier``."""
    import onnxruntime as ort

    root = Path(model_dir)
    meta = json.loads((root / "classes.json").read_text(encoding="utf-8"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(
        str(root / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
    )
    model = OnnxClassifier(
        session=session,
        classes=tuple(meta["classes"]),
        image_size=int(meta.get("image_size", 32)),
        mean=np.asarray(meta["mean"], dtype=np.float32).reshape(3, 1, 1),
        std=np.asarray(meta["std"], dtype=np.float32).reshape(3, 1, 1),
        input_name=session.get_inputs()[0].name,
        output_name=session.get_outputs()[0].name,
    )
    LOG.info(
        "model loaded",
        extra={"classes": list(model.classes), "threads": options.intra_op_num_threads},
    )
    return model


def decode_image(body: bytes, image_size: int = 32) -> np.ndarray:
    """Decode image bytes into a uint8 array ``[image_size, image_size, 3]`` (RGB).

    Raises ``InvalidImageError`` when the bytes are not a decodable image, and its subclass
    ``ImageTooLargeError`` (before decoding) when the image has more pixels than the cap.
    """
    from PIL import Image

    if not body:
        raise InvalidImageError("empty request body: expected image bytes")
    limit = _max_pixels()
    try:
        with Image.open(io.BytesIO(body)) as img:  # reads the header only
            img.draft("RGB", (image_size, image_size))  # JPEG: decode at a reduced scale
            width, height = img.size
            if width * height > limit:
                raise ImageTooLargeError(
                    f"image of {width}x{height} pixels is too large to decode (at most {limit} "
                    f"pixels, {MAX_PIXELS_ENV}); send a smaller image (the model reads "
                    f"{image_size}x{image_size})"
                )
            rgb = img.convert("RGB")
    except InvalidImageError:
        raise
    except Exception as exc:  # Pillow raises many types for bad bytes
        raise InvalidImageError(f"body is not a decodable image ({type(exc).__name__})") from None
    if rgb.size != (image_size, image_size):
        LOG.debug("resizing image", extra={"from": rgb.size, "to": image_size})
        rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def input_fn(request_body: bytes, request_content_type: str | None) -> np.ndarray:
    """Turn a PNG/JPEG request body into a float32 array ``[3, 32, 32]`` on the 0..1 scale.

    Normalization with the model's mean/std happens in ``predict_fn``, so the output does not
    depend on the model. Raises ``UnsupportedContentTypeError`` or ``InvalidImageError``.
    """
    media = _media_type(request_content_type)
    if media not in IMAGE_CONTENT_TYPES:
        raise UnsupportedContentTypeError(
            f"unsupported content type {request_content_type!r}: "
            f"send one of {', '.join(IMAGE_CONTENT_TYPES)}"
        )
    if isinstance(request_body, str):
        raise InvalidImageError("body is text, expected image bytes")
    pixels = decode_image(bytes(request_body))
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


def _normalize(batch: np.ndarray, model: OnnxClassifier) -> np.ndarray:
    expected = (3, model.image_size, model.image_size)
    if batch.ndim != 4 or tuple(batch.shape[1:]) != expected:
        raise ValueError(f"expected inputs of shape {expected}, got {tuple(batch.shape[1:])}")
    return ((batch.astype(np.float32, copy=False) - model.mean) / model.std).astype(np.float32)


def predict_batch_fn(batch: list[np.ndarray], model: OnnxClassifier) -> np.ndarray:
    """Run several decoded inputs as one batch; return probabilities ``[N, C]``."""
    if not batch:
        return np.zeros((0, len(model.classes)), dtype=np.float32)
    stacked = _normalize(np.stack(batch), model)
    (probs,) = model.session.run([model.output_name], {model.input_name: stacked})
    return np.asarray(probs, dtype=np.float32)


def predict_fn(input_data: np.ndarray, model: OnnxClassifier) -> np.ndarray:
    """Return the class probabilities ``[C]`` for one decoded input ``[3, 32, 32]``."""
    return predict_batch_fn([input_data], model)[0]


def output_fn(prediction: np.ndarray, accept: str | None) -> bytes:
    """Serialize probabilities as a JSON list of floats in label order (``application/json``)."""
    media = _media_type(accept) or "application/json"
    if media not in JSON_ACCEPTS:
        raise UnsupportedAcceptError(f"unsupported accept {accept!r}: only application/json")
    values = [float(v) for v in np.asarray(prediction, dtype=np.float64).ravel()]
    return json.dumps(values).encode("utf-8")
