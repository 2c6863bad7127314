"""Read the SAM app (template.yaml + samconfig.toml) into what ``scones deploy --local`` creates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from scones.twin.template.errors import MissingPropertyError, TemplateError
from scones.twin.template.functions import merge_globals, read_function
from scones.twin.template.intrinsics import Resolver
from scones.twin.template.loading import load_template
from scones.twin.template.model import DEFAULT_ENDPOINT_NAME, FunctionSpec, TwinApp
from scones.twin.template.parameters import resolve_parameters
from scones.twin.template.samconfig import load_samconfig
from scones.twin.template.state_machine import read_state_machine


def _deployed_resources(resolver: Resolver) -> dict[str, tuple[str, dict[str, Any]]]:
    """``logical id -> (type, properties)`` of the resources whose Condition holds."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for logical_id, resource in resolver.resources.items():
        if not isinstance(resource, dict):
            raise TemplateError(f"resource {logical_id} is not a map")
        if "Condition" in resource and not resolver.condition(str(resource["Condition"])):
            continue
        found[logical_id] = (str(resource.get("Type")), resource.get("Properties") or {})
    return found


def _endpoint_name(parameters: dict[str, str], functions: dict[str, FunctionSpec]) -> str:
    """The EndpointName parameter, else a function's ENDPOINT_NAME, else the default."""
    if parameters.get("EndpointName"):
        return parameters["EndpointName"]
    for function in functions.values():
        if "ENDPOINT_NAME" in function.environment:
            return function.environment["ENDPOINT_NAME"]
    return DEFAULT_ENDPOINT_NAME


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
    root = template_path.parent
    config = load_samconfig(project_root / "samconfig.toml", config_env)
    stack = stack_name or config.stack_name or "scones"
    overrides = {**config.parameter_overrides, **(parameter_overrides or {})}
    resolver = Resolver(template, resolve_parameters(template, overrides), stack, region)
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    resources = _deployed_resources(resolver)
    functions = {
        logical_id: read_function(resolver, root, logical_id, merge_globals(globals_fn, props))
        for logical_id, (rtype, props) in resources.items()
        if rtype == "AWS::Serverless::Function"
    }
    machines = [
        read_state_machine(resolver, root, logical_id, props)
        for logical_id, (rtype, props) in resources.items()
        if rtype == "AWS::Serverless::StateMachine"
    ]
    buckets = [i for i, (rtype, _) in resources.items() if rtype == "AWS::S3::Bucket"]
    if not functions:
        raise MissingPropertyError(f"{template_path.name} declares no AWS::Serverless::Function")
    if len(machines) != 1:
        raise TemplateError(
            f"{template_path.name} must declare exactly one state machine, found {len(machines)}"
        )
    if config.tags:  # CloudFormation copies the stack's tags; a resource's own tags win
        functions = {k: replace(f, tags={**config.tags, **f.tags}) for k, f in functions.items()}
        machines[0] = replace(machines[0], tags={**config.tags, **machines[0].tags})
    return TwinApp(
        stack_name=stack,
        region=region,
        template_path=template_path,
        parameters=resolver.parameters,
        functions=functions,
        state_machine=machines[0],
        bucket=resolver.resource_name(buckets[0]) if buckets else f"{stack}-images-local",
        incoming_prefix=machines[0].incoming_prefix,
        endpoint_name=_endpoint_name(resolver.parameters, functions),
    )
