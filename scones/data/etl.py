"""The ETL: turn a CIFAR-100 python archive into PNG files and SageMaker ``.lst`` manifests.

Output layout (``DIR``)::

    DIR/train/<index>_<class>.png   index = the image's position in the archive's train pickle
    DIR/test/<index>_<class>.png
    DIR/train.lst, DIR/test.lst     tab-separated: running index, label, path relative to DIR
    DIR/classes.json                {"classes": [...], "source": ..., "counts": {...}}

Labels are 0, 1, ... in the order the classes were given. ``upload_tree`` uploads the same layout
to ``s3://BUCKET/PREFIX/``; objects already there with the same size and MD5 are skipped. The
command line (``scones etl``) is ``scones.data.cli``.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import logging
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

LOG = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
OFFICIAL_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
KNOWN_MD5 = {OFFICIAL_URL: OFFICIAL_MD5}
DEFAULT_CLASSES = ("bicycle", "motorcycle")
ARCHIVE_ROOT = "cifar-100-python"
SPLITS = ("train", "test")
CACHE_ENV = "SCONES_CACHE_DIR"


class EtlError(Exception):
    """Base class of the ETL's errors (each has a one-line, actionable message)."""


class ArchiveNotFoundError(EtlError):
    """The archive path does not exist or the URL could not be fetched."""


class CorruptArchiveError(EtlError):
    """The archive is not a readable CIFAR-100 python archive."""


class ChecksumMismatchError(EtlError):
    """A downloaded archive's MD5 differs from the published one."""


class UnknownClassError(EtlError):
    """A requested class name is not one of the archive's fine label names."""


class UploadFailedError(Exception):
    """S3 refused the upload of the ETL output (an AWS error, not bad input)."""


@dataclass(frozen=True)
class Split:
    """One split of the archive: pixels ``[N, 3072]`` uint8, fine labels, original filenames."""

    data: np.ndarray
    fine_labels: list[int]
    filenames: list[str]


@dataclass
class EtlResult:
    """What ``extract`` wrote."""

    output: Path
    classes: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """Jupyter: the classes and the images per split (``scones.notebook.display``)."""
        from scones.notebook.display import etl_html

        return etl_html(self)


@dataclass
class UploadResult:
    """What ``upload_tree`` did."""

    uploaded: int = 0
    skipped: int = 0


def default_cache_dir() -> Path:
    """Where downloaded archives are kept: ``$SCONES_CACHE_DIR`` or ``~/.cache/scones``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "scones")


def md5_file(path: Path, chunk: int = 1 << 20) -> str:
    """Return the hex MD5 of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _urlopen(url: str) -> Any:
    import urllib.request  # deferred: it pulls in http.client, email and ssl

    return urllib.request.urlopen(url)


def download(
    url: str,
    dest: Path,
    *,
    expected_md5: str | None,
    opener: Callable[[str], Any] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` (atomically, with a progress bar) and verify its MD5.

    A file already at ``dest`` with the right MD5 is reused. Raises ``ArchiveNotFoundError`` when
    the download fails and ``ChecksumMismatchError`` when the MD5 differs (the file is removed).
    """
    from tqdm import tqdm

    if dest.is_file() and (expected_md5 is None or md5_file(dest) == expected_md5):
        LOG.info("using cached archive", extra={"path": str(dest)})
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = (opener or _urlopen)(url)
            except Exception as exc:
                raise ArchiveNotFoundError(f"cannot download {url}: {exc}") from None
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc="download", mininterval=_interval()
                ) as bar:
                    while block := response.read(1 << 20):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        actual = digest.hexdigest()
        if expected_md5 is not None and actual != expected_md5:
            raise ChecksumMismatchError(
                f"{url}: MD5 {actual} does not match the published {expected_md5}; "
                "the download is corrupt or not the official archive"
            )
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_archive(
    source: str,
    *,
    cache_dir: Path | None = None,
    expected_md5: str | None = None,
    opener: Callable[[str], Any] | None = None,
) -> Path:
    """Return a local path for ``source`` (a path, or a URL downloaded into the cache).

    The official URL's published MD5 is checked automatically; ``expected_md5`` checks any source.
    """
    if _is_url(source):
        md5 = expected_md5 or KNOWN_MD5.get(source)
        name = source.rstrip("/").rsplit("/", 1)[-1] or "archive.tar.gz"
        return download(
            source, (cache_dir or default_cache_dir()) / name, expected_md5=md5, opener=opener
        )
    path = Path(source).expanduser()
    if not path.is_file():
        raise ArchiveNotFoundError(f"archive not found: {path}")
    if expected_md5 is not None and (actual := md5_file(path)) != expected_md5:
        raise ChecksumMismatchError(f"{path}: MD5 {actual} does not match {expected_md5}")
    return path


def _text(value: Any) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _str_keys(obj: Any, path: Path, member: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise CorruptArchiveError(f"{path}: {member} is not a CIFAR pickle (not a dict)")
    return {_text(k): v for k, v in obj.items()}


def _read_member(tar: tarfile.TarFile, path: Path, name: str) -> dict[str, Any]:
    member = f"{ARCHIVE_ROOT}/{name}"
    try:
        fh = tar.extractfile(member)
    except KeyError:
        raise CorruptArchiveError(
            f"{path}: no {member} inside; is this cifar-100-python?"
        ) from None
    if fh is None:
        raise CorruptArchiveError(f"{path}: {member} is not a file")
    try:
        with fh:
            obj = pickle.load(fh, encoding="bytes")  # noqa: S301 - official CIFAR format
    except Exception as exc:
        raise CorruptArchiveError(
            f"{path}: {member} is unreadable ({type(exc).__name__})"
        ) from None
    return _str_keys(obj, path, member)


def read_archive(path: Path) -> tuple[list[str], dict[str, Split]]:
    """Read the fine label names and the train/test splits of a CIFAR-100 python archive."""
    import numpy as np

    try:
        with tarfile.open(path, "r:*") as tar:
            meta = _read_member(tar, path, "meta")
            raw = {split: _read_member(tar, path, split) for split in SPLITS}
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CorruptArchiveError(f"{path}: not a readable .tar.gz ({exc})") from None
    try:
        names = [_text(n) for n in meta["fine_label_names"]]
        splits = {}
        for split, d in raw.items():
            data = np.asarray(d["data"], dtype=np.uint8)
            labels = [int(v) for v in d["fine_labels"]]
            files = [_text(f) for f in d["filenames"]]
            if (
                data.ndim != 2
                or data.shape[1] != 3072
                or not len(data) == len(labels) == len(files)
            ):
                raise ValueError(f"{split}: data {data.shape}, {len(labels)} labels")
            splits[split] = Split(data=data, fine_labels=labels, filenames=files)
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptArchiveError(f"{path}: unexpected CIFAR-100 content ({exc})") from None
    return names, splits


def resolve_classes(wanted: Sequence[str], names: Sequence[str]) -> list[int]:
    """Map class names to fine label indices; raise ``UnknownClassError`` naming close matches."""
    if not wanted:
        raise UnknownClassError("no classes given; e.g. --classes bicycle,motorcycle")
    if len(set(wanted)) != len(wanted):
        raise UnknownClassError(f"classes given twice: {','.join(wanted)}")
    index = {n: i for i, n in enumerate(names)}
    out = []
    for name in wanted:
        if name not in index:
            close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else f" (valid: {', '.join(names[:8])}, ...)"
            )
            raise UnknownClassError(f"unknown class {name!r}{hint}")
        out.append(index[name])
    return out


def pixels_to_image(row: np.ndarray) -> np.ndarray:
    """Turn one CIFAR row (R plane, G plane, B plane; 32x32 each) into ``[32, 32, 3]`` uint8."""
    import numpy as np

    return np.ascontiguousarray(row.reshape(3, 32, 32).transpose(1, 2, 0))


def _write_png(pixels: np.ndarray, dest: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    if dest.is_file() and dest.read_bytes() == data:
        return
    tmp = dest.with_suffix(".png.part")
    tmp.write_bytes(data)
    tmp.replace(dest)


def extract(
    archive: Path, output: Path, classes: Sequence[str] = DEFAULT_CLASSES, *, progress: bool = True
) -> EtlResult:
    """Write PNGs, ``.lst`` manifests and ``classes.json`` for ``classes`` into ``output``."""
    from tqdm import tqdm

    names, splits = read_archive(archive)
    fine_ids = resolve_classes(list(classes), names)
    label_of = {fine: label for label, fine in enumerate(fine_ids)}
    output.mkdir(parents=True, exist_ok=True)
    result = EtlResult(output=output, classes=list(classes))
    plan = []
    for split in SPLITS:
        s = splits[split]
        plan.append((split, [i for i, f in enumerate(s.fine_labels) if f in label_of]))
    total = sum(len(rows) for _, rows in plan)
    with tqdm(
        total=total, unit="img", desc="etl", disable=not progress, mininterval=_interval()
    ) as bar:
        for split, rows in plan:
            s = splits[split]
            folder = output / split
            if folder.exists():
                shutil.rmtree(folder)  # stale files from another class selection
            folder.mkdir(parents=True)
            lines = []
            counts = dict.fromkeys(classes, 0)
            for n, i in enumerate(rows):
                label = label_of[s.fine_labels[i]]
                rel = f"{split}/{i:05d}_{classes[label]}.png"
                _write_png(pixels_to_image(s.data[i]), output / rel)
                lines.append(f"{n}\t{label}\t{rel}\n")
                counts[classes[label]] += 1
                result.files.append(output / rel)
                bar.update(1)
            (output / f"{split}.lst").write_text("".join(lines), encoding="utf-8")
            result.files.append(output / f"{split}.lst")
            result.counts[split] = counts
    meta = {"classes": list(classes), "source": archive.name, "counts": result.counts}
    (output / "classes.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    result.files.append(output / "classes.json")
    return result


def _local_md5(path: Path) -> str:
    return md5_file(path)


def upload_tree(
    s3: Any,
    root: Path,
    files: Iterable[Path],
    bucket: str,
    prefix: str,
    *,
    progress: bool = True,
) -> UploadResult:
    """Upload ``files`` (under ``root``) to ``s3://bucket/prefix/<relative path>`` idempotently.

    Objects that already exist with the same size and an ETag equal to the file's MD5 are skipped.
    """
    from tqdm import tqdm

    prefix = prefix.strip("/")
    key_prefix = f"{prefix}/" if prefix else ""
    existing: dict[str, tuple[int, str]] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=key_prefix):
        for obj in page.get("Contents", []):
            existing[obj["Key"]] = (int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))
    result = UploadResult()
    items = sorted(files)
    for path in tqdm(
        items, unit="file", desc="upload", disable=not progress, mininterval=_interval()
    ):
        key = key_prefix + path.relative_to(root).as_posix()
        have = existing.get(key)
        if have and have[0] == path.stat().st_size and have[1] == _local_md5(path):
            result.skipped += 1
            continue
        content_type = "image/png" if path.suffix == ".png" else "text/plain"
        if path.suffix == ".json":
            content_type = "application/json"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType=content_type)
        result.uploaded += 1
    return result


def _interval() -> float:
    """Seconds between progress updates: live on a terminal, one line per 30 s in a log."""
    return 0.1 if sys.stderr.isatty() else 30.0
