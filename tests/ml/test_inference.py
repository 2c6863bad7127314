"""The inference contract of code/inference.py, loaded from a real model.tar.gz."""

from __future__ import annotations

import importlib.util
import io
import json
import re
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def inference(tiny_model_dir: Path) -> ModuleType:
    """The shipped code/inference.py, imported from the model folder as SageMaker does."""
    path = tiny_model_dir / "code" / "inference.py"
    spec = importlib.util.spec_from_file_location("shipped_inference", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(inference: ModuleType, tiny_model_dir: Path) -> object:
    return inference.model_fn(str(tiny_model_dir))


def _encode(pixels: np.ndarray, fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture()
def pixels() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)


def test_shipped_code_is_the_source(tiny_model_dir: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "ml" / "serving" / "inference.py"
    assert (tiny_model_dir / "code" / "inference.py").read_bytes() == source.read_bytes()
    reqs = (tiny_model_dir / "code" / "requirements.txt").read_text()
    lines = [line for line in reqs.splitlines() if line and not line.startswith("#")]
    pins = [re.split("[=<>]", line)[0] for line in lines]
    assert pins == ["onnxruntime", "numpy", "Pillow"]
    # pinned to the onnxruntime the tests run (issue 16): every instance gets the same one
    assert f"onnxruntime=={version('onnxruntime')}" in reqs.splitlines()


def test_model_fn_reads_classes_and_one_thread(model: object) -> None:
    assert model.classes == ("bicycle", "motorcycle")  # type: ignore[attr-defined]
    opts = model.session.get_session_options()  # type: ignore[attr-defined]
    assert opts.intra_op_num_threads == 1


def test_threads_env_override_and_bad_value(
    inference: ModuleType, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCONES_ORT_THREADS", "2")
    m = inference.model_fn(tiny_model_dir)
    assert m.session.get_session_options().intra_op_num_threads == 2
    monkeypatch.setenv("SCONES_ORT_THREADS", "many")
    with pytest.raises(ValueError, match="SCONES_ORT_THREADS"):
        inference.model_fn(tiny_model_dir)


def test_png_is_decoded_exactly(inference: ModuleType, pixels: np.ndarray) -> None:
    x = inference.input_fn(_encode(pixels, "PNG"), "image/png")
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x, pixels.transpose(2, 0, 1) / 255.0, atol=1e-7)


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("PNG", "application/x-image"),
        ("JPEG", "image/jpeg"),
        ("JPEG", "application/x-image"),
        ("PNG", "image/png; charset=binary"),
        ("PNG", "IMAGE/PNG"),
    ],
)
def test_each_content_type(
    inference: ModuleType, model: object, pixels: np.ndarray, fmt: str, content_type: str
) -> None:
    x = inference.input_fn(_encode(pixels, fmt), content_type)
    assert x.shape == (3, 32, 32)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    probs = inference.predict_fn(x, model)
    assert probs.shape == (2,)
    assert abs(float(probs.sum()) - 1.0) < 1e-5


def test_jpeg_is_close_to_the_pixels(inference: ModuleType) -> None:
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))
    x = inference.input_fn(_encode(smooth, "JPEG"), "image/jpeg")
    assert np.abs(x - smooth.transpose(2, 0, 1) / 255.0).mean() < 0.03


def test_other_sizes_and_modes_are_converted(inference: ModuleType) -> None:
    big = np.full((48, 64, 3), 200, dtype=np.uint8)
    x = inference.input_fn(_encode(big, "PNG"), "image/png")
    assert x.shape == (3, 32, 32)
    np.testing.assert_allclose(x, 200 / 255.0, atol=1e-6)
    gray = inference.input_fn(_encode(big, "PNG", mode="L"), "image/png")
    assert gray.shape == (3, 32, 32)
    rgba = inference.input_fn(_encode(big, "PNG", mode="RGBA"), "image/png")
    assert rgba.shape == (3, 32, 32)


@pytest.mark.parametrize("body", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_bad_bytes_raise_invalid_image(inference: ModuleType, body: bytes) -> None:
    with pytest.raises(inference.InvalidImageError) as info:
        inference.input_fn(body, "image/png")
    assert isinstance(info.value, ValueError)
    assert "image" in str(info.value)


def test_truncated_png_raises_invalid_image(inference: ModuleType, pixels: np.ndarray) -> None:
    data = _encode(pixels, "PNG")
    with pytest.raises(inference.InvalidImageError):
        inference.input_fn(data[: len(data) // 2], "image/png")


@pytest.mark.parametrize("content_type", ["application/json", "text/csv", "", None, "image/gif"])
def test_wrong_content_type(inference: ModuleType, pixels: np.ndarray, content_type: str) -> None:
    with pytest.raises(inference.UnsupportedContentTypeError) as info:
        inference.input_fn(_encode(pixels, "PNG"), content_type)
    assert isinstance(info.value, ValueError)
    assert "image/png" in str(info.value)


def test_output_is_a_json_list_in_label_order(inference: ModuleType) -> None:
    for accept in ("application/json", "*/*", None, "application/json; charset=utf-8"):
        body = inference.output_fn(np.array([0.25, 0.75], dtype=np.float32), accept)
        assert json.loads(body) == [0.25, 0.75]


@pytest.mark.parametrize("accept", ["text/csv", "application/x-recordio-protobuf", "image/png"])
def test_wrong_accept(inference: ModuleType, accept: str) -> None:
    with pytest.raises(inference.UnsupportedAcceptError) as info:
        inference.output_fn(np.array([0.5, 0.5]), accept)
    assert isinstance(info.value, ValueError)


def test_batch_matches_single_predictions(inference: ModuleType, model: object) -> None:
    rng = np.random.default_rng(5)
    inputs = [
        inference.input_fn(
            _encode(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "PNG"), "image/png"
        )
        for _ in range(5)
    ]
    batch = inference.predict_batch_fn(inputs, model)
    assert batch.shape == (5, 2)
    np.testing.assert_allclose(batch.sum(axis=1), 1.0, atol=1e-5)
    singles = np.stack([inference.predict_fn(x, model) for x in inputs])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert inference.predict_batch_fn([], model).shape == (0, 2)


def test_predict_rejects_wrong_shape(inference: ModuleType, model: object) -> None:
    with pytest.raises(ValueError, match="shape"):
        inference.predict_fn(np.zeros((3, 16, 16), dtype=np.float32), model)


def test_model_matches_training_report(
    inference: ModuleType, model: object, tiny_model_dir: Path, tiny_model_tar: Path
) -> None:
    """The served model reproduces the accuracy train.py reported on the same test PNGs."""
    data = tiny_model_tar.parent.parent / "data"  # build_tiny_model's layout
    report = json.loads((tiny_model_dir / "metrics.json").read_text())
    rows = [line.split("\t") for line in (data / "test.lst").read_text().splitlines()]
    xs = [inference.input_fn((data / r[2]).read_bytes(), "image/png") for r in rows]
    probs = inference.predict_batch_fn(xs, model)
    accuracy = float((probs.argmax(1) == np.array([int(r[1]) for r in rows])).mean())
    assert accuracy == pytest.approx(report["accuracy"], abs=1e-9)


def _png_declaring(width: int, height: int, idat: bytes) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (RGB), with ``idat`` as its data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_png_declaring_4096_squared_is_refused_before_decoding(inference: ModuleType) -> None:
    """The issue's 65 KB PNG of 4096 x 4096 (about 1 s to decode). Its pixel data here is not
    even valid zlib: only a check of the declared size, before decoding, names the size."""
    body = _png_declaring(4096, 4096, b"\x78\x9c" + b"\x00" * 65_000)
    with pytest.raises(inference.ImageTooLargeError, match="4096x4096 pixels is too large"):
        inference.input_fn(body, "image/png")
    real = io.BytesIO()
    Image.new("RGB", (4096, 4096)).save(real, "PNG")  # a real one, about 49 KB
    with pytest.raises(inference.ImageTooLargeError) as info:
        inference.input_fn(real.getvalue(), "image/png")
    assert isinstance(info.value, inference.InvalidImageError)  # the client-error path (400)


def test_the_pixel_cap_boundary_and_its_setting(
    inference: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def png(width: int, height: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (width, height), (200, 10, 10)).save(buf, "PNG")
        return buf.getvalue()

    assert inference.input_fn(png(1024, 1024), "image/png").shape == (3, 32, 32)
    with pytest.raises(inference.ImageTooLargeError):
        inference.input_fn(png(1025, 1024), "image/png")
    monkeypatch.setenv("SCONES_MAX_IMAGE_PIXELS", str(64 * 64))
    assert inference.input_fn(png(64, 64), "image/png").shape == (3, 32, 32)
    with pytest.raises(inference.ImageTooLargeError, match="at most 4096 pixels"):
        inference.input_fn(png(65, 64), "image/png")
    monkeypatch.setenv("SCONES_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="SCONES_MAX_IMAGE_PIXELS"):
        inference.input_fn(png(32, 32), "image/png")


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(
    inference: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libjpeg's DCT scaling decodes a 2048 x 2048 JPEG as 256 x 256: under a cap of 300 x 300,
    where the same image as PNG is refused, and close to the full decode resized."""
    smooth = np.tile(np.linspace(0, 255, 2048, dtype=np.uint8)[None, :, None], (2048, 1, 3))
    monkeypatch.setenv("SCONES_MAX_IMAGE_PIXELS", str(300 * 300))
    with pytest.raises(inference.ImageTooLargeError):
        inference.input_fn(_encode(smooth, "PNG"), "image/png")
    x = inference.input_fn(_encode(smooth, "JPEG"), "image/jpeg")
    full = Image.fromarray(smooth).resize((32, 32), Image.Resampling.BILINEAR)
    assert np.abs(x - np.asarray(full).transpose(2, 0, 1) / 255.0).mean() < 0.02


def test_the_endpoint_answers_too_large_images_with_a_named_400(tiny_model_dir: Path) -> None:
    """Through the endpoint server's model runner: a named client error for the big image,
    and the normal image in the same batch is still answered."""
    from scones.endpoint.model import LoadedModel

    loaded = LoadedModel(tiny_model_dir, "inference_pixel_cap_test")
    big = _png_declaring(4096, 4096, b"\x78\x9c" + b"\x00" * 1000)
    normal = _encode(np.zeros((32, 32, 3), dtype=np.uint8), "PNG")
    outcomes = loaded.run_batch(
        [(big, "image/png", "application/json"), (normal, "image/png", "application/json")]
    )
    assert outcomes[0].status == 400
    assert outcomes[0].message.startswith("ImageTooLargeError: image of 4096x4096 pixels")
    assert outcomes[1].status == 200 and len(json.loads(outcomes[1].body)) == 2
