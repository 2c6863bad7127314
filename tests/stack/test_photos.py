"""Phone photos through the real offline twin: `scones classify` on a folder of 12 MP photos.

Every photo is classified (none ends in ImageTooLargeError, the old 150,000-byte limit), with the
label the same pictures get at 32 x 32, and Data Capture holds the reduced copies, which
`scones monitor` reads.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from PIL import Image

from scones.cli import main
from scones.data.synthetic import synthetic_images
from scones.settings import Settings
from scones.twin.classify import ClassifyReport, classify

#: (file name, EXIF orientation, format): phone-size photos, most turned as cameras store them.
PHOTOS = [
    ("IMG_0001.JPG", 6, "JPEG"),
    ("IMG_0002.JPG", 1, "JPEG"),
    ("IMG_0003.JPG", 8, "JPEG"),
    ("IMG_0004.JPG", 3, "JPEG"),
    ("IMG_0005.HEIC", 6, "HEIF"),
    ("PXL_0006.JPG", 6, "JPEG"),
]
UNDO = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def upright_picture(index: int) -> Image.Image:
    """A CIFAR-like picture (class ``index % 2``) at 4000 x 3000, with sensor-like noise."""
    rng = np.random.default_rng(300 + index)
    row = synthetic_images(index % 2, 1, rng)[0].reshape(3, 32, 32).transpose(1, 2, 0)
    big = np.asarray(Image.fromarray(row).resize((4000, 3000), Image.Resampling.BICUBIC), np.int16)
    big += rng.normal(0, 4, big.shape).round().astype(np.int16)
    return Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))


def as_stored(upright: Image.Image, orientation: int, fmt: str) -> bytes:
    """The photo as a phone stores it: turned, with the EXIF orientation that undoes it."""
    stored = upright.transpose(UNDO[orientation]) if orientation in UNDO else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, fmt, exif=exif.tobytes(), quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def deployed(twin_settings: Settings, tiny_model_tar: Path) -> dict[str, Any]:
    argv = ["deploy", "--local", "--model", str(tiny_model_tar)]
    assert main([*argv, "--parameter-overrides", "ConfidenceThreshold=0.5"]) == 0
    return dict(json.loads(twin_settings.deployed_file.read_text()))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The phone photos, and the same pictures at 32 x 32 (PNG, upright, endpoint's resize)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    photos, small = tmp_path_factory.mktemp("photos"), tmp_path_factory.mktemp("photos-32")
    for index, (name, orientation, fmt) in enumerate(PHOTOS):
        upright = upright_picture(index)
        (photos / name).write_bytes(as_stored(upright, orientation, fmt))
        tiny = upright.resize((32, 32), Image.Resampling.BILINEAR)  # as ml/serving/inference.py
        tiny.save(small / f"{Path(name).stem}.png")
    return photos, small


def labels(report: ClassifyReport) -> dict[str, int | None]:
    """Image stem -> the label it got."""
    return {Path(r.key).stem: r.label for r in report.results}


def test_a_folder_of_phone_photos_is_classified_like_the_same_pictures_at_32(
    deployed: dict[str, Any], twin_settings: Settings, folders: tuple[Path, Path], tmp_path: Path
) -> None:
    photos, small = folders
    sizes = [p.stat().st_size for p in photos.iterdir()]
    assert min(sizes) > 1_000_000  # phone-size, over the old 150,000-byte limit

    report = classify(twin_settings, str(photos), progress=False)

    counts = report.counts()
    assert counts["total"] == len(PHOTOS) and counts["failed"] == {}, [
        (r.key, r.error, r.cause) for r in report.results if r.outcome == "failed"
    ]
    assert counts["review"] == 0  # threshold 0.5 with two classes: every image gets a label
    at_32 = classify(twin_settings, str(small), progress=False)
    assert at_32.counts()["failed"] == {}
    assert labels(report) == labels(at_32)
    assert set(labels(report).values()) == {0, 1}  # both classes occur: the check can fail

    # the executions carry what the original was; the state held the reduced copy
    sfn = boto3.session.Session().client("stepfunctions")
    first = next(r for r in report.results if Path(r.key).name == "IMG_0001.JPG")
    output = json.loads(sfn.describe_execution(executionArn=first.execution_arn)["output"])
    assert (output["reduced"], output["original_format"]) == (True, "JPEG")
    assert (output["original_width"], output["original_height"]) == (4000, 3000)
    assert "image_data" in output and len(output["image_data"]) < 256 * 1024

    # Data Capture holds the reduced PNGs, and scones monitor reads them
    sent = base64.b64decode(output["image_data"])
    assert captured(deployed, sent), "no capture record holds the reduced image"
    out = tmp_path / "monitor"
    source = f"s3://{deployed['bucket']}/data_capture"
    assert main(["monitor", source, "--output", str(out), "--no-progress"]) == 0
    with (out / "inferences.csv").open() as rows:
        inputs = {int(row["input_bytes"]) for row in csv.DictReader(rows) if row["input_bytes"]}
    assert len(sent) in inputs


def captured(deployed: dict[str, Any], body: bytes, timeout_s: float = 20) -> bool:
    """Whether a Data Capture record on the twin's S3 holds ``body`` as its request."""
    s3 = boto3.session.Session().client("s3")
    wanted = base64.b64encode(body).decode()
    prefix = f"data_capture/{deployed['endpoint_name']}/AllTraffic/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for item in s3.list_objects_v2(Bucket=deployed["bucket"], Prefix=prefix).get(
            "Contents", []
        ):
            text = s3.get_object(Bucket=deployed["bucket"], Key=item["Key"])["Body"].read()
            for line in text.decode().splitlines():
                if json.loads(line)["captureData"]["endpointInput"]["data"] == wanted:
                    with Image.open(io.BytesIO(body)) as image:
                        return image.size == (240, 180)
        time.sleep(0.5)
    return False
