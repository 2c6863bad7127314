"""The twin's Lambda: moto's Docker-free backend, running each function's real handler in-process.

Imports moto (about 0.6 s): import this module inside the functions that need it.

moto has two Lambda backends: one runs the code in Docker, the other ("simple", chosen by the
config ``{"lambda": {"use_docker": False}}``) is moto's ``awslambda_simple``, a subclass of its
``LambdaBackend`` that never runs code and answers a canned payload. Running the handler in the
server's own process is an open request upstream (getmoto/moto#9916, earlier #5721), so we do
what ``awslambda_simple`` does: ``BoundLambdaBackend`` subclasses ``LambdaSimpleBackend`` and
overrides ``invoke`` only (create, update, tag, list, delete stay moto's).

Which code runs: a function that ``scones deploy --local`` bound runs the handler file of the
template (the Handler's function in that file, its layer folders on ``sys.path``) in-process,
with the union of all bound functions' Environment variables in effect. The binding is never
read from the function's tags (anyone who can call the API can set a tag): deploy records it
in ``$SCONES_HOME/lambda/bindings.json`` (``write_bindings``), which the server reads, with the
code hash deploy uploaded (new code through ``UpdateFunctionCode`` runs that code instead);
in a process that serves moto itself (tests, the server's own restore) ``bind`` records it in
memory. Any other function runs the code of its own zip (``scones.twin.lambda_zip``), as Lambda
does. A raised exception becomes a function error (``X-Amz-Function-Error: Unhandled``, payload
``{"errorType": <class name>, "errorMessage", "requestId", "stackTrace"}``), so an ASL Catch by
error name works as on AWS; each invocation's prints and logs are its log
(``scones.twin.lambda_logs``), returned base64 in ``X-Amz-Log-Result`` with ``LogType=Tail``.

``install()`` puts the class where moto looks it up: moto resolves the Docker-free backend on
every call (``moto.awslambda.utils.get_backend`` imports ``lambda_simple_backends`` from
``moto.awslambda_simple.models`` each time, as does moto-api's canned-result queue), so one
module attribute, a ``BackendDict`` of our class, binds the HTTP API, the interpreter's Lambda
tasks and moto's event sources alike. It is the only moto name the binding replaces.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.utils import get_backend
from moto.awslambda_simple import models as simple_models
from moto.core.base_backend import BackendDict
from moto.core.config import default_user_config

from scones.twin import lambda_logs, lambda_runtime, moto_targets

LOG = logging.getLogger("scones.twin.moto")

DEFAULT_ACCOUNT = "123456789012"

_install_lock = threading.Lock()


@dataclass(frozen=True)
class Binding:
    """A function deployed by ``scones deploy --local``: its handler file, layers, code hash."""

    handler_file: Path
    layers: tuple[Path, ...] = ()
    code_sha256: str | None = None  # None: whatever code moto holds

    def to_json(self) -> dict[str, Any]:
        """The entry ``write_bindings`` stores."""
        return {
            "handler_file": str(self.handler_file),
            "layers": [str(p) for p in self.layers],
            "code_sha256": self.code_sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Binding:
        """An entry of ``bindings.json``."""
        return cls(
            Path(data["handler_file"]),
            tuple(Path(p) for p in data.get("layers") or ()),
            data.get("code_sha256"),
        )


_memory: dict[str, Binding] = {}
_home: list[Path] = []
_file_cache: dict[str, Any] = {"key": None, "bindings": {}}


def bindings_file(home: Path) -> Path:
    """Where ``scones deploy --local`` records the functions it bound."""
    return home / "lambda" / "bindings.json"


def write_bindings(home: Path, bindings: dict[str, Binding]) -> None:
    """Record the deployed functions' bindings (replacing the previous deployment's)."""
    path = bindings_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    data = {name: binding.to_json() for name, binding in sorted(bindings.items())}
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def bind(function_name: str, binding: Binding) -> None:
    """Bind a function in this process (where moto itself runs: tests, the server)."""
    _memory[function_name] = binding


def configure_home(home: Path) -> None:
    """The state folder whose ``bindings.json`` this process's Lambda honours."""
    _home[:] = [home]


def _file_bindings() -> dict[str, Binding]:
    if not _home:
        return {}
    path = bindings_file(_home[0])
    try:
        info = path.stat()
    except OSError:
        return {}
    key = (info.st_mtime_ns, info.st_size)
    if _file_cache["key"] != key:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            parsed = {str(k): Binding.from_json(v) for k, v in raw.items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOG.warning("ignoring unreadable %s: %s", path, exc)
            parsed = {}
        _file_cache.update(key=key, bindings=parsed)
    return dict(_file_cache["bindings"])


def binding_for(fn: Any) -> Binding | None:
    """The binding of moto function ``fn`` when deploy made it and its code is deploy's."""
    binding = _memory.get(fn.function_name) or _file_bindings().get(fn.function_name)
    if binding is None:
        return None
    if binding.code_sha256 is not None and binding.code_sha256 != fn.code_sha_256:
        return None  # new code since deploy: run that code, as Lambda would
    return binding


def bound_names(names: Sequence[str]) -> list[str]:
    """Which of ``names`` are bound (memory or file)."""
    on_file = _file_bindings()
    return [n for n in names if n in _memory or n in on_file]


def decode_event(body: Any) -> Any:
    """The invocation payload as JSON (an empty body is ``{}``, as Lambda treats it)."""
    if body is None or body in (b"", ""):
        return {}
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else str(body)
    return json.loads(text)


def _client_error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())},
        },
        "Invoke",
    )


class BoundLambdaBackend(simple_models.LambdaSimpleBackend):
    """moto's Docker-free Lambda backend whose ``invoke`` runs the function's real handler."""

    def environment_union(self) -> dict[str, str]:
        """The bound functions' Environment variables (they share this process); conflicts
        refused. Functions running their own zip have their own environment."""
        functions = list(self.list_functions())
        bound = set(bound_names([fn.function_name for fn in functions]))
        envs = {
            fn.function_name: dict(fn.environment_vars or {})
            for fn in functions
            if fn.function_name in bound
        }
        return lambda_runtime.merge_environments(envs)

    def run_bound(self, fn: Any, event: Any) -> lambda_runtime.InvokeResult:
        """Run moto function ``fn`` on ``event``; never raises for handler errors."""
        return self.run_logged(fn, event)[0]

    def run_logged(self, fn: Any, event: Any) -> tuple[lambda_runtime.InvokeResult, str]:
        """Run ``fn`` (its bound handler in-process, else its zip in a worker); return the
        result and the invocation's log."""
        context = lambda_runtime.LambdaContext(
            function_name=fn.function_name,
            memory_limit_in_mb=int(fn.memory_size or 128),
            timeout_s=float(fn.timeout or 3),
            region=self.region_name,
            account_id=self.account_id,
        )
        binding = binding_for(fn)
        if binding is None:
            return self._run_zip(fn, event, context.aws_request_id)
        with lambda_logs.capture(context.aws_request_id, context.memory_limit_in_mb) as log:
            try:
                lambda_runtime.apply_environment(self.environment_union())
                handler = lambda_runtime.load_handler(
                    binding.handler_file, str(fn.handler).rpartition(".")[2], binding.layers
                )
            except Exception as exc:  # noqa: BLE001 - the function's error, as AWS reports it
                result = lambda_runtime.InvokeResult(
                    lambda_runtime.error_payload(exc, context.aws_request_id), True
                )
            else:
                result = lambda_runtime.invoke(handler, event, context)
            if result.is_error:  # the Python runtime logs an unhandled error, so does the twin
                error = result.payload
                trace = "".join(error.get("stackTrace") or [])
                print(f"[ERROR] {error.get('errorType')}: {error.get('errorMessage')}\n{trace}")
        return result, log.text

    def _run_zip(
        self, fn: Any, event: Any, request_id: str
    ) -> tuple[lambda_runtime.InvokeResult, str]:
        from scones.settings import Settings
        from scones.twin import lambda_zip

        settings = Settings.from_env()
        home = _home[0] if _home else settings.home
        base = {
            **settings.aws_env(),
            **{k: v for k, v in os.environ.items() if k.startswith("AWS_")},
        }
        done = lambda_zip.run(fn, event, request_id, home, base, self.region_name)
        return lambda_runtime.InvokeResult(done.payload, done.is_error), done.log

    def invoke(
        self,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        """moto's Invoke API: run the bound handler (``Event``: in a thread, ``DryRun``: not)."""
        fn = self.get_function(function_name, qualifier)
        event = decode_event(body)
        invocation_type = (headers or {}).get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            threading.Thread(target=self.run_bound, args=(fn, event), daemon=True).start()
            return b""
        result, log = self.run_logged(fn, event)
        if result.is_error:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-executed-version"] = "$LATEST"
        if (headers or {}).get("X-Amz-Log-Type") == "Tail":
            lambda_logs.attach(response_headers, log)
        return result.body()

    def invoke_direct(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """What ``lambda_client.invoke(**parameters)`` returns (Payload decoded), without HTTP."""
        try:
            fn = self.get_function(str(parameters["FunctionName"]), parameters.get("Qualifier"))
        except UnknownFunctionException as exc:
            raise _client_error("ResourceNotFoundException", exc.message, 404) from None
        try:
            event = decode_event(parameters.get("Payload"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _client_error("InvalidRequestContentException", str(exc), 400) from None
        result = self.run_bound(fn, event)
        response: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": result.payload,
        }
        if result.is_error:
            response["FunctionError"] = "Unhandled"
        return response


def backend_for(function_arn_or_name: str, region: str) -> Any:
    """moto's current Lambda backend (config-aware) for a function ARN's account and region,
    or for a plain name in ``region``."""
    account = DEFAULT_ACCOUNT
    parts = function_arn_or_name.split(":")
    if function_arn_or_name.startswith("arn:") and len(parts) > 4:
        region, account = parts[3] or region, parts[4] or account
    return get_backend(account, region)


def installed() -> bool:
    """Whether ``install()`` has made moto's Docker-free Lambda ours."""
    return simple_models.lambda_simple_backends.backend is BoundLambdaBackend


def install() -> None:
    """Make ``BoundLambdaBackend`` moto's Docker-free Lambda backend, once per process.

    Functions created before this lived in moto's own dictionary and are not carried over:
    install before creating functions (the sfn server does it before it listens).
    """
    with _install_lock:
        if installed():
            return
        ours = BackendDict(BoundLambdaBackend, "lambda")
        moto_targets.rebind(simple_models, "lambda_simple_backends", ours, importers="moto")
        LOG.debug("moto Lambda bound to in-process handlers")


def moto_config() -> dict[str, Any]:
    """The moto configuration the twin needs: ASL interpreter on, Lambda without Docker."""
    return {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False},
    }


def configure_moto() -> None:
    """Turn the interpreter on and Docker off for this process (what POST /moto-api/config does)."""
    for service, values in moto_config().items():
        default_user_config.setdefault(service, {}).update(values)  # type: ignore[misc]
