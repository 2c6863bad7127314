"""Which endpoints the local SageMaker Runtime serves: one folder each under ``$SCONES_HOME/endpoints``.

``endpoints/<name>/endpoint.json`` describes the endpoint (variant, model, Data Capture) and
``endpoints/<name>/model/`` holds the extracted ``model.tar.gz`` (``model.onnx``, ``code/...``).
The endpoint server re-reads ``endpoint.json`` when it changes, so registering a new model takes
effect without a restart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.archive import Limits, UnsafeArchiveError, safe_extract
from scones.settings import Settings

ENDPOINT_FILE = "endpoint.json"
MODEL_DIR = "model"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class InvalidEndpointNameError(ValueError):
    """The endpoint or variant name breaks SageMaker's naming rule."""


class InvalidModelArchiveError(ValueError):
    """The model archive is missing, not a tar.gz, unsafe, or lacks ``code/inference.py``."""


class InvalidCaptureConfigError(ValueError):
    """The Data Capture destination or sampling percentage is not valid."""


class EndpointNotFoundError(LookupError):
    """No local endpoint has that name."""


def endpoint_dir(settings: Settings, name: str) -> Path:
    """Return the folder of endpoint ``name`` (it may not exist)."""
    return settings.endpoints_dir / name


def _check_name(kind: str, name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidEndpointNameError(
            f"{kind} name {name!r} is not valid: use 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )


def _check_capture(capture_s3_uri: str | None, sampling_percentage: int) -> None:
    if not 0 <= sampling_percentage <= 100:
        raise InvalidCaptureConfigError(
            f"sampling percentage must be between 0 and 100, got {sampling_percentage}"
        )
    if capture_s3_uri is not None:
        bucket = capture_s3_uri.removeprefix("s3://").split("/", 1)[0]
        if not capture_s3_uri.startswith("s3://") or not bucket:
            raise InvalidCaptureConfigError(
                f"capture destination must look like s3://bucket/prefix, got {capture_s3_uri!r}"
            )


def _extract(model_tar: Path, target: Path, limits: Limits | None = None) -> None:
    """Extract ``model_tar`` into ``target`` after checking every member (``scones.archive``:
    files and folders only, no path leaving ``target``, at most ``limits`` members and bytes)."""
    if not model_tar.is_file():
        raise InvalidModelArchiveError(f"model archive not found: {model_tar}")
    try:
        safe_extract(model_tar, target, limits or Limits())
    except UnsafeArchiveError as exc:
        raise InvalidModelArchiveError(f"{model_tar} refused: {exc}") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InvalidModelArchiveError(f"cannot extract {model_tar}: {exc}") from None
    if not (target / "code" / "inference.py").is_file():
        raise InvalidModelArchiveError(
            f"{model_tar} has no code/inference.py (see the model artifact in docs/architecture.md)"
        )


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def register_endpoint(
    settings: Settings,
    name: str,
    model_tar: Path,
    *,
    variant: str = "AllTraffic",
    capture_s3_uri: str | None,
    sampling_percentage: int = 100,
    limits: Limits | None = None,
) -> Path:
    """Create or replace local endpoint ``name`` serving ``model_tar``; return its folder.

    The archive is extracted into ``endpoints/<name>/model/`` (replacing any previous model),
    then ``endpoint.json`` is written atomically, which is what the running server watches.
    ``capture_s3_uri`` None turns Data Capture off; ``limits`` caps what the archive may
    expand to (default 512 MiB and 10,000 members).
    """
    _check_name("endpoint", name)
    _check_name("variant", variant)
    _check_capture(capture_s3_uri, sampling_percentage)
    folder = endpoint_dir(settings, name)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".model.{uuid.uuid4().hex}.new"
    try:
        _extract(Path(model_tar), staging, limits)
        model = folder / MODEL_DIR
        old = folder / f".model.{uuid.uuid4().hex}.old"
        if model.exists():
            os.replace(model, old)
        os.replace(staging, model)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    description = {
        "name": name,
        "variant": variant,
        "model_data": str(Path(model_tar).resolve()),
        "capture": {
            "enabled": capture_s3_uri is not None,
            "destination_s3_uri": capture_s3_uri,
            "sampling_percentage": sampling_percentage,
        },
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _write_json_atomic(folder / ENDPOINT_FILE, description)
    return folder


def unregister_endpoint(settings: Settings, name: str, *, missing_ok: bool = False) -> None:
    """Delete local endpoint ``name``; raise ``EndpointNotFoundError`` if absent (unless ``missing_ok``)."""
    folder = endpoint_dir(settings, name)
    if not (folder / ENDPOINT_FILE).is_file():
        if missing_ok:
            return
        raise EndpointNotFoundError(f"no local endpoint named {name!r} in {settings.endpoints_dir}")
    # endpoint.json goes first so the server stops serving before the model disappears.
    (folder / ENDPOINT_FILE).unlink()
    shutil.rmtree(folder, ignore_errors=True)


def read_endpoint(settings: Settings, name: str) -> dict[str, Any]:
    """Return the ``endpoint.json`` of ``name``; raise ``EndpointNotFoundError`` if absent."""
    path = endpoint_dir(settings, name) / ENDPOINT_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EndpointNotFoundError(f"no local endpoint named {name!r}") from None
    return data


def list_endpoints(settings: Settings) -> list[dict[str, Any]]:
    """Return every registered endpoint's ``endpoint.json``, sorted by name."""
    if not settings.endpoints_dir.is_dir():
        return []
    found = []
    for path in sorted(settings.endpoints_dir.glob(f"*/{ENDPOINT_FILE}")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # being replaced or removed right now
    return found
