"""Functions created through the Lambda API with their own zip: unpacked safely, run in a worker.

A function that ``scones deploy --local`` did not bind (see ``scones.twin.moto_binding``) runs
the code of its zip, as Lambda does: the archive moto keeps is unpacked once per code hash
under ``$SCONES_HOME/lambda/code/<function>-<hash>/`` and the handler runs in a fresh Python
process (``python -m scones.twin.lambda_worker``) with that folder as its task root and the
function's own ``Environment.Variables`` (not the union the bound handlers share), the twin's
AWS settings (as Lambda provides credentials and region), Lambda's ``AWS_LAMBDA_*`` variables,
and the function's ``Timeout`` (killed after it: ``Sandbox.Timedout``). A separate process is
what gives each function its own environment and module namespace, and keeps the twin alive
whatever the code does.

Unpacking refuses (``UnsafeArchiveError``, the function's error) a member that is absolute,
climbs out with ``..``, is a link or a device, or makes the archive exceed Lambda's limits
(250 MB unpacked, 20,000 files).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

MAX_UNPACKED_BYTES = 250 * 1024 * 1024  # Lambda's limit for a function's unzipped code
MAX_MEMBERS = 20_000


class UnsafeArchiveError(Exception):
    """A function's zip holds a path, link or size the twin will not unpack."""


class InvalidZipFileException(Exception):
    """The function's code is not a zip archive (AWS's error name for it)."""


def code_dir(home: Path, function_name: str, code_sha256: str) -> Path:
    """Where a function's code with this hash is unpacked."""
    digest = "".join(c for c in code_sha256 if c.isalnum())[:24] or "empty"
    safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in function_name)
    return home / "lambda" / "code" / f"{safe_name}-{digest}"


def _member_target(root: Path, info: zipfile.ZipInfo) -> Path:
    name = PurePosixPath(info.filename.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or info.filename.startswith(("/", "\\")):
        raise UnsafeArchiveError(f"zip member {info.filename!r} leaves the code folder")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a plain file)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchiveError(f"zip member {info.filename!r} is not a plain file or folder")
    target = (root / name).resolve()
    if target != root and root not in target.parents:
        raise UnsafeArchiveError(f"zip member {info.filename!r} leaves the code folder")
    return target


_unpack_lock = threading.Lock()


def unpack(archive: bytes, destination: Path) -> Path:
    """Unpack ``archive`` into ``destination`` (once: an existing folder is reused; concurrent
    first invocations unpack one at a time)."""
    if destination.is_dir():
        return destination
    with _unpack_lock:
        if destination.is_dir():
            return destination
        return _unpack(archive, destination)


def _unpack(archive: bytes, destination: Path) -> Path:
    import io

    try:
        bundle = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile as exc:
        raise InvalidZipFileException(f"the function's code is not a zip file: {exc}") from None
    members = bundle.infolist()
    if len(members) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"zip has {len(members)} members (at most {MAX_MEMBERS})")
    staging = destination.with_name(f"{destination.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    root = staging.resolve()
    written = 0
    try:
        for info in members:
            target = _member_target(root, info)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as source, target.open("wb") as sink:
                while chunk := source.read(1 << 16):
                    written += len(chunk)  # counted as read: a lying header cannot pass
                    if written > MAX_UNPACKED_BYTES:
                        raise UnsafeArchiveError(
                            f"zip unpacks to over {MAX_UNPACKED_BYTES // 2**20} MB"
                        )
                    sink.write(chunk)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


@dataclass(frozen=True)
class WorkerResult:
    """What the worker answered: the payload, whether it is a function error, and the log."""

    payload: Any
    is_error: bool
    log: str


def _lambda_environment(
    fn: Any, task_root: Path, base: Mapping[str, str], region: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env.update(base)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": str(fn.function_name),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size or 128),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": str(fn.handler),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update({str(k): str(v) for k, v in (fn.environment_vars or {}).items()})
    return env


def run(
    fn: Any, event: Any, request_id: str, home: Path, base_env: Mapping[str, str], region: str
) -> WorkerResult:
    """Run moto function ``fn``'s zip handler on ``event`` in a worker process."""
    from scones.twin.lambda_logs import frame
    from scones.twin.lambda_runtime import error_payload

    started = time.monotonic()
    try:
        task_root = unpack(fn.code_bytes, code_dir(home, fn.function_name, fn.code_sha_256))
    except (UnsafeArchiveError, InvalidZipFileException, OSError) as exc:
        return WorkerResult(error_payload(exc, request_id), True, "")
    timeout = float(fn.timeout or 3)
    request = {
        "handler": str(fn.handler),
        "event": event,
        "request_id": request_id,
        "function_name": str(fn.function_name),
        "memory_mb": int(fn.memory_size or 128),
        "timeout_s": timeout,
        "region": region,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scones.twin.lambda_worker"],
            input=json.dumps(request).encode(),
            capture_output=True,
            cwd=task_root,
            env=_lambda_environment(fn, task_root, base_env, region),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        log = (exc.stderr or b"").decode("utf-8", "replace")
        payload = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {request_id} Error: Task timed out after"
            f" {timeout:.2f} seconds",
        }
        return WorkerResult(payload, True, frame(request_id, log, started, request["memory_mb"]))
    log = frame(request_id, done.stderr.decode("utf-8", "replace"), started, request["memory_mb"])
    try:
        answer = json.loads(done.stdout)
        return WorkerResult(answer["payload"], bool(answer["is_error"]), log)
    except (ValueError, KeyError, TypeError):
        payload = {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error:"
            f" exit status {done.returncode}",
        }
        return WorkerResult(payload, True, log)
