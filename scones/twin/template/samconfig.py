"""Read ``samconfig.toml`` the way ``sam deploy`` does: stack name, region, parameter overrides."""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.twin.template.errors import SamConfigError


@dataclass(frozen=True)
class SamConfig:
    """The deploy settings of one samconfig.toml environment."""

    stack_name: str | None = None
    region: str | None = None
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    #: ``tags``: the stack tags CloudFormation copies to every resource that takes tags.
    tags: dict[str, str] = field(default_factory=dict)


def parse_parameter_overrides(value: str | list[str] | None) -> dict[str, str]:
    """Turn SAM's ``Key=Value Key2="a b"`` overrides (a string or a list) into a dict."""
    if value is None:
        return {}
    items: list[str] = []
    try:
        for part in [value] if isinstance(value, str) else list(value):
            items.extend(shlex.split(str(part)))
    except ValueError as exc:
        raise SamConfigError(f"parameter_overrides cannot be parsed: {exc}") from None
    result: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise SamConfigError(f"parameter_overrides: expected Key=Value, got {item!r}")
        if key.startswith("ParameterKey="):  # the CLI's long form is not used in samconfig here
            raise SamConfigError(f"parameter_overrides: use Key=Value, not {item!r}")
        result[key] = val
    return result


def load_samconfig(path: Path, environment: str = "default") -> SamConfig:
    """Read ``[<environment>.deploy.parameters]`` (falling back to ``global``) of samconfig.toml."""
    if not path.is_file():
        return SamConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SamConfigError(f"{path.name} is not valid TOML: {exc}") from None
    params: dict[str, Any] = {}
    for env_name in ("global", environment):
        section = data.get(env_name, {})
        for command in ("global", "deploy"):
            params.update(section.get(command, {}).get("parameters", {}))
    return SamConfig(
        stack_name=params.get("stack_name"),
        region=params.get("region"),
        parameter_overrides=parse_parameter_overrides(params.get("parameter_overrides")),
        tags=parse_parameter_overrides(params.get("tags")),  # the same Key=Value syntax
    )
