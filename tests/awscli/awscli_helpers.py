"""Small files the AWS CLI tier hands to ``aws`` (tests/awscli)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def png_file(folder: Path) -> Path:
    """A 32 x 32 PNG, what the endpoint's model reads."""
    from PIL import Image

    path = folder / "image.png"
    Image.new("RGB", (32, 32), (200, 40, 40)).save(path)
    return path


def zip_file(folder: Path, files: dict[str, str], name: str = "function.zip") -> Path:
    """A zip holding ``files`` (name -> text), as a user packs a Lambda function."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return path
