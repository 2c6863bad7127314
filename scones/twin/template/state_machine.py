"""Read the ``AWS::Serverless::StateMachine``: its definition with the substitutions applied,
its role and the EventBridge rules that start it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from scones.twin.template.errors import (
    MissingPropertyError,
    TemplateError,
    TemplateNotFoundError,
    UnresolvedPlaceholderError,
)
from scones.twin.template.functions import tag_map
from scones.twin.template.intrinsics import ACCOUNT_ID, PARTITION, Resolver
from scones.twin.template.model import EventRule, StateMachineSpec

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


def placeholders(text: str) -> set[str]:
    """The ``${Name}`` placeholders in a state machine definition."""
    return set(_PLACEHOLDER.findall(text))


def substitute_definition(
    text: str, substitutions: dict[str, str], source: str = "definition"
) -> str:
    """Apply DefinitionSubstitutions; raise ``UnresolvedPlaceholderError`` if any ``${...}`` stays."""

    def replace(match: re.Match[str]) -> str:
        return substitutions.get(match.group(1), match.group(0))

    result = _PLACEHOLDER.sub(replace, text)
    left = sorted(placeholders(result))
    if left:
        raise UnresolvedPlaceholderError(
            f"{source}: no DefinitionSubstitutions for {', '.join('${' + k + '}' for k in left)}"
        )
    return result


def _rules(resolver: Resolver, props: dict[str, Any]) -> tuple[EventRule, ...]:
    rules = []
    for name, event in (props.get("Events") or {}).items():
        if (event or {}).get("Type") not in ("EventBridgeRule", "CloudWatchEvent"):
            continue
        eprops = resolver.resolve(event.get("Properties") or {})
        rules.append(
            EventRule(
                name=name,
                pattern=eprops.get("Pattern") or {},
                input_transformer=eprops.get("InputTransformer"),
                input_path=eprops.get("InputPath"),
                input=eprops.get("Input"),
            )
        )
    return tuple(rules)


def _raw_definition(
    resolver: Resolver, root: Path, logical_id: str, props: dict[str, Any]
) -> tuple[str, str, Path | None]:
    """``(text, source name, file)`` of the definition, before substitution."""
    if props.get("DefinitionUri"):
        uri = resolver.resolve(props["DefinitionUri"])
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise TemplateError(f"{logical_id}: DefinitionUri must be a local file for the twin")
        path = (root / uri).resolve()
        if not path.is_file():
            raise TemplateNotFoundError(f"{logical_id}: DefinitionUri {uri} does not exist")
        return path.read_text(encoding="utf-8"), uri, path
    if props.get("Definition"):
        return json.dumps(props["Definition"]), f"{logical_id}.Definition", None
    raise MissingPropertyError(f"{logical_id}: no DefinitionUri or Definition")


def _logging(resolver: Resolver, logging: Any) -> dict[str, Any]:
    """SAM's ``Logging`` (CloudFormation's LoggingConfiguration) in the API's lower-case shape."""
    value = resolver.resolve(logging or {})
    if not isinstance(value, dict) or not value:
        return {}
    result: dict[str, Any] = {"level": str(value.get("Level", "OFF"))}
    if "IncludeExecutionData" in value:
        result["includeExecutionData"] = value["IncludeExecutionData"] in (True, "true", "True")
    destinations = []
    for destination in value.get("Destinations") or []:
        group = (destination or {}).get("CloudWatchLogsLogGroup") or {}
        if group.get("LogGroupArn"):
            destinations.append({"cloudWatchLogsLogGroup": {"logGroupArn": group["LogGroupArn"]}})
    if destinations:
        result["destinations"] = destinations
    return result


def _role_arn(resolver: Resolver, logical_id: str, role: Any) -> str:
    if not role:
        return f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{resolver.stack_name}-{logical_id}Role"
    arn = str(resolver.resolve(role))
    return arn if arn.startswith("arn:") else f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{arn}"


def read_state_machine(
    resolver: Resolver, root: Path, logical_id: str, props: dict[str, Any]
) -> StateMachineSpec:
    """The state machine with its definition substituted, checked as JSON and pretty-printed."""
    substitutions = resolver.resolve(props.get("DefinitionSubstitutions") or {})
    substitutions = {str(k): str(v) for k, v in substitutions.items()}
    raw, source, path = _raw_definition(resolver, root, logical_id, props)
    text = substitute_definition(raw, substitutions, source)
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{source} is not valid JSON after substitution: {exc}") from None
    return StateMachineSpec(
        logical_id=logical_id,
        name=resolver.resource_name(logical_id),
        arn=resolver.get_att(logical_id, "Arn"),
        definition=json.dumps(definition, indent=2),
        definition_path=path,
        substitutions=substitutions,
        role_arn=_role_arn(resolver, logical_id, props.get("Role")),
        sm_type=str(resolver.resolve(props.get("Type")) or "STANDARD"),
        rules=_rules(resolver, props),
        logging=_logging(resolver, props.get("Logging")),
        tags=tag_map(resolver, logical_id, props.get("Tags")),
    )
