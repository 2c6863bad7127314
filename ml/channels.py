"""The training script's input: a SageMaker channel folder as ``scones etl`` writes it.

Each channel (``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_TEST``) holds ``<split>.lst`` (index<TAB>label<TAB>
path relative to the folder), the PNGs it lists and ``classes.json``. A sibling of ``train.py``
in the SageMaker source directory; imports nothing from scones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class TrainingDataError(Exception):
    """The training or test channel does not hold the expected ``.lst`` + PNG layout."""


def find_manifest(channel: Path, split: str) -> Path:
    preferred = channel / f"{split}.lst"
    if preferred.is_file():
        return preferred
    found = sorted(channel.glob("*.lst")) if channel.is_dir() else []
    if len(found) == 1:
        return found[0]
    raise TrainingDataError(
        f"no {split}.lst in {channel}; run `scones etl` and point the channel at its output"
    )


def read_classes(channel: Path) -> list[str]:
    """Class names from ``classes.json`` in the channel folder."""
    path = channel / "classes.json"
    if not path.is_file():
        raise TrainingDataError(f"no classes.json in {channel}")
    return list(json.loads(path.read_text(encoding="utf-8"))["classes"])


def load_split(channel: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a split: images ``[N, 32, 32, 3]`` uint8 and labels ``[N]`` int64."""
    from PIL import Image

    manifest = find_manifest(channel, split)
    images, labels = [], []
    for lineno, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise TrainingDataError(f"{manifest}:{lineno}: expected index<TAB>label<TAB>path")
        path = manifest.parent / parts[2]
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise TrainingDataError(f"{manifest}:{lineno}: cannot read {path} ({exc})") from None
        if rgb.size != (32, 32):
            rgb = rgb.resize((32, 32), Image.Resampling.BILINEAR)
        images.append(np.asarray(rgb, dtype=np.uint8))
        labels.append(int(float(parts[1])))
    if not images:
        raise TrainingDataError(f"{manifest} lists no images")
    return np.stack(images), np.asarray(labels, dtype=np.int64)
