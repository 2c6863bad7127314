"""The twin's Lambda: moto's Docker-free backend, running each function's real handler in-process.

Imports moto (about 0.6 s): import this module inside the functions that need it.

moto has two Lambda backends: one runs the code in Docker, the other ("simple", chosen by the
config ``{"lambda": {"use_docker": False}}``) is moto's ``awslambda_simple``, a subclass of its
``LambdaBackend`` that never runs code and answers a canned payload. Running the handler in the
server's own process is an open request upstream (getmoto/moto#9916, earlier #5721), so we do
what ``awslambda_simple`` does: ``BoundLambdaBackend`` subclasses ``LambdaSimpleBackend`` and
overrides ``invoke`` only (create, update, tag, list, delete stay moto's).

A function created by ``scones deploy --local`` carries the tags ``scones:handler-file`` and
``scones:layers``; its handler (the Handler's function name in that file, its layer folders on
``sys.path``) runs in-process with the union of all functions' Environment variables in effect. A raised exception becomes a function error
(``X-Amz-Function-Error: Unhandled``, payload ``{"errorType": <class name>, "errorMessage",
"requestId", "stackTrace"}``), so an ASL Catch by error name works as on AWS.

``install()`` puts the class where moto looks it up: moto resolves the Docker-free backend on
every call (``moto.awslambda.utils.get_backend`` imports ``lambda_simple_backends`` from
``moto.awslambda_simple.models`` each time, as does moto-api's canned-result queue), so one
module attribute, a ``BackendDict`` of our class, binds the HTTP API, the interpreter's Lambda
tasks and moto's event sources alike. It is the only moto name the binding replaces.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.utils import get_backend
from moto.awslambda_simple import models as simple_models
from moto.core.base_backend import BackendDict
from moto.core.config import default_user_config

from scones.twin import lambda_runtime, moto_targets
from scones.twin.lambda_runtime import HANDLER_FILE_TAG

LOG = logging.getLogger("scones.twin.moto")

DEFAULT_ACCOUNT = "123456789012"

_install_lock = threading.Lock()


class FunctionNotBoundError(Exception):
    """A function exists in moto but was not deployed by scones (no handler file tag)."""


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
        """All functions' Environment variables (they share this process); conflicts refused."""
        envs = {fn.function_name: dict(fn.environment_vars or {}) for fn in self.list_functions()}
        return lambda_runtime.merge_environments(envs)

    def run_bound(self, fn: Any, event: Any) -> lambda_runtime.InvokeResult:
        """Run the handler bound to moto function ``fn``; never raises for handler errors."""
        context = lambda_runtime.LambdaContext(
            function_name=fn.function_name,
            memory_limit_in_mb=int(fn.memory_size or 128),
            timeout_s=float(fn.timeout or 3),
            region=self.region_name,
            account_id=self.account_id,
        )
        try:
            handler_file = (fn.tags or {}).get(HANDLER_FILE_TAG)
            if not handler_file:
                raise FunctionNotBoundError(
                    f"function {fn.function_name} has no {HANDLER_FILE_TAG} tag: deploy it with"
                    " `scones deploy --local`"
                )
            lambda_runtime.apply_environment(self.environment_union())
            handler = lambda_runtime.load_handler(
                Path(handler_file),
                str(fn.handler).rpartition(".")[2],
                lambda_runtime.layers_from_tag((fn.tags or {}).get(lambda_runtime.LAYERS_TAG)),
            )
        except Exception as exc:  # noqa: BLE001 - reported as the function's error, as AWS would
            return lambda_runtime.InvokeResult(
                lambda_runtime.error_payload(exc, context.aws_request_id), True
            )
        return lambda_runtime.invoke(handler, event, context)

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
        result = self.run_bound(fn, event)
        if result.is_error:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-executed-version"] = "$LATEST"
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
