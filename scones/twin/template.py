"""Read ``template.yaml`` + ``samconfig.toml`` the way SAM does, for the offline twin.

The twin deploys what the SAM template declares, nothing else: parameter defaults with the
``samconfig.toml`` overrides, Conditions, ``Globals`` merged into each function, each
function's code folder, handler and environment (intrinsics resolved), the state machine's
definition with its ``DefinitionSubstitutions`` applied, the image bucket and the EventBridge
rule that starts the workflow on upload.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"  # moto's default account: the ARNs the twin hands out use it
PARTITION = "aws"
DEFAULT_ENDPOINT_NAME = "scones-image-classifier"
DEFAULT_INCOMING_PREFIX = "incoming/"

_NO_VALUE = object()  # AWS::NoValue: the key is dropped


class TemplateError(Exception):
    """Base class: the template or samconfig.toml cannot be deployed to the twin."""


class TemplateNotFoundError(TemplateError):
    """template.yaml (or a file it names) does not exist."""


class MissingPropertyError(TemplateError):
    """A resource lacks a property the twin needs (CodeUri, Handler, DefinitionUri, ...)."""


class UnknownReferenceError(TemplateError):
    """A Ref, GetAtt or ${...} names a parameter, resource or attribute that does not exist."""


class UnsupportedIntrinsicError(TemplateError):
    """An intrinsic function the twin cannot evaluate offline (Fn::ImportValue, ...)."""


class UnresolvedPlaceholderError(TemplateError):
    """The state machine definition still holds a ${...} after the substitutions."""


class SamConfigError(TemplateError):
    """samconfig.toml cannot be read or its parameter_overrides are malformed."""


# --------------------------------------------------------------------------- YAML loading


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that understands CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _construct_cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if name == "Ref":
        return {"Ref": value}
    if name == "Condition":
        return {"Condition": value}
    if name == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{name}": value}


_CfnLoader.add_multi_constructor("!", _construct_cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML (or JSON) template into plain Python values."""
    if not path.is_file():
        raise TemplateNotFoundError(f"template not found: {path}")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path.name} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path.name} has no Resources section")
    return data


# --------------------------------------------------------------------------- samconfig.toml


@dataclass(frozen=True)
class SamConfig:
    """The deploy settings of one samconfig.toml environment."""

    stack_name: str | None = None
    region: str | None = None
    parameter_overrides: dict[str, str] = field(default_factory=dict)


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
    )


# --------------------------------------------------------------------------- the model


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


# --------------------------------------------------------------------------- intrinsics


class _Resolver:
    """Evaluates CloudFormation intrinsics against parameters, conditions and twin names."""

    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str],
        stack_name: str,
        region: str,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources") or {}
        self.parameters = parameters
        self.stack_name = stack_name
        self.region = region
        self.mappings: dict[str, Any] = template.get("Mappings") or {}
        self._conditions_raw: dict[str, Any] = template.get("Conditions") or {}
        self._conditions: dict[str, bool] = {}
        self._names: dict[str, str] = {}

    # names the twin gives to resources ------------------------------------------------
    def resource_name(self, logical_id: str) -> str:
        if logical_id in self._names:
            return self._names[logical_id]
        resource = self.resources[logical_id]
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        name: Any = None
        if rtype == "AWS::S3::Bucket":
            name = self.resolve(props.get("BucketName"))
            if not name or name is _NO_VALUE:
                name = f"{self.stack_name}-images-local"
        elif rtype in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            name = self.resolve(props.get("FunctionName"))
            if not name or name is _NO_VALUE:
                name = f"{self.stack_name}-{logical_id}"
        elif rtype in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            name = self.resolve(props.get("Name") or props.get("StateMachineName"))
            if not name or name is _NO_VALUE:
                name = f"{self.stack_name}-{logical_id}"
        else:
            name = f"{self.stack_name}-{logical_id}"
        self._names[logical_id] = str(name)
        return str(name)

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:{PARTITION}:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local"
            ),
            "AWS::NotificationARNs": [],
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            rtype = self.resources[name].get("Type", "")
            if rtype in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
                return self.get_att(name, "Arn")
            return self.resource_name(name)
        raise UnknownReferenceError(f"Ref to unknown parameter or resource {name!r}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if logical_id not in self.resources:
            raise UnknownReferenceError(f"GetAtt on unknown resource {logical_id!r}")
        rtype = self.resources[logical_id].get("Type", "")
        name = self.resource_name(logical_id)
        arns = {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{name}",
            "AWS::Serverless::Function": f"arn:{PARTITION}:lambda:{self.region}:{ACCOUNT_ID}:function:{name}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{self.region}:{ACCOUNT_ID}:function:{name}",
            "AWS::Serverless::StateMachine": f"arn:{PARTITION}:states:{self.region}:{ACCOUNT_ID}:stateMachine:{name}",
            "AWS::StepFunctions::StateMachine": f"arn:{PARTITION}:states:{self.region}:{ACCOUNT_ID}:stateMachine:{name}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{name}",
        }
        if attribute == "Arn" and rtype in arns:
            return arns[rtype]
        if attribute in ("Name", "BucketName", "StateMachineName") and rtype in arns:
            return name
        if rtype == "AWS::S3::Bucket" and attribute == "DomainName":
            return f"{name}.s3.amazonaws.com"
        raise UnknownReferenceError(
            f"GetAtt {logical_id}.{attribute}: the twin does not know this attribute of {rtype or 'the resource'}"
        )

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._conditions_raw:
                raise UnknownReferenceError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self._conditions_raw[name]))
        return self._conditions[name]

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                resource, _, attribute = expr.partition(".")
                return self.get_att(resource, attribute)
            value = self.ref(expr)
            if value is _NO_VALUE:
                raise UnknownReferenceError("${AWS::NoValue} cannot be used in Fn::Sub")
            return str(value)

        return re.sub(r"\$\{([^}]*)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic inside ``value``; ``AWS::NoValue`` drops keys/items."""
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._intrinsic(key, arg)
        out_map = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out_map.items() if v is not _NO_VALUE}

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            resource, attribute = (arg if isinstance(arg, list) else str(arg).split(".", 1))[:2]
            return self.get_att(str(resource), str(self.resolve(attribute)))
        if key == "Fn::Sub":
            if isinstance(arg, list):
                text, variables = arg[0], self.resolve(arg[1] if len(arg) > 1 else {})
            else:
                text, variables = arg, {}
            return self.sub(str(text), variables)
        if key == "Fn::If":
            cond, if_true, if_false = arg
            return self.resolve(if_true if self.condition(cond) else if_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(i) for i in self.resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(str(sep))
        if key == "Fn::FindInMap":
            name, top, second = (self.resolve(a) for a in arg)
            try:
                return self.mappings[name][top][second]
            except (KeyError, TypeError):
                raise UnknownReferenceError(f"FindInMap {name}/{top}/{second} not found") from None
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        raise UnsupportedIntrinsicError(f"{key} cannot be evaluated by the offline twin")


# --------------------------------------------------------------------------- reading the app


def _merge_globals(globals_: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """Merge SAM ``Globals`` into resource properties (maps merge, lists append, scalars win)."""
    merged = copy.deepcopy(globals_)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def _parameters(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
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
            value: Any = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise MissingPropertyError(
                f"parameter {name} has no Default and no override in samconfig.toml"
            )
        value = str(value) if not isinstance(value, bool) else str(value).lower()
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(str(pattern), value):
            hint = spec.get("ConstraintDescription") or f"it must match {pattern}"
            raise TemplateError(f"parameter {name}={value!r} is not valid: {hint}")
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


def _env_vars(resolver: _Resolver, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
    env = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
    if not isinstance(env, dict):
        raise TemplateError(f"{logical_id}: Environment.Variables must be a map")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def _function(
    resolver: _Resolver, root: Path, logical_id: str, props: dict[str, Any]
) -> FunctionSpec:
    code_uri = resolver.resolve(props.get("CodeUri"))
    if not code_uri or code_uri is _NO_VALUE:
        raise MissingPropertyError(
            f"{logical_id}: no CodeUri (set it on the function or in Globals)"
        )
    if not isinstance(code_uri, str) or code_uri.startswith("s3://"):
        raise TemplateError(
            f"{logical_id}: CodeUri must be a local folder for the twin, got {code_uri!r}"
        )
    handler = resolver.resolve(props.get("Handler"))
    if not handler or "." not in str(handler):
        raise MissingPropertyError(
            f"{logical_id}: Handler must look like module.function, got {handler!r}"
        )
    folder = (root / code_uri).resolve()
    spec = FunctionSpec(
        logical_id=logical_id,
        name=resolver.resource_name(logical_id),
        arn=resolver.get_att(logical_id, "Arn"),
        code_uri=folder,
        handler=str(handler),
        runtime=str(resolver.resolve(props.get("Runtime")) or "python3.11"),
        timeout=int(resolver.resolve(props.get("Timeout")) or 3),
        memory_size=int(resolver.resolve(props.get("MemorySize")) or 128),
        environment=_env_vars(resolver, logical_id, props),
    )
    if not spec.handler_file.is_file():
        raise TemplateNotFoundError(
            f"{logical_id}: handler file {spec.handler_file} does not exist"
        )
    return spec


def _rules(resolver: _Resolver, props: dict[str, Any]) -> tuple[EventRule, ...]:
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


def substitute_definition(text: str, substitutions: dict[str, str], source: str) -> str:
    """Apply DefinitionSubstitutions; raise ``UnresolvedPlaceholderError`` if any ``${...}`` stays."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        return substitutions[key] if key in substitutions else match.group(0)

    result = re.sub(r"\$\{([^}]*)\}", replace, text)
    left = sorted(set(re.findall(r"\$\{([^}]*)\}", result)))
    if left:
        raise UnresolvedPlaceholderError(
            f"{source}: no DefinitionSubstitutions for {', '.join('${' + k + '}' for k in left)}"
        )
    return result


def _state_machine(
    resolver: _Resolver, root: Path, logical_id: str, props: dict[str, Any]
) -> StateMachineSpec:
    substitutions = resolver.resolve(props.get("DefinitionSubstitutions") or {})
    substitutions = {str(k): str(v) for k, v in substitutions.items()}
    definition_path: Path | None = None
    if props.get("DefinitionUri"):
        uri = resolver.resolve(props["DefinitionUri"])
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise TemplateError(f"{logical_id}: DefinitionUri must be a local file for the twin")
        definition_path = (root / uri).resolve()
        if not definition_path.is_file():
            raise TemplateNotFoundError(f"{logical_id}: DefinitionUri {uri} does not exist")
        raw = definition_path.read_text(encoding="utf-8")
        source = uri
    elif props.get("Definition"):
        raw = json.dumps(props["Definition"])
        source = f"{logical_id}.Definition"
    else:
        raise MissingPropertyError(f"{logical_id}: no DefinitionUri or Definition")
    text = substitute_definition(raw, substitutions, source)
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{source} is not valid JSON after substitution: {exc}") from None
    role = props.get("Role")
    role_arn = (
        str(resolver.resolve(role))
        if role
        else f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{resolver.stack_name}-{logical_id}Role"
    )
    if not role_arn.startswith("arn:"):
        role_arn = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{role_arn}"
    return StateMachineSpec(
        logical_id=logical_id,
        name=resolver.resource_name(logical_id),
        arn=resolver.get_att(logical_id, "Arn"),
        definition=json.dumps(definition, indent=2),
        definition_path=definition_path,
        substitutions=substitutions,
        role_arn=role_arn,
        sm_type=str(resolver.resolve(props.get("Type")) or "STANDARD"),
        rules=_rules(resolver, props),
    )


def _incoming_prefix(rules: tuple[EventRule, ...]) -> str:
    for rule in rules:
        keys = ((rule.pattern.get("detail") or {}).get("object") or {}).get("key") or []
        for matcher in keys:
            if isinstance(matcher, dict) and "prefix" in matcher:
                return str(matcher["prefix"])
    return DEFAULT_INCOMING_PREFIX


def read_app(
    project_root: Path,
    *,
    region: str = "us-east-1",
    template_name: str = "template.yaml",
    config_env: str = "default",
    stack_name: str | None = None,
    parameter_overrides: dict[str, str] | None = None,
) -> TwinApp:
    """Read the SAM app under ``project_root`` as ``sam deploy`` with samconfig.toml would.

    ``parameter_overrides`` (like ``sam deploy --parameter-overrides``) win over samconfig.toml.
    """
    template_path = project_root / template_name
    template = load_template(template_path)
    config = load_samconfig(project_root / "samconfig.toml", config_env)
    stack = stack_name or config.stack_name or "scones"
    resolver = _Resolver(template, {}, stack, region)
    overrides = {**config.parameter_overrides, **(parameter_overrides or {})}
    resolver.parameters = _parameters(template, overrides)
    globals_fn = (template.get("Globals") or {}).get("Function") or {}

    functions: dict[str, FunctionSpec] = {}
    machines: list[StateMachineSpec] = []
    bucket: str | None = None
    for logical_id, resource in resolver.resources.items():
        if not isinstance(resource, dict):
            raise TemplateError(f"resource {logical_id} is not a map")
        if "Condition" in resource and not resolver.condition(str(resource["Condition"])):
            continue
        rtype = resource.get("Type")
        props = resource.get("Properties") or {}
        if rtype == "AWS::Serverless::Function":
            functions[logical_id] = _function(
                resolver, template_path.parent, logical_id, _merge_globals(globals_fn, props)
            )
        elif rtype == "AWS::Serverless::StateMachine":
            machines.append(_state_machine(resolver, template_path.parent, logical_id, props))
        elif rtype == "AWS::S3::Bucket" and bucket is None:
            bucket = resolver.resource_name(logical_id)
    if not functions:
        raise MissingPropertyError(f"{template_path.name} declares no AWS::Serverless::Function")
    if len(machines) != 1:
        raise TemplateError(
            f"{template_path.name} must declare exactly one state machine, found {len(machines)}"
        )
    machine = machines[0]
    endpoint_name = resolver.parameters.get("EndpointName") or next(
        (
            f.environment["ENDPOINT_NAME"]
            for f in functions.values()
            if "ENDPOINT_NAME" in f.environment
        ),
        DEFAULT_ENDPOINT_NAME,
    )
    return TwinApp(
        stack_name=stack,
        region=region,
        template_path=template_path,
        parameters=resolver.parameters,
        functions=functions,
        state_machine=machine,
        bucket=bucket or f"{stack}-images-local",
        incoming_prefix=_incoming_prefix(machine.rules),
        endpoint_name=endpoint_name,
    )
