"""The diagnostics of the twin's ValidateStateMachineDefinition, in AWS's shape.

Two checkers: statelint (the Amazon States Language's own linter: transitions, terminal states,
field types and paths) and moto's ASL parser (what the twin's interpreter will run). Their
findings become ``{"severity", "code", "message", "location"}`` with the codes AWS documents
for ValidateStateMachineDefinition where one fits (``INVALID_JSON_DESCRIPTION``,
``MISSING_DESCRIPTION``, ``MISSING_TRANSITION_TARGET``, ``MISSING_END_STATE``,
``INVALID_RESOURCE``), else ``SCHEMA_VALIDATION_FAILED``. AWS says to rely on ``result`` only,
not on the codes' exact set or wording; so does this.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LOCATION = re.compile(r"State Machine((?:\.[^\s\"]+)*)")


def _location(message: str) -> str | None:
    match = _LOCATION.search(message)
    if not match or not match.group(1):
        return None
    return "/" + "/".join(match.group(1).strip(".").split("."))


def _code(message: str, problem_type: str) -> str:
    if message.startswith("No state found named"):
        return "MISSING_TRANSITION_TARGET"
    if message.startswith("No terminal state"):
        return "MISSING_END_STATE"
    if problem_type == "A URI" and ".Resource " in message:
        return "INVALID_RESOURCE"
    return "SCHEMA_VALIDATION_FAILED"


def _error(code: str, message: str, location: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"severity": "ERROR", "code": code, "message": message}
    if location:
        found["location"] = location
    return found


def statelint_diagnostics(machine: dict[str, Any]) -> list[dict[str, Any]]:
    """statelint's problems with a parsed definition, as AWS-shaped diagnostics."""
    from statelint.config import Config
    from statelint.nodes.factory.factory import StateFactory
    from statelint.nodes.state_machine import StateMachine

    problems = StateMachine(StateFactory(), machine, Config()).validate()
    return [_error(_code(str(p), str(p.type)), str(p), _location(str(p))) for p in problems]


def parser_diagnostics(definition: str, machine_type: str) -> list[dict[str, Any]]:
    """moto's parser and static analyser (what the interpreter accepts) on ``definition``."""
    from moto.stepfunctions.parser.asl.static_analyser.express_static_analyser import (
        ExpressStaticAnalyser,
    )
    from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser

    analyser = ExpressStaticAnalyser() if machine_type == "EXPRESS" else StaticAnalyser()
    try:
        analyser.analyse(definition)
    except Exception as exc:  # noqa: BLE001 - every refusal is a diagnostic
        return [_error("SCHEMA_VALIDATION_FAILED", f"{type(exc).__name__}: {exc}")]
    return []


def diagnostics(definition: str, machine_type: str = "STANDARD") -> list[dict[str, Any]]:
    """Every diagnostic for ``definition`` (empty: valid)."""
    if not definition.strip():
        return [_error("MISSING_DESCRIPTION", "The definition is empty.")]
    try:
        machine = json.loads(definition)
    except ValueError as exc:
        return [_error("INVALID_JSON_DESCRIPTION", f"Invalid JSON: {exc}")]
    if not isinstance(machine, dict):
        return [_error("SCHEMA_VALIDATION_FAILED", "The definition must be a JSON object.")]
    found = statelint_diagnostics(machine)
    if not found:
        found = parser_diagnostics(definition, machine_type)
    return found
