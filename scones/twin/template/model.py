"""What the twin deploys, as read from the SAM template: functions, state machine, app."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.twin.template.errors import UnknownReferenceError

DEFAULT_ENDPOINT_NAME = "scones-image-classifier"
DEFAULT_INCOMING_PREFIX = "incoming/"


@dataclass(frozen=True)
class FunctionSpec:
    """One ``AWS::Serverless::Function`` as the twin runs it."""

    logical_id: str
    name: str
    arn: str
    code_uri: Path
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    #: Folders to put on ``sys.path`` for the function's layers, in the template's order
    #: (what Lambda unpacks to ``/opt/python``).
    layers: tuple[Path, ...] = ()
    #: Its tags: samconfig.toml's stack tags, then the function's ``Tags`` (Globals merged).
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def handler_file(self) -> Path:
        """The Python file that holds the handler (``app.lambda_handler`` -> ``app.py``)."""
        module, _, _ = self.handler.rpartition(".")
        return self.code_uri / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        """The handler's function name inside its module."""
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule that starts the state machine (a SAM ``EventBridgeRule`` event)."""

    name: str
    pattern: dict[str, Any]
    input_transformer: dict[str, Any] | None = None
    input_path: str | None = None
    input: str | None = None


@dataclass(frozen=True)
class StateMachineSpec:
    """The ``AWS::Serverless::StateMachine`` with its definition ready to create."""

    logical_id: str
    name: str
    arn: str
    definition: str
    definition_path: Path | None
    substitutions: dict[str, str]
    role_arn: str
    sm_type: str
    rules: tuple[EventRule, ...]
    #: ``loggingConfiguration`` as CreateStateMachine takes it (``level``, ``includeExecutionData``,
    #: ``destinations``); empty when the template sets no ``Logging``.
    logging: dict[str, Any] = field(default_factory=dict)
    #: Its tags: samconfig.toml's stack tags, then the state machine's ``Tags``.
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def incoming_prefix(self) -> str:
        """The S3 key prefix its upload rule matches (``incoming/`` when none says)."""
        for rule in self.rules:
            keys = ((rule.pattern.get("detail") or {}).get("object") or {}).get("key") or []
            for matcher in keys:
                if isinstance(matcher, dict) and "prefix" in matcher:
                    return str(matcher["prefix"])
        return DEFAULT_INCOMING_PREFIX


@dataclass(frozen=True)
class TwinApp:
    """Everything ``scones deploy --local`` creates, read from the template."""

    stack_name: str
    region: str
    template_path: Path
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    state_machine: StateMachineSpec
    bucket: str
    incoming_prefix: str
    endpoint_name: str

    def function(self, logical_id: str) -> FunctionSpec:
        """Return one function by logical id, or raise ``UnknownReferenceError``."""
        try:
            return self.functions[logical_id]
        except KeyError:
            known = ", ".join(sorted(self.functions)) or "none"
            raise UnknownReferenceError(
                f"no function {logical_id!r} in {self.template_path.name} (known: {known})"
            ) from None
