"""Template parameters: defaults, overrides and the checks CloudFormation makes on them."""

from __future__ import annotations

import re
from typing import Any

from scones.twin.template.errors import MissingPropertyError, TemplateError, UnknownReferenceError


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _check(name: str, value: str, spec: dict[str, Any]) -> None:
    pattern = spec.get("AllowedPattern")
    if pattern and not re.fullmatch(str(pattern), value):
        hint = spec.get("ConstraintDescription") or f"it must match {pattern}"
        raise TemplateError(f"parameter {name}={value!r} is not valid: {hint}")
    allowed = spec.get("AllowedValues")
    if allowed and value not in [str(a) for a in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")


def resolve_parameters(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """Every declared parameter's value: the override, else the Default, checked as text.

    Raises ``UnknownReferenceError`` for an override of an undeclared parameter,
    ``MissingPropertyError`` for a parameter with neither, and ``TemplateError`` when a value
    breaks its ``AllowedPattern`` or ``AllowedValues``.
    """
    declared: dict[str, Any] = template.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise UnknownReferenceError(
            f"parameter override for undeclared parameter(s): {', '.join(unknown)}"
        )
    values: dict[str, str] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in overrides:
            value = _as_text(overrides[name])
        elif "Default" in spec:
            value = _as_text(spec["Default"])
        else:
            raise MissingPropertyError(
                f"parameter {name} has no Default and no override in samconfig.toml"
            )
        _check(name, value, spec)
        values[name] = value
    return values
