"""Run the project's Lambda handlers in-process, the way the Lambda Python runtime does.

Used by the twin's Step Functions server (a function created in moto runs the handler named by
the template, ``scones.twin.moto_binding``) and by ``scones invoke``. A handler that raises becomes a function error shaped
like AWS's: ``{"errorMessage", "errorType", "requestId", "stackTrace"}`` with ``errorType`` the
exception's class name, so a state machine's Catch by error name works unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger("scones.twin.lambda")

Handler = Callable[[Any, Any], Any]

#: Tags ``scones deploy --local`` puts on each function: the file holding its handler (what the
#: twin's Lambda runs, see ``scones.twin.moto_binding``) and the template's logical id.
HANDLER_FILE_TAG = "scones:handler-file"
LOGICAL_ID_TAG = "scones:logical-id"
#: And the folders of its layers (``FunctionSpec.layers``), joined by ``os.pathsep``.
LAYERS_TAG = "scones:layers"


def layers_tag(layers: Sequence[Path]) -> str:
    """The ``LAYERS_TAG`` value for a function's layer folders."""
    return os.pathsep.join(str(folder) for folder in layers)


def layers_from_tag(value: str | None) -> tuple[Path, ...]:
    """The layer folders a ``LAYERS_TAG`` value names (none for a missing or empty tag)."""
    return tuple(Path(part) for part in (value or "").split(os.pathsep) if part)


class HandlerLoadError(Exception):
    """The handler file cannot be imported or does not define the handler function."""


class ConflictingEnvironmentError(Exception):
    """Two functions set one environment variable to different values (they share a process)."""


@dataclass
class LambdaContext:
    """The subset of the Lambda runtime's context object handlers commonly use."""

    function_name: str
    memory_limit_in_mb: int = 128
    timeout_s: float = 3.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.invoked_function_arn = (
            f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_lock = threading.Lock()
_handlers: dict[tuple[str, str], Handler] = {}


def _module_name(path: Path) -> str:
    return "scones_lambda_" + re.sub(r"\W", "_", str(path.resolve()))


def load_handler(handler_file: Path, handler_name: str, layers: Sequence[Path] = ()) -> Handler:
    """Import ``handler_file`` under a module name unique to its path and return the handler.

    Each function's code gets its own module, so three ``app.py`` files never collide. The
    module is imported once per process, as the Lambda runtime does per execution environment.
    ``layers`` (the function's layer folders) go on ``sys.path`` first, as Lambda puts
    ``/opt/python`` there.
    """
    key = (str(handler_file.resolve()), handler_name)
    cached = _handlers.get(key)
    if cached is not None:
        return cached
    with _lock:
        cached = _handlers.get(key)
        if cached is not None:
            return cached
        if not handler_file.is_file():
            raise HandlerLoadError(f"handler file {handler_file} does not exist")
        for folder in layers:
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
        name = _module_name(handler_file)
        spec = importlib.util.spec_from_file_location(name, handler_file)
        if spec is None or spec.loader is None:
            raise HandlerLoadError(f"cannot import {handler_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise HandlerLoadError(
                f"importing {handler_file} failed: {type(exc).__name__}: {exc}"
            ) from exc
        func = getattr(module, handler_name, None)
        if not callable(func):
            raise HandlerLoadError(f"{handler_file} defines no function {handler_name!r}")
        _handlers[key] = func
        return func


def unload_handlers() -> None:
    """Forget every loaded handler module, so the next call imports it again (a cold start):
    for tests that must not share a module, and the clients it keeps, with other tests."""
    with _lock:
        for handler_file, _ in list(_handlers):
            sys.modules.pop(_module_name(Path(handler_file)), None)
        _handlers.clear()


def error_payload(exc: BaseException, request_id: str, *, skip_frames: int = 0) -> dict[str, Any]:
    """The JSON a Python Lambda returns for an unhandled exception (frames of the runtime skipped)."""
    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[skip_frames:])
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": list(stack),  # each entry ends in "\n", as the Python runtime writes it
    }


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation: a JSON-serializable payload and whether it is an error."""

    payload: Any
    is_error: bool

    def body(self) -> bytes:
        """The payload as the Lambda Invoke API returns it."""
        return json.dumps(self.payload).encode("utf-8")


def marshal_error(exc: Exception, request_id: str) -> dict[str, Any]:
    """The Python runtime's error for a result JSON cannot hold (bytes, a set, NaN is fine)."""
    return {
        "errorMessage": f"Unable to marshal response: {exc}",
        "errorType": "Runtime.MarshalError",
        "requestId": request_id,
        "stackTrace": [],
    }


def invoke(handler: Handler, event: Any, context: LambdaContext) -> InvokeResult:
    """Call ``handler(event, context)``; an exception becomes an AWS-shaped function error, a
    result JSON cannot hold ``Runtime.MarshalError`` as the Lambda Python runtime answers."""
    try:
        result = handler(event, context)
    except Exception as exc:  # noqa: BLE001 - every handler failure is reported, as AWS does
        LOG.info("function %s raised %s: %s", context.function_name, type(exc).__name__, exc)
        return InvokeResult(error_payload(exc, context.aws_request_id, skip_frames=1), True)
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        LOG.info("function %s returned what JSON cannot hold: %s", context.function_name, exc)
        return InvokeResult(marshal_error(exc, context.aws_request_id), True)
    return InvokeResult(result, False)


def merge_environments(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Union of the functions' environment variables; refuse one name with two values."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for function, env in sorted(environments.items()):
        for key, value in env.items():
            if key in merged and merged[key] != value:
                raise ConflictingEnvironmentError(
                    f"{function} sets {key}={value!r} but {owner[key]} sets {key}={merged[key]!r};"
                    " the twin runs all functions in one process: use distinct variable names"
                )
            merged[key] = value
            owner.setdefault(key, function)
    return merged


def apply_environment(variables: Mapping[str, str]) -> None:
    """Put the functions' variables into this process's environment (handlers read it per call)."""
    for key, value in variables.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
