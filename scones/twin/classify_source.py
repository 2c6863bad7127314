"""Where ``scones classify`` finds its images: an S3 prefix, or a local folder uploaded first.

A folder goes to the same prefix on every run (``folder_prefix``), and files already there
with the same bytes are not uploaded again, so a re-run finds its objects and their
executions. ``Progress`` is the progress display: a bar on a terminal, a few lines elsewhere.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from scones.errors import CommandError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif"}
)


def local_images(folder: Path) -> tuple[list[Path], int]:
    """The image files under ``folder`` (sorted) and how many other files were skipped."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, len(files) - len(images)


class Progress:
    """A progress bar on a terminal; elsewhere (logs, CI) a line at each quarter, not per step."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.done, self._bar, self._next = total, desc, 0, None, 0.25
        self._lines = enabled and not sys.stderr.isatty()
        if enabled and not self._lines:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more images done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines and self.total and self.done / self.total >= self._next:
            print(f"{self.desc}: {self.done}/{self.total} images", file=sys.stderr, flush=True)
            while self._next <= self.done / self.total:
                self._next += 0.25

    def close(self) -> None:
        """Close the bar (no-op for lines)."""
        if self._bar is not None:
            self._bar.close()


def upload_images(
    s3: Any, bucket: str, prefix: str, folder: Path, files: list[Path], progress: bool
) -> int:
    """Upload ``files`` (under ``folder``) to ``s3://bucket/prefix``, keeping relative paths;
    files already there with the same bytes (MD5 = the ETag of a single-part upload) are not
    uploaded again (a resumed run). Return how many were uploaded."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    from scones.twin import bridge

    there = {o.key: o.etag for o in bridge.list_objects(s3, bucket, prefix)}

    def put(path: Path) -> int:
        key, body = prefix + path.relative_to(folder).as_posix(), path.read_bytes()
        if there.get(key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            return 0
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return 1

    bar = Progress(len(files), "upload", progress)
    uploaded = 0
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            for count in pool.map(put, files):
                uploaded += count
                bar.update(1)
    finally:
        bar.close()
    return uploaded


def folder_prefix(incoming_prefix: str, folder: Path) -> str:
    """Where a local folder's images go: ``<incoming><name>-<digest of its path>/``, the same
    for every run of that folder, so a re-run finds its objects (and their executions)."""
    import hashlib

    path = str(folder.resolve())
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", folder.resolve().name)[:40] or "folder"
    return f"{incoming_prefix}{stem}-{hashlib.sha256(path.encode()).hexdigest()[:10]}/"


def source_prefix(
    s3: Any, deployed: dict[str, Any], source: str, progress: bool
) -> tuple[str, str, int]:
    """(bucket, prefix, skipped files) of ``source``; a local folder is uploaded first."""
    if source.startswith("s3://"):
        bucket, _, prefix = source[5:].partition("/")
        if not bucket:
            raise CommandError(f"not an S3 URI: {source!r} (expected s3://bucket/prefix)")
        return bucket, prefix, 0
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise CommandError(f"not a folder or s3:// URI: {source}")
    files, skipped = local_images(folder)
    if not files:
        raise CommandError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    bucket = deployed["bucket"]
    prefix = folder_prefix(deployed["incoming_prefix"], folder)
    upload_images(s3, bucket, prefix, folder, files, progress)
    return bucket, prefix, skipped
