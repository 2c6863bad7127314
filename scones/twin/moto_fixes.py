"""Speed, memory and fidelity fixes to moto 5.2.5 for the twin's long-running sfn server.

None of them changes what an execution computes; without the speed and memory fixes the twin is
slower and its memory grows with every execution; the fidelity fix makes the history's
timestamps agree with DescribeExecution, as on AWS. Each is one function, applied once per
process by ``apply()`` (``scones.twin.sfn_server`` applies all), each checked by
``tests/twin/test_moto_fixes.py`` (the fidelity fix by ``tests/twin/test_moto_history.py``).
They replace moto names through ``moto_targets.rebind`` (listed in ``moto_targets.TARGETS``);
the two fixes to moto's HTTP layer (``Dispatcher``, ``app_without_debug``) replace nothing: the
server hands them to moto's ``DomainDispatcherApplication`` itself.

Imports moto's Step Functions interpreter: import this module inside the functions that need it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask
from moto.core.models import botocore_stubber
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.settings import moto_server_port
from moto.stepfunctions.parser import utils as parser_utils
from moto.stepfunctions.parser.api import HistoryEventType
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.eval.program_state import ProgramTimedOut
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils import boto_client, json_path
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from scones.twin import moto_binding
from scones.twin.moto_targets import PINNED_MOTO, installed_moto_version, rebind

LOG = logging.getLogger("scones.twin.moto")

PARSER = "moto.stepfunctions.parser"
DEFAULT_KEEP_EXECUTIONS = 1000
PRUNE_EVERY = 64  # executions between two sweeps of moto's TMP_THREADS

_applied: set[str] = set()
_apply_lock = threading.Lock()
_keep_executions = DEFAULT_KEEP_EXECUTIONS

# ------------------------------------------------------------------------------------ speed


def direct_lambda_tasks() -> None:
    """``lambda:invoke`` and function-ARN tasks (both go through ``_invoke_lambda_function``) call
    the bound Lambda backend in-process. Why: otherwise each task is a botocore request over HTTP
    back into this same server; results, ``FunctionError`` and ``Lambda.<Code>`` errors keep
    their shape. Upstream has no in-process Lambda at all (getmoto/moto#9916)."""
    moto_invoke = lambda_eval_utils._invoke_lambda_function

    @functools.wraps(moto_invoke)
    def _invoke_lambda_function(parameters: dict, region: str, state_credentials: Any) -> dict:
        backend = moto_binding.backend_for(str(parameters["FunctionName"]), region)
        if not isinstance(backend, moto_binding.BoundLambdaBackend):
            return moto_invoke(  # type: ignore[no-any-return]
                parameters=parameters, region=region, state_credentials=state_credentials
            )
        return backend.invoke_direct(parameters)

    rebind(lambda_eval_utils, "_invoke_lambda_function", _invoke_lambda_function)


def reuse_clients() -> None:
    """One boto3 client per (region, service, endpoint) for the interpreter's other service
    integrations. Why: moto's ``boto_client_for`` builds a new client, service model included,
    for every task. Calls with a state's own credentials are not cached."""
    moto_client_for = boto_client.boto_client_for
    cache: dict[tuple[str, str, bool, int], Any] = {}
    lock = threading.Lock()

    @functools.wraps(moto_client_for)
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:
            return moto_client_for(
                region=region, service=service, state_credentials=state_credentials
            )
        key = (region, service, bool(botocore_stubber.enabled), int(moto_server_port()))
        with lock:
            client = cache.get(key)
            if client is None:
                client = cache[key] = moto_client_for(region=region, service=service)
        return client

    rebind(boto_client, "boto_client_for", boto_client_for, importers=PARSER)


def cache_jsonpath() -> None:
    """Parse each JSONPath once (parsed expressions are immutable). Why: jsonpath-ng builds its
    PLY parser again on every ``parse`` call, about 0.5 ms (h2non/jsonpath-ng#233), several
    paths per state."""
    for module in (json_path, result_path):
        rebind(module, "parse", functools.lru_cache(maxsize=4096)(module.parse), importers=PARSER)


class ProgramPool:
    """Parsed ASL programs per definition; each running execution holds its own."""

    def __init__(self, per_definition: int = 64) -> None:
        self._free: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self._per_definition = per_definition
        self.reused = 0

    def take(self, definition: str) -> Any:
        """A parsed program for ``definition`` that no one else holds."""
        with self._lock:
            free = self._free.get(definition)
            if free:
                self.reused += 1
                return free.pop()
        return AmazonStateLanguageParser.parse(definition)[0]

    def give(self, definition: str, program: Any) -> None:
        """Return a program whose execution ended."""
        with self._lock:
            if len(self._free) > 32 and definition not in self._free:
                self._free.clear()  # many definitions (updates): start over
            free = self._free[definition]
            if len(free) < self._per_definition:
                free.append(program)


pool = ProgramPool()


def pool_programs() -> None:
    """An execution borrows a parsed program for its definition and gives it back when it ends
    (timed-out ones are dropped), so no two running executions share one. Why: moto parses the
    definition with ANTLR for every execution."""
    moto_logic = ExecutionWorker._execution_logic

    def _get_evaluation_entrypoint(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        program = pool.take(definition)
        self._scones_program = (definition, program)
        return program

    @functools.wraps(moto_logic)
    def _execution_logic(self: Any) -> None:
        try:
            moto_logic(self)
        finally:
            borrowed = getattr(self, "_scones_program", None)
            env = self.env
            timed_out = env is not None and isinstance(env._program_state, ProgramTimedOut)
            if borrowed is not None and not timed_out:
                pool.give(*borrowed)

    rebind(ExecutionWorker, "_get_evaluation_entrypoint", _get_evaluation_entrypoint)
    rebind(ExecutionWorker, "_execution_logic", _execution_logic)


def app_without_debug(service: Any) -> Flask:
    """moto's Flask app for ``service`` with debug mode off. Why: moto turns it on, and in debug
    mode Flask builds a new class for every request that carries a body
    (``attach_enctype_error_multidict``): memory that only grows (see pallets/flask#3540).
    Also answers an operation moto does not implement as AWS does (``aws_errors``)."""
    from scones.twin import aws_errors

    app = create_backend_app(service)
    app.debug = False
    aws_errors.install(app)  # fidelity: AWS's "unknown operation", not an HTML 500 or 404
    return app


class Dispatcher(DomainDispatcherApplication):
    """moto's request dispatcher, with ``app_without_debug`` and the backend per host remembered.

    Why: ``get_backend_for_host`` lists moto's package folder (a listdir plus an isdir per
    entry, about 200) on every request; its answer depends on the host only.
    """

    def __init__(self, create_app: Callable[[Any], Flask] = app_without_debug) -> None:
        super().__init__(create_app)
        self._backend_for_host: dict[str | None, Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Dispatch; a service moto has no backend for answers AWS's error, not a crash."""
        from scones.twin import aws_errors

        try:
            app = self.get_application(environ)
        except Exception as exc:  # noqa: BLE001 - moto cannot build an app for the service
            return aws_errors.unknown_service(environ, start_response, exc)
        return app(environ, start_response)

    def get_backend_for_host(self, host: str | None) -> Any:
        """moto's answer for ``host``, computed once (moto calls this under ``self.lock``)."""
        if host not in self._backend_for_host:
            self._backend_for_host[host] = super().get_backend_for_host(host)
        return self._backend_for_host[host]


# ------------------------------------------------------------------------------ bounded memory


def prune_finished_threads() -> int:
    """Drop finished threads from moto's ``TMP_THREADS`` (a list that only ever grows: several
    threads per execution); return how many were dropped."""
    threads = parser_utils.TMP_THREADS
    alive = [t for t in threads if t.is_alive()]
    dropped = len(threads) - len(alive)
    threads[:] = alive
    return dropped


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


def untrack(clone: Any) -> None:
    """Forget an execution's copy of its state machine in moto's ``instances_tracked``: moto
    deep-copies the machine per execution and its model metaclass keeps every instance in that
    class-level list for good, even after the execution is evicted."""
    tracked = getattr(type(clone), "instances_tracked", None)
    if tracked is None:
        return
    for index in range(len(tracked) - 1, -1, -1):
        if tracked[index] is clone:
            del tracked[index]
            return


start_lock = threading.Lock()


def bounded_executions() -> None:
    """Wrap ``start_execution``: keep ``apply``'s ``keep_executions`` finished executions per
    machine, untrack each execution's copy, prune ``TMP_THREADS`` every ``PRUNE_EVERY`` starts,
    and start one at a time (moto's name check and append are not atomic, and the bridge and
    ``scones classify`` may start the same deterministic name at once)."""
    moto_start = StepFunctionsParserBackend.start_execution
    started = [0]

    @functools.wraps(moto_start)
    def start_execution(self: Any, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        with start_lock:
            execution = moto_start(self, state_machine_arn, *args, **kwargs)
            untrack(getattr(execution, "state_machine", None))
            started[0] += 1
            if started[0] % PRUNE_EVERY == 0:
                prune_finished_threads()
            try:
                machine = self.describe_state_machine(state_machine_arn)
            except Exception:  # noqa: BLE001 - a version/alias ARN: nothing to trim here
                return execution
            evict_executions(machine, _keep_executions)
        return execution

    rebind(StepFunctionsParserBackend, "start_execution", start_execution)


# ------------------------------------------------------------------------------------ fidelity

_TERMINAL_EVENTS = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
)


def _event_time(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def execution_times_from_history() -> None:
    """The ``ExecutionStarted`` event carries the execution's ``startDate``, and ``stopDate`` is
    the time of the execution's terminal event. Why: moto stamps ``ExecutionStarted`` in the
    worker thread after parsing the definition (about 0.1-0.2 s after ``startDate`` for a
    definition not parsed before) and reads the clock again for ``stopDate`` after writing the
    terminal event; AWS reports each as one instant (see docs/graph.md, "Fidelity")."""
    moto_environment = ExecutionWorker._get_evaluation_environment
    moto_reflect = BaseExecutionWorkerCommunication._reflect_execution_status

    @functools.wraps(moto_environment)
    def _get_evaluation_environment(self: Any) -> Any:
        env = moto_environment(self)
        started = self._evaluation_details.execution_details.start_time
        moto_add = env.event_manager.add_event

        def add_event(context: Any, event_type: Any, *args: Any, **kwargs: Any) -> Any:
            if event_type == HistoryEventType.ExecutionStarted and not kwargs.get("timestamp"):
                kwargs["timestamp"] = started
            return moto_add(context, event_type, *args, **kwargs)

        env.event_manager.add_event = add_event  # type: ignore[method-assign]
        return env

    @functools.wraps(moto_reflect)
    def _reflect_execution_status(self: Any) -> None:
        moto_reflect(self)
        events = getattr(self.execution.exec_worker.env.event_manager, "_history_event_list", [])
        kind = events[-1].get("type") if events else None
        if getattr(kind, "value", kind) in _TERMINAL_EVENTS:
            self.execution.stop_date = _event_time(events[-1]["timestamp"])

    rebind(ExecutionWorker, "_get_evaluation_environment", _get_evaluation_environment)
    rebind(BaseExecutionWorkerCommunication, "_reflect_execution_status", _reflect_execution_status)


# ------------------------------------------------------------------------------- entry point

FIXES: dict[str, Callable[[], None]] = {
    "direct_lambda_tasks": direct_lambda_tasks,
    "reuse_clients": reuse_clients,
    "cache_jsonpath": cache_jsonpath,
    "pool_programs": pool_programs,
    "bounded_executions": bounded_executions,
    "execution_times_from_history": execution_times_from_history,
}


def applied() -> frozenset[str]:
    """The names of the fixes applied in this process."""
    return frozenset(_applied)


def apply(
    *, keep_executions: int = DEFAULT_KEEP_EXECUTIONS, fixes: tuple[str, ...] = tuple(FIXES)
) -> None:
    """Apply the named fixes (all by default) once per process; ``keep_executions`` is the
    number of finished executions per state machine that stay queryable."""
    global _keep_executions
    _keep_executions = max(1, keep_executions)
    if installed_moto_version() != PINNED_MOTO:
        LOG.warning("moto %s is not the pinned %s", installed_moto_version(), PINNED_MOTO)
    with _apply_lock:
        for name in fixes:
            if name not in _applied:
                FIXES[name]()
                _applied.add(name)
                LOG.debug("moto fix applied: %s", name)
