"""Ship the endpoint's Python dependencies inside ``model.tar.gz``, so it starts without a network.

AWS's PyTorch inference container runs ``python -m pip install -r /opt/ml/model/code/requirements.txt``
when it starts (``sagemaker_inference.model_server._install_requirements``, called by
``sagemaker_pytorch_serving_container.torchserve.start_torchserve``). From PyPI that fails in a VPC
without a NAT gateway or with network isolation, and two instances may get different versions.
``scones sagemaker deploy`` therefore repacks the model with:

    code/requirements.txt   --no-index, --find-links wheels, then the archive's own pins
    code/wheels/*.whl       every wheel the pins need on the container: CPython 3.11,
                            manylinux x86_64 up to glibc 2.35 (Ubuntu 22.04), binary only

pip resolves a relative ``--find-links`` inside a requirements file against that file's folder
when the folder exists (``pip/_internal/req/req_file.py``), so ``wheels`` is
``/opt/ml/model/code/wheels`` whatever the container's working directory. Wheels come from
``pip download`` into a cache (``$SCONES_CACHE_DIR/wheels/...``), fetched once per set of pins.
The wheelhouse is complete for a bare Python (numpy and Pillow included): pip keeps what the
container already has when it satisfies a pin, and installs the shipped wheel otherwise.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from scones.archive import UnsafeArchiveError, checked_members, read_member
from scones.aws import DLC_ARCH, DLC_GLIBC, DLC_PYTHON, S3Location, SageMakerError
from scones.training.local import clean_tarinfo

REQUIREMENTS = "code/requirements.txt"
WHEELS = "code/wheels"
COMPLETE = "COMPLETE"  # marker in a cache folder: the wheels it lists were all fetched
MAX_REQUIREMENTS_BYTES = 1024 * 1024
Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class WheelhouseError(SageMakerError):
    """The wheels could not be fetched, or a wheel folder or model archive is unusable."""


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file: no comments, blanks or pip options."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def offline_requirements(lines: Sequence[str]) -> str:
    """``code/requirements.txt`` that installs ``lines`` from ``code/wheels`` only."""
    return (
        "# Installed by SageMaker's inference container at start, offline: the wheels are in\n"
        "# code/wheels (pip resolves --find-links against this file's folder).\n"
        "--no-index\n"
        "--find-links wheels\n" + "".join(f"{line}\n" for line in lines)
    )


def dlc_platforms() -> list[str]:
    """The platform tags pip accepts on the container (manylinux up to its glibc)."""
    major, minor = DLC_GLIBC
    tags = [f"manylinux_{major}_{m}_{DLC_ARCH}" for m in range(minor, 16, -1)]
    return tags + [f"manylinux{name}_{DLC_ARCH}" for name in ("2014", "2010", "1")]


def pip_download_command(requirements: Path, dest: Path) -> list[str]:
    """``pip download`` of the wheels for the container's Python and platform."""
    abi = "cp" + DLC_PYTHON.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check"]
    command += ["--only-binary=:all:", "--python-version", DLC_PYTHON]
    command += ["--implementation", "cp", "--abi", abi]
    for tag in dlc_platforms():
        command += ["--platform", tag]
    return command + ["--dest", str(dest), "--requirement", str(requirements)]


def wheel_cache_dir(lines: Sequence[str], cache_root: Path) -> Path:
    """The cache folder of the wheels for ``lines`` on the container's Python and platform."""
    key = "\n".join([DLC_PYTHON, *dlc_platforms(), *lines]).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]
    return cache_root / "wheels" / f"cp{DLC_PYTHON.replace('.', '')}-{DLC_ARCH}-{digest}"


def wheel_files(folder: Path) -> list[Path]:
    """The ``*.whl`` files of ``folder``; ``WheelhouseError`` when there are none."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if not wheels:
        raise WheelhouseError(f"no wheels (*.whl) in {folder}")
    return wheels


def ensure_wheels(
    lines: Sequence[str], cache_root: Path | None = None, *, run: Runner = subprocess.run
) -> Path:
    """The cached wheel folder for ``lines``, fetching it with ``pip download`` the first time."""
    if cache_root is None:
        from scones.data.etl import default_cache_dir

        cache_root = default_cache_dir()
    folder = wheel_cache_dir(lines, cache_root)
    if (folder / COMPLETE).is_file():
        return folder
    part = folder.with_name(folder.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    (part / "requirements.in").write_text("".join(f"{line}\n" for line in lines))
    done = run(
        pip_download_command(part / "requirements.in", part),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise WheelhouseError(
            f"pip download of {', '.join(lines)} for CPython {DLC_PYTHON} {DLC_ARCH} failed "
            f"({tail}); pass --wheels DIR with those wheels, or --no-wheels to let the "
            "container install from PyPI"
        )
    names = [p.name for p in wheel_files(part)]
    (part / COMPLETE).write_text("".join(f"{name}\n" for name in names))
    if folder.exists():  # another run finished first
        shutil.rmtree(part, ignore_errors=True)
        return folder
    part.rename(folder)
    return folder


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = clean_tarinfo(tarfile.TarInfo(name))
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def archive_requirements(model_tar: Path) -> tuple[list[str], bool]:
    """The requirement lines of ``model_tar``'s ``code/requirements.txt`` and whether the
    archive already holds ``code/wheels``. Every member is checked (``scones.archive``: files
    and folders only, safe names, bounded size); an unsafe archive is a ``WheelhouseError``."""
    try:
        with tarfile.open(model_tar) as tar:
            names = [name for name, _ in checked_members(tar)]
        data = read_member(model_tar, REQUIREMENTS, MAX_REQUIREMENTS_BYTES)
    except UnsafeArchiveError as exc:
        raise WheelhouseError(f"{model_tar} is not a safe model.tar.gz ({exc})") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise WheelhouseError(f"{model_tar} is not a readable model.tar.gz ({exc})") from exc
    if data is None:
        raise WheelhouseError(f"{model_tar} has no {REQUIREMENTS}")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise WheelhouseError(f"{model_tar}: {REQUIREMENTS} is not UTF-8 text") from None
    return requirement_lines(text), any(n.startswith(WHEELS + "/") for n in names)


def repack_with_wheels(src: Path, dest: Path, wheels: Path) -> Path:
    """Copy model archive ``src`` to ``dest`` with ``code/wheels/`` holding ``wheels``' files and
    an offline ``code/requirements.txt`` (same pins); other members unchanged."""
    lines, _ = archive_requirements(src)
    files = wheel_files(wheels)
    tmp = dest.with_name(dest.name + ".part")
    with tarfile.open(src) as old, tarfile.open(tmp, "w:gz") as new:
        # archive_requirements checked every member already: files and folders, safe names
        for name, member in checked_members(old):
            if name in (REQUIREMENTS, WHEELS) or name.startswith(WHEELS + "/"):
                continue
            data = old.extractfile(member) if member.isfile() else None
            new.addfile(clean_tarinfo(member), data)
        _add_bytes(new, REQUIREMENTS, offline_requirements(lines).encode())
        for wheel in files:
            new.add(wheel, arcname=f"{WHEELS}/{wheel.name}", filter=clean_tarinfo)
    tmp.replace(dest)
    return dest


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key:
        raise WheelhouseError(f"not an S3 object URI: {uri!r}")
    return bucket, key


def offline_model(
    s3: Any,
    model_data: str,
    where: S3Location,
    name: str,
    *,
    wheels: Path | None = None,
    cache_root: Path | None = None,
    run: Runner = subprocess.run,
) -> str:
    """Repack ``model_data`` (``s3://.../model.tar.gz``) with its wheels and upload it to
    ``s3://bucket/prefix/models/<name>/model.tar.gz``; return that URI (``model_data`` itself
    when the archive already ships its wheels). ``wheels`` replaces the fetched cache folder."""
    bucket, key = _split_s3(model_data)
    with tempfile.TemporaryDirectory(prefix="scones-repack-") as tmp:
        src, dest = Path(tmp) / "src.tar.gz", Path(tmp) / "model.tar.gz"
        s3.download_file(bucket, key, str(src))
        lines, shipped = archive_requirements(src)
        if shipped:
            return model_data
        folder = wheels or ensure_wheels(lines, cache_root, run=run)
        repack_with_wheels(src, dest, folder)
        out_key = where.key("models", name, "model.tar.gz")
        s3.upload_file(str(dest), where.bucket, out_key)
    return f"s3://{where.bucket}/{out_key}"
