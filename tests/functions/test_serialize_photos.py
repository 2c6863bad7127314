"""SerializeImage on what phones upload: 12 MP JPEGs with EXIF rotation, big PNGs, HEIC, GIFs.

The images are made here: a CIFAR-like synthetic picture (``scones.data.synthetic``, the class
shows in stripe direction and colour) upscaled to phone size. "Same label" is checked on what
the model reads: the endpoint's own decoding (``ml/serving/inference.py``) of the image the
function hands on, against the same decoding of the full, upright original, at 32 x 32.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import numpy as np
import pytest
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile
from sam_helpers import FUNCTIONS, PROJECT

from scones.data.synthetic import synthetic_images
from scones.twin.lambda_runtime import LambdaContext

BUCKET = "scones-images-test"
#: EXIF orientation -> what turns an upright picture into the pixels a camera stores with it.
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="module")
def endpoint_pixels() -> Callable[[bytes], np.ndarray]:
    """The endpoint's decoding: image bytes -> the 32 x 32 RGB array the model reads."""
    path = PROJECT / "ml" / "serving" / "inference.py"
    spec = importlib.util.spec_from_file_location("endpoint_inference_for_photos", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # the reference decodes originals the endpoint itself refuses (over its 1 MP cap): that is
    # why SerializeImage sends them reduced
    module.MAX_IMAGE_PIXELS = 64 * 2**20
    decode: Callable[[bytes], np.ndarray] = module.decode_image

    def full_decode(data: bytes) -> np.ndarray:
        # and decodes JPEGs at full scale (the endpoint's draft mode only serves images it takes)
        with mock.patch.object(JpegImageFile, "draft", lambda self, mode, size: None):
            return decode(data).astype(np.int16)

    return full_decode


@pytest.fixture
def s3(moto: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def picture(label: int, size: tuple[int, int], seed: int = 0, noise: float = 4.0) -> Image.Image:
    """A CIFAR-like 32 x 32 picture upscaled to ``size``, with sensor-like noise."""
    rng = np.random.default_rng(seed)
    row = synthetic_images(label, 1, rng)[0].reshape(3, 32, 32).transpose(1, 2, 0)
    big = np.asarray(Image.fromarray(row).resize(size, Image.Resampling.BICUBIC), np.int16)
    big += rng.normal(0, noise, big.shape).round().astype(np.int16)
    return Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))


def encode(upright: Image.Image, fmt: str, orientation: int = 1, **save: Any) -> bytes:
    """``upright`` stored as a camera stores it with EXIF ``orientation``."""
    stored = upright.transpose(STORED[orientation]) if orientation in STORED else upright
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    stored.save(buffer, fmt, **save)
    return buffer.getvalue()


def png(image: Image.Image, **save: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save)
    return buffer.getvalue()


def run(serialize: ModuleType, s3: Any, data: bytes, key: str) -> dict[str, Any]:
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    context = LambdaContext(function_name="scones-SerializeImage", timeout_s=30)
    result: dict[str, Any] = serialize.lambda_handler({"s3_bucket": BUCKET, "s3_key": key}, context)
    return result


def fits_a_state(result: dict[str, Any]) -> bool:
    """Whether the output (with a 1 KiB key and the classifier's keys) fits 256 KiB."""
    state = {**result, "s3_key": "k" * 1024, "inferences": [0.5, 0.5], "label": 0}
    return len(json.dumps({**state, "confidence": 0.5}).encode()) <= 256 * 1024


def close(a: np.ndarray, b: np.ndarray, max_level: int = 2) -> bool:
    """Two 32 x 32 arrays that the model cannot tell apart: within ``max_level`` of 255."""
    return int(np.abs(a - b).max()) <= max_level and float(np.abs(a - b).mean()) < 0.5


def test_a_12_mp_phone_photo_with_exif_rotation_goes_on_reduced_and_upright(
    serialize: ModuleType, s3: Any, endpoint_pixels: Callable[[bytes], np.ndarray]
) -> None:
    upright = picture(1, (4000, 3000), seed=1)
    data = encode(upright, "JPEG", 6, quality=90)
    assert len(data) > 1_000_000  # a phone photo, over the old 150,000-byte limit

    result = run(serialize, s3, data, "incoming/IMG_0001.JPG")

    assert result["reduced"] is True
    assert (result["original_format"], result["original_width"], result["original_height"]) == (
        "JPEG",
        4000,
        3000,
    )
    assert result["original_bytes"] == len(data)
    sent = base64.b64decode(result["image_data"])
    with Image.open(io.BytesIO(sent)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (240, 180))
    assert fits_a_state(result)
    full = endpoint_pixels(png(upright))  # the full image, upright, as the endpoint reads it
    assert close(endpoint_pixels(sent), full)
    assert np.abs(endpoint_pixels(encode(upright, "JPEG", 6)) - full).mean() > 10  # turned
    # the original stays in S3, untouched, and nothing else is written
    assert s3.get_object(Bucket=BUCKET, Key="incoming/IMG_0001.JPG")["Body"].read() == data
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_ends_upright(serialize: ModuleType, orientation: int) -> None:
    upright = Image.new("RGB", (300, 200), (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, 150, 100))  # red top-left quarter
    data, keys = serialize.serialize(encode(upright, "JPEG", orientation, quality=95))
    assert keys["reduced"] is (orientation != 1)  # turned images are always re-encoded
    assert (keys["original_width"], keys["original_height"]) == (300, 200)
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    assert rgb.size == ((240, 160) if orientation != 1 else (300, 200))
    pixels = np.asarray(rgb)
    top_left = pixels[rgb.height // 4, rgb.width // 4]
    bottom_right = pixels[3 * rgb.height // 4, 3 * rgb.width // 4]
    assert top_left[0] > 200 > top_left[2] and bottom_right[2] > 200 > bottom_right[0]


def test_a_20_mb_png_goes_on_reduced(
    serialize: ModuleType, s3: Any, endpoint_pixels: Callable[[bytes], np.ndarray]
) -> None:
    noise = np.random.default_rng(2).integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
    data = png(Image.fromarray(noise), compress_level=0)
    assert len(data) > 20_000_000

    result = run(serialize, s3, data, "incoming/scan.png")

    assert result["reduced"] is True and result["original_bytes"] == len(data)
    assert (result["original_format"], result["original_width"]) == ("PNG", 2600)
    assert fits_a_state(result)
    sent = base64.b64decode(result["image_data"])
    assert close(endpoint_pixels(sent), endpoint_pixels(data))


@pytest.mark.parametrize("size", [(4000, 4000), (4000, 3000), (100, 6000)])
def test_the_reduced_copy_fits_a_state_even_for_noise(
    serialize: ModuleType, size: tuple[int, int]
) -> None:
    noise = np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    data, keys = serialize.serialize(encode(Image.fromarray(noise), "JPEG", quality=95))
    assert keys["reduced"] and len(data) <= serialize.INLINE_MAX_BYTES


def test_a_60_mp_bomb_ends_at_once_in_bounded_memory(serialize: ModuleType, s3: Any) -> None:
    bomb = png(Image.new("1", (10_000, 6_000)))  # 60 MP in a few kilobytes
    assert len(bomb) < 20_000
    with pytest.raises(serialize.ImageTooLargeError, match="10000x6000 = 60.0 MP, over 50.3 MP"):
        run(serialize, s3, bomb, "incoming/bomb.png")
    # a fresh process, as a Lambda environment: the peak RSS hardly moves (VmHWM, MiB)
    script = f"""
import sys, importlib.util
sys.path.insert(0, {str(FUNCTIONS / "common")!r})
spec = importlib.util.spec_from_file_location("app", {str(FUNCTIONS / "serialize_image" / "app.py")!r})
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
import PIL.Image, PIL.PngImagePlugin
def peak():
    line = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
    return int(line.split()[1]) / 1024
data = sys.stdin.buffer.read(); before = peak()
try:
    app.serialize(data)
except app.ImageTooLargeError:
    print(peak() - before)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], input=bomb, capture_output=True, check=True, timeout=60
    )
    assert float(done.stdout) < 8, done.stdout  # MiB; decoding it would take 60+ MB


def test_the_pixel_limit_is_checked_from_the_header(
    serialize: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serialize, "MAX_IMAGE_PIXELS", 40 * 25)
    assert serialize.serialize(png(Image.new("RGB", (40, 25))))[1]["original_width"] == 40
    with pytest.raises(serialize.ImageTooLargeError, match="41x25"):
        serialize.serialize(png(Image.new("RGB", (41, 25))))


def test_a_truncated_phone_photo_is_not_an_image(serialize: ModuleType, s3: Any) -> None:
    data = encode(picture(0, (4000, 3000), seed=4), "JPEG", 6, quality=90)
    with pytest.raises(serialize.NotAnImageError, match="damaged or truncated") as caught:
        run(serialize, s3, data[: len(data) * 3 // 5], "incoming/cut.jpg")
    assert f"s3://{BUCKET}/incoming/cut.jpg" in str(caught.value)


def _animated_gif(size: tuple[int, int], colours: list[tuple[int, int, int]]) -> bytes:
    rng = np.random.default_rng(5)
    frames = []
    for colour in colours:
        pixels = np.clip(rng.normal(colour, 20, (size[1], size[0], 3)), 0, 255)
        frames.append(Image.fromarray(pixels.astype(np.uint8)))
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [(40, 30), (900, 600)])
def test_an_animated_gif_gives_its_first_frame(
    serialize: ModuleType,
    s3: Any,
    endpoint_pixels: Callable[[bytes], np.ndarray],
    size: tuple[int, int],
) -> None:
    data = _animated_gif(size, [(200, 40, 40), (40, 200, 40), (40, 40, 200)])
    result = run(serialize, s3, data, "incoming/anim.gif")
    sent = base64.b64decode(result["image_data"])
    assert result["reduced"] is (len(data) > serialize.INLINE_MAX_BYTES)
    assert result["original_format"] == "GIF"
    red, green, blue = endpoint_pixels(sent).reshape(-1, 3).mean(axis=0)
    assert red > 150 > 80 > green and blue < 80  # the red first frame, not the others
    assert close(endpoint_pixels(sent), endpoint_pixels(data))


def test_a_heic_photo_is_read_upright(
    serialize: ModuleType, s3: Any, endpoint_pixels: Callable[[bytes], np.ndarray]
) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()  # to write one here; the function registers it itself
    upright = picture(0, (1200, 900), seed=6)
    data = encode(upright, "HEIF", 6, quality=90)
    assert data[4:12] == b"ftypheic"

    result = run(serialize, s3, data, "incoming/IMG_0002.HEIC")

    assert result["reduced"] is True and result["original_format"] == "HEIF"
    assert (result["original_width"], result["original_height"]) == (1200, 900)
    sent = base64.b64decode(result["image_data"])
    with Image.open(io.BytesIO(sent)) as image:
        assert (image.format, image.size) == ("PNG", (240, 180))
    # HEVC is lossy: compare with the HEIC's own upright pixels, and loosely with the source
    decoded = png(Image.open(io.BytesIO(data)).convert("RGB"))
    assert close(endpoint_pixels(sent), endpoint_pixels(decoded))
    assert close(endpoint_pixels(sent), endpoint_pixels(png(upright)), max_level=12)


def test_without_pillow_heif_heic_is_not_an_image_saying_so(
    serialize: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    data = encode(picture(0, (64, 48)), "HEIF", quality=90)
    monkeypatch.setattr(serialize, "heif_supported", lambda: False)
    with pytest.raises(serialize.NotAnImageError, match="HEIC/HEIF images are not supported"):
        run(serialize, s3, data, "incoming/IMG_0003.HEIC")


@pytest.mark.parametrize(
    ("fmt", "save", "name"),
    [("TIFF", {"compression": "tiff_lzw"}, "TIFF"), ("WEBP", {"quality": 90}, "WebP")],
)
def test_tiff_and_webp_photos(
    serialize: ModuleType,
    endpoint_pixels: Callable[[bytes], np.ndarray],
    fmt: str,
    save: dict[str, Any],
    name: str,
) -> None:
    data = encode(picture(1, (1600, 1200), seed=7), fmt, **save)
    sent, keys = serialize.serialize(data)
    assert keys["reduced"] and keys["original_format"] == name
    assert close(endpoint_pixels(sent), endpoint_pixels(data))


def test_a_small_tiff_is_re_encoded_for_the_endpoint(serialize: ModuleType) -> None:
    data = encode(picture(1, (32, 32)), "TIFF")
    sent, keys = serialize.serialize(data)
    assert keys["reduced"] and sent.startswith(b"\x89PNG")  # the endpoint reads PNG and JPEG
    with Image.open(io.BytesIO(sent)) as image, Image.open(io.BytesIO(data)) as original:
        assert image.tobytes() == original.convert("RGB").tobytes()  # lossless, same size


def test_a_jpeg_holding_more_pictures_mpo_is_a_jpeg(serialize: ModuleType) -> None:
    first, second = picture(0, (64, 48)), picture(1, (64, 48))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    sent, keys = serialize.serialize(buffer.getvalue())
    assert keys["original_format"] == "JPEG" and sent == buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "I;16", "CMYK"])
def test_other_modes_reduce_as_the_endpoint_converts_them(
    serialize: ModuleType, endpoint_pixels: Callable[[bytes], np.ndarray], mode: str
) -> None:
    image = picture(0, (1500, 1000), seed=8)
    if mode in ("RGBA", "LA"):  # transparent pixels keep colours the endpoint still sees
        alpha = Image.linear_gradient("L").resize(image.size)
        image = image.convert(mode[:-1])
        image.putalpha(alpha)
    else:
        image = image.convert(mode)
    data = encode(image, "JPEG" if mode == "CMYK" else "PNG", quality=95)
    sent, keys = serialize.serialize(data)
    assert keys["reduced"]
    assert close(endpoint_pixels(sent), endpoint_pixels(data))
