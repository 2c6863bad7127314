"""Runtime patches to moto 5.2.5 that make it the twin's Lambda + Step Functions service.

moto is pinned (``moto==5.2.5``) because these patches touch its internals. ``apply()`` is
idempotent and does nothing at import time. What it changes, and why:

* **Lambda binding** (``LambdaSimpleBackend.invoke``): a function created in moto runs the real
  handler named by its ``scones:handler-file`` / Handler (set by ``scones deploy --local`` from
  template.yaml), in-process, with the union of all functions' Environment variables in effect.
  A raised exception becomes a function error (``X-Amz-Function-Error: Unhandled``, payload
  ``{"errorType": <class name>, "errorMessage", ...}``), so the ASL's Catch by name works.
* **Direct Lambda tasks**: ``arn:aws:states:::lambda:invoke`` tasks and function-ARN tasks (both
  go through ``_invoke_lambda_function`` in moto 5.2.5) call
  the Lambda backend directly instead of through botocore + HTTP back into this server. Results,
  ``FunctionError`` and missing-function errors keep their shape (``Lambda.<Code>`` errors).
* **One boto3 client per service** for the interpreter's other service integrations.
* **Cached JSONPath parses** (parsed expressions are immutable).
* **Pooled parsed definitions**: an execution borrows a parsed program for its definition and
  returns it when it ends, so no two running executions share one (state lives in the
  execution's environment, but the pool removes any doubt). Timed-out programs are dropped.
* **Cached service dispatch, no Flask debug mode**: moto's server lists its own package folder
  on every request to find the service (computed once now), and runs Flask in debug mode,
  which creates a class per request with a body (memory that only grows).
* **Bounded memory**: finished executions beyond ``keep_executions`` per state machine are
  evicted (oldest first; running ones are never evicted), and dead worker threads are dropped
  from moto's ``TMP_THREADS`` list, which otherwise grows by several threads per execution;
  the per-execution copy of the state machine is dropped from moto's ``instances_tracked``.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from scones.twin import lambda_runtime

LOG = logging.getLogger("scones.twin.moto")

HANDLER_FILE_TAG = "scones:handler-file"
LOGICAL_ID_TAG = "scones:logical-id"
DEFAULT_KEEP_EXECUTIONS = 1000

_applied: set[str] = set()
_apply_lock = threading.Lock()
_keep_executions = DEFAULT_KEEP_EXECUTIONS


class FunctionNotBoundError(Exception):
    """A function exists in moto but was not deployed by scones (no handler file tag)."""


# --------------------------------------------------------------------------- Lambda binding


def _environment_union(backend: Any) -> dict[str, str]:
    envs = {fn.function_name: dict(fn.environment_vars or {}) for fn in backend.list_functions()}
    return lambda_runtime.merge_environments(envs)


def run_function(backend: Any, fn: Any, event: Any) -> lambda_runtime.InvokeResult:
    """Run the handler bound to moto function ``fn`` with ``event``; never raises for handler errors."""
    context = lambda_runtime.LambdaContext(
        function_name=fn.function_name,
        memory_limit_in_mb=int(fn.memory_size or 128),
        timeout_s=float(fn.timeout or 3),
        region=backend.region_name,
        account_id=backend.account_id,
    )
    try:
        handler_file = (fn.tags or {}).get(HANDLER_FILE_TAG)
        if not handler_file:
            raise FunctionNotBoundError(
                f"function {fn.function_name} has no {HANDLER_FILE_TAG} tag: deploy it with"
                " `scones deploy --local`"
            )
        lambda_runtime.apply_environment(_environment_union(backend))
        handler = lambda_runtime.load_handler(
            Path(handler_file), str(fn.handler).rpartition(".")[2]
        )
    except Exception as exc:  # noqa: BLE001 - reported as the function's error, as AWS would
        return lambda_runtime.InvokeResult(
            lambda_runtime.error_payload(exc, context.aws_request_id), True
        )
    return lambda_runtime.invoke(handler, event, context)


def _decode_event(body: Any) -> Any:
    if body is None or body in (b"", ""):
        return {}
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else str(body)
    return json.loads(text)


def _bound_invoke(
    self: Any,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes | None:
    fn = self.get_function(function_name, qualifier)
    event = _decode_event(body)
    invocation_type = (headers or {}).get("X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        threading.Thread(target=run_function, args=(self, fn, event), daemon=True).start()
        return b""
    result = run_function(self, fn, event)
    if result.is_error:
        response_headers["x-amz-function-error"] = "Unhandled"
    response_headers["x-amz-executed-version"] = "$LATEST"
    return result.body()


def _lambda_backend(function_arn_or_name: str, region: str) -> Any:
    from moto.awslambda_simple.models import lambda_simple_backends

    account = "123456789012"
    parts = function_arn_or_name.split(":")
    if function_arn_or_name.startswith("arn:") and len(parts) > 4:
        region, account = parts[3] or region, parts[4] or account
    return lambda_simple_backends[account][region]


def _client_error(code: str, message: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": str(uuid.uuid4())},
        },
        "Invoke",
    )


def invoke_direct(parameters: dict[str, Any], region: str) -> dict[str, Any]:
    """Invoke a Lambda the way ``lambda_client.invoke(**parameters)`` would, without HTTP."""
    from moto.awslambda.exceptions import UnknownFunctionException

    name = str(parameters["FunctionName"])
    backend = _lambda_backend(name, region)
    try:
        fn = backend.get_function(name, parameters.get("Qualifier"))
    except UnknownFunctionException as exc:
        raise _client_error("ResourceNotFoundException", exc.message, 404) from None
    try:
        event = _decode_event(parameters.get("Payload"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _client_error("InvalidRequestContentException", str(exc), 400) from None
    result = run_function(backend, fn, event)
    response: dict[str, Any] = {
        "StatusCode": 200,
        "ExecutedVersion": "$LATEST",
        "Payload": result.payload,
    }
    if result.is_error:
        response["FunctionError"] = "Unhandled"
    return response


def _patch_lambda() -> None:
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    LambdaSimpleBackend.invoke = _bound_invoke  # type: ignore[method-assign]

    def _invoke_lambda_function(parameters: dict, region: str, state_credentials: Any) -> dict:
        return invoke_direct(parameters, region)

    lambda_eval_utils._invoke_lambda_function = _invoke_lambda_function


# --------------------------------------------------------------------------- interpreter speed


def _patch_clients() -> None:
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    cache: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def cached_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return original(region=region, service=service, state_credentials=state_credentials)
        key = (region, service)
        client = cache.get(key)
        if client is None:
            with lock:
                client = cache.get(key)
                if client is None:
                    client = original(region=region, service=service)
                    cache[key] = client
        return client

    for name, module in list(sys.modules.items()):
        if (
            name.startswith("moto.stepfunctions.parser")
            and getattr(module, "boto_client_for", None) is original
        ):
            module.boto_client_for = cached_client_for  # type: ignore[attr-defined]


def _patch_jsonpath() -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)


class _ProgramPool:
    """Parsed ASL programs per definition; each running execution holds its own."""

    def __init__(self, per_definition: int = 64) -> None:
        self._free: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self._per_definition = per_definition

    def take(self, definition: str) -> Any:
        with self._lock:
            free = self._free.get(definition)
            if free:
                return free.pop()
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

        return AmazonStateLanguageParser.parse(definition)[0]

    def give(self, definition: str, program: Any) -> None:
        with self._lock:
            if len(self._free) > 32 and definition not in self._free:
                self._free.clear()  # many definitions (updates): start over
            free = self._free[definition]
            if len(free) < self._per_definition:
                free.append(program)


_pool = _ProgramPool()


def _patch_program_cache() -> None:
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramTimedOut
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original_logic = ExecutionWorker._execution_logic

    def _get_evaluation_entrypoint(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        program = _pool.take(definition)
        self._scones_program = (definition, program)
        return program

    def _execution_logic(self: Any) -> None:
        try:
            original_logic(self)
        finally:
            borrowed = getattr(self, "_scones_program", None)
            env = self.env
            timed_out = env is not None and isinstance(env._program_state, ProgramTimedOut)
            if borrowed is not None and not timed_out:
                _pool.give(*borrowed)

    ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint  # type: ignore[method-assign]
    ExecutionWorker._execution_logic = _execution_logic  # type: ignore[method-assign]


def _patch_dispatch() -> None:
    """moto's server lists its package folder (listdir + isdir per entry) on every request, and
    runs its Flask apps in debug mode, where Flask builds a new class for every request that
    carries a body (``attach_enctype_error_multidict``): memory that grows per request."""
    from moto import backends
    from moto.moto_server import threaded_moto_server, werkzeug_app

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules

    original = werkzeug_app.create_backend_app

    def create_backend_app(service: Any) -> Any:
        app = original(service)
        app.debug = False
        return app

    werkzeug_app.create_backend_app = create_backend_app
    threaded_moto_server.create_backend_app = create_backend_app  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- bounded memory


def prune_finished_threads() -> None:
    """Drop finished threads from moto's ``TMP_THREADS`` (a list that only ever grows)."""
    from moto.stepfunctions.parser.utils import TMP_THREADS

    TMP_THREADS[:] = [t for t in TMP_THREADS if t.is_alive()]


def evict_executions(state_machine: Any, keep: int) -> int:
    """Remove the oldest finished executions beyond ``keep``; return how many were removed."""
    executions: list[Any] = state_machine.executions
    excess = len(executions) - keep
    if excess <= 0:
        return 0
    removed = 0
    survivors = []
    for execution in executions:
        if removed < excess and execution.status != "RUNNING":
            removed += 1
            continue
        survivors.append(execution)
    executions[:] = survivors
    return removed


def _untrack(clone: Any) -> None:
    """Forget the per-execution copy of the state machine in moto's instance tracker.

    moto deep-copies the state machine for every execution, and every moto model instance is
    appended to its class's ``instances_tracked`` list for good: one copy per execution, never
    freed, even after the execution is evicted.
    """
    tracked = getattr(type(clone), "instances_tracked", None)
    if tracked is None:
        return
    for index in range(len(tracked) - 1, -1, -1):
        if tracked[index] is clone:
            del tracked[index]
            return


def _patch_eviction() -> None:
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    lock = threading.Lock()
    counter = [0]

    def start_execution(self: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        # One start at a time: moto's name check and append are not atomic, and two callers (the
        # bridge and `scones classify`) may start the same deterministic name at once.
        with lock:
            execution = original(self, state_machine_arn, *args, **kwargs)
            _untrack(getattr(execution, "state_machine", None))
            counter[0] += 1
            if counter[0] % 64 == 0:
                prune_finished_threads()
            try:
                machine = self.describe_state_machine(state_machine_arn)
            except Exception:  # noqa: BLE001 - a version/alias ARN: nothing to trim here
                return execution
            evict_executions(machine, _keep_executions)
        return execution

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]


# --------------------------------------------------------------------------- entry point

ALL_PATCHES = ("lambda", "clients", "jsonpath", "program_cache", "dispatch", "eviction")


def apply(
    *, keep_executions: int = DEFAULT_KEEP_EXECUTIONS, patches: tuple[str, ...] = ALL_PATCHES
) -> None:
    """Apply the named patches (all by default) once per process."""
    global _keep_executions
    _keep_executions = max(1, keep_executions)
    table = {
        "lambda": _patch_lambda,
        "clients": _patch_clients,
        "jsonpath": _patch_jsonpath,
        "program_cache": _patch_program_cache,
        "dispatch": _patch_dispatch,
        "eviction": _patch_eviction,
    }
    with _apply_lock:
        for name in patches:
            if name not in _applied:
                table[name]()
                _applied.add(name)
                LOG.debug("moto patch applied: %s", name)


def moto_config() -> dict[str, Any]:
    """The moto configuration the twin needs: ASL interpreter on, Lambda without Docker."""
    return {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False},
    }


def configure_moto() -> None:
    """Turn the interpreter on and Docker off for this process (what POST /moto-api/config does)."""
    from moto.core.config import default_user_config

    for service, values in moto_config().items():
        default_user_config.setdefault(service, {}).update(values)  # type: ignore[misc]
