"""The moto internals the twin subclasses, wraps or calls: one list, one way to rebind, one check.

moto is pinned (``moto==5.2.5``, ``PINNED_MOTO``) because the Lambda binding
(``scones.twin.moto_binding``) and the optional fixes (``scones.twin.moto_fixes``) use names moto
does not promise to keep. ``TARGETS`` lists every one of them with the call shape our code was
written against; ``tests/twin/test_moto_targets.py`` fails, naming the target, when an upgrade
moves or reshapes one.

``rebind`` replaces a name where moto looks it up at call time (its defining module, or a class)
and in every loaded module under ``importers`` that copied it (``from x import name``); later
importers read the replaced name from its defining module. ``stale_importers`` lists any module
attribute that still holds an original, so a test proves that no copy kept moto's version.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

PINNED_MOTO = "5.2.5"

_PARSER = "moto.stepfunctions.parser"
_TASK = f"{_PARSER}.asl.component.state.exec.state_task"

#: Every moto name we subclass, replace or call, and its parameters in moto 5.2.5
#: (``None``: not called, only its existence and kind matter).
TARGETS: dict[str, str | None] = {
    # the Lambda binding
    "moto.awslambda_simple.models.LambdaSimpleBackend.__init__": "(self, region_name, account_id)",
    "moto.awslambda_simple.models.LambdaSimpleBackend.invoke": (
        "(self, function_name, qualifier, body, headers, response_headers)"
    ),
    "moto.awslambda_simple.models.lambda_simple_backends": None,
    "moto.awslambda.models.LambdaBackend.get_function": "(self, function_name_or_arn, qualifier=None)",
    "moto.awslambda.models.LambdaBackend.list_functions": "(self, func_version=None)",
    "moto.awslambda.exceptions.UnknownFunctionException": None,
    "moto.awslambda.utils.get_backend": "(account_id, region)",
    "moto.core.base_backend.BackendDict.__init__": (
        "(self, backend, service_name, use_boto3_regions=True, additional_regions=None)"
    ),
    "moto.core.config.default_user_config": None,
    # the fixes
    f"{_TASK}.lambda_eval_utils._invoke_lambda_function": "(parameters, region, state_credentials)",
    f"{_PARSER}.asl.utils.boto_client.boto_client_for": "(region, service, state_credentials=None)",
    f"{_PARSER}.asl.utils.boto_client.boto3": None,  # sigv4_http.sign_moto_clients
    f"{_PARSER}.asl.utils.json_path.parse": "(path, debug=None)",
    f"{_PARSER}.asl.component.common.path.result_path.parse": "(string)",
    f"{_PARSER}.backend.execution_worker.ExecutionWorker._get_evaluation_entrypoint": "(self)",
    f"{_PARSER}.backend.execution_worker.ExecutionWorker._execution_logic": "(self)",
    f"{_PARSER}.asl.parse.asl_parser.AmazonStateLanguageParser.parse": "(definition)",
    f"{_PARSER}.backend.execution_worker.ExecutionWorker._get_evaluation_environment": "(self)",
    f"{_PARSER}.backend.execution.BaseExecutionWorkerCommunication._reflect_execution_status": (
        "(self)"
    ),
    f"{_PARSER}.asl.eval.event.event_manager.EventManager.add_event": (
        "(self, context, event_type, event_details=None, timestamp=None,"
        " update_source_event_id=True)"
    ),
    f"{_PARSER}.api.HistoryEventType": None,
    f"{_PARSER}.asl.eval.program_state.ProgramTimedOut": None,
    f"{_PARSER}.models.StepFunctionsParserBackend.start_execution": (
        "(self, state_machine_arn, name=None, execution_input=None, trace_header=None)"
    ),
    f"{_PARSER}.models.StepFunctionsParserBackend.describe_state_machine": "(self, arn)",
    f"{_PARSER}.utils.TMP_THREADS": None,
    "moto.stepfunctions.models.StateMachine.instances_tracked": None,
    "moto.moto_server.werkzeug_app.create_backend_app": "(service)",
    "moto.moto_server.werkzeug_app.DomainDispatcherApplication.__init__": "(self, create_app)",
    "moto.moto_server.werkzeug_app.DomainDispatcherApplication.get_backend_for_host": (
        "(self, host)"
    ),
    "moto.moto_server.werkzeug_app.MotoRequestHandler": None,
    "moto.moto_server.werkzeug_app.DomainDispatcherApplication.get_application": (
        "(self, environ)"
    ),
    # the Step Functions operations (scones.twin.sfn_api)
    "moto.stepfunctions.responses.StepFunctionResponse.stop_execution": "(self)",
    "moto.stepfunctions.responses.StepFunctionResponse.get_execution_history": "(self)",
    "moto.stepfunctions.responses.StepFunctionResponse.start_execution": "(self)",
    f"{_PARSER}.backend.execution.SyncExecution.to_start_sync_execution_output": "(self)",
    f"{_PARSER}.backend.test_state.execution.TestStateExecution.to_test_state_output": (
        "(self, inspection_level)"
    ),
    f"{_PARSER}.backend.state_machine.TestStateMachine.__init__": (
        "(self, name, arn, definition, role_arn, create_date=None)"
    ),
    f"{_PARSER}.asl.static_analyser.test_state.test_state_analyser.TestStateStaticAnalyser": None,
}


@dataclass(frozen=True)
class Rebind:
    """One replaced moto name: where, what it was, what it is now, and who may have copied it."""

    owner: Any
    name: str
    original: Any
    replacement: Any
    importers: str | None


_rebinds: list[Rebind] = []
_lock = threading.Lock()


def installed_moto_version() -> str:
    """The version of the moto distribution in this environment."""
    return metadata.version("moto")


def _modules_under(prefix: str) -> list[tuple[str, ModuleType]]:
    return [
        (name, module)
        for name, module in list(sys.modules.items())
        if module is not None and (name == prefix or name.startswith(prefix + "."))
    ]


def rebind(owner: Any, name: str, replacement: Any, *, importers: str | None = None) -> Any:
    """Set ``owner.name`` to ``replacement``, and every copy in loaded modules under
    ``importers``; return the original. Recorded for ``stale_importers`` and ``original``."""
    with _lock:
        original = getattr(owner, name)
        setattr(owner, name, replacement)
        if importers:
            for _, module in _modules_under(importers):
                for attribute, value in list(vars(module).items()):
                    if value is original:
                        setattr(module, attribute, replacement)
        _rebinds.append(Rebind(owner, name, original, replacement, importers))
        return original


def original(owner: Any, name: str) -> Any:
    """moto's own object for ``owner.name``, also after ``rebind`` replaced it."""
    for record in _rebinds:
        if record.owner is owner and record.name == name:
            return record.original
    return getattr(owner, name)


def rebound(owner: Any, name: str) -> bool:
    """Whether ``owner.name`` was replaced by ``rebind``."""
    return any(r.owner is owner and r.name == name for r in _rebinds)


def rebound_paths() -> list[str]:
    """The dotted path of every name replaced so far (each should be listed in ``TARGETS``)."""
    return [_path(record.owner, record.name) for record in list(_rebinds)]


def _path(owner: Any, name: str) -> str:
    if isinstance(owner, ModuleType):
        return f"{owner.__name__}.{name}"
    return f"{owner.__module__}.{owner.__qualname__}.{name}"


def stale_importers() -> list[str]:
    """Every place that still holds a replaced original (empty when all see our version)."""
    stale = []
    for record in list(_rebinds):
        if getattr(record.owner, record.name) is not record.replacement:
            stale.append(f"{_path(record.owner, record.name)} (replaced again since)")
        if record.importers:
            for module_name, module in _modules_under(record.importers):
                stale.extend(
                    f"{module_name}.{attribute}"
                    for attribute, value in list(vars(module).items())
                    if value is record.original
                )
    return stale


def resolve(path: str) -> tuple[Any, str, Any]:
    """``(owner, name, moto's object)`` for a dotted target; raises ``LookupError`` naming it."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for part in parts[split:-1]:
                owner = getattr(owner, part)
            return owner, parts[-1], original(owner, parts[-1])
        except AttributeError:
            break
    raise LookupError(f"moto target {path} does not exist (moto {installed_moto_version()})")


def shape(obj: Any) -> str:
    """A callable's parameters as ``(a, b=None, *args)``: names, kinds and defaults only."""
    text = []
    for param in inspect.signature(obj).parameters.values():
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(param.kind.name, "")
        default = "" if param.default is param.empty else f"={param.default!r}"
        text.append(f"{prefix}{param.name}{default}")
    return "(" + ", ".join(text) + ")"


def target_problem(path: str) -> str | None:
    """Why ``path`` is not what the twin was written against, or None when it is."""
    try:
        _, _, obj = resolve(path)
    except LookupError as exc:
        return str(exc)
    expected = TARGETS[path]
    if expected is None:
        return None
    found = shape(obj)
    if found != expected:
        return f"moto target {path} changed: we wrap {expected}, moto has {found}"
    return None
