"""Read one ``AWS::Serverless::Function``: Globals merged, code folder, handler, layers, env."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from scones.twin.template.errors import (
    MissingPropertyError,
    TemplateError,
    TemplateNotFoundError,
    UnsupportedLayerError,
)
from scones.twin.template.intrinsics import LAYER_TYPES, NO_VALUE, Resolver
from scones.twin.template.model import FunctionSpec


def merge_globals(globals_: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """Merge SAM ``Globals`` into resource properties (maps merge, lists append, scalars win)."""
    merged = copy.deepcopy(globals_)
    for key, value in props.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def _local_folder(resolver: Resolver, root: Path, logical_id: str, prop: str, value: Any) -> Path:
    uri = resolver.resolve(value)
    if not uri or uri is NO_VALUE:
        raise MissingPropertyError(
            f"{logical_id}: no {prop} (set it on the resource or in Globals)"
        )
    if not isinstance(uri, str) or uri.startswith("s3://"):
        raise TemplateError(
            f"{logical_id}: {prop} must be a local folder for the twin, got {uri!r}"
        )
    return (root / uri).resolve()


def layer_folder(resolver: Resolver, root: Path, layer: Any) -> Path:
    """The folder a layer puts on ``sys.path``, for a ``!Ref`` to a LayerVersion of the template.

    A layer with a Python ``BuildMethod`` is built from its ``ContentUri`` into ``python/``, so
    the folder itself is the path entry; a prebuilt one brings its own ``python/`` subfolder.
    """
    logical_id = layer.get("Ref") if isinstance(layer, dict) else None
    resource = resolver.resources.get(logical_id) if isinstance(logical_id, str) else None
    if not resource or resource.get("Type") not in LAYER_TYPES:
        raise UnsupportedLayerError(
            f"layer {layer!r} is not a !Ref to a LayerVersion of this template: "
            "the twin loads only layers it can find on disk"
        )
    props = resource.get("Properties") or {}
    folder = _local_folder(
        resolver, root, str(logical_id), "ContentUri", props.get("ContentUri", props.get("Content"))
    )
    build_method = str((resource.get("Metadata") or {}).get("BuildMethod", ""))
    path = folder if build_method.startswith("python") else folder / "python"
    if not path.is_dir():
        raise TemplateNotFoundError(f"{logical_id}: layer folder {path} does not exist")
    return path


def _environment(resolver: Resolver, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
    env = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
    if not isinstance(env, dict):
        raise TemplateError(f"{logical_id}: Environment.Variables must be a map")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def tag_map(resolver: Resolver, logical_id: str, tags: Any) -> dict[str, str]:
    """A SAM resource's ``Tags`` (a map) or a CloudFormation one's (``[{Key, Value}]``) as a dict."""
    value = resolver.resolve(tags or {})
    if isinstance(value, list):
        try:
            return {str(item["Key"]): str(item["Value"]) for item in value}
        except (KeyError, TypeError):
            raise TemplateError(f"{logical_id}: Tags must be a list of Key/Value maps") from None
    if not isinstance(value, dict):
        raise TemplateError(f"{logical_id}: Tags must be a map")
    return {str(k): str(v) for k, v in value.items()}


def read_function(
    resolver: Resolver, root: Path, logical_id: str, props: dict[str, Any]
) -> FunctionSpec:
    """The function as the twin runs it; ``props`` already hold the Globals."""
    folder = _local_folder(resolver, root, logical_id, "CodeUri", props.get("CodeUri"))
    handler = resolver.resolve(props.get("Handler"))
    if not handler or "." not in str(handler):
        raise MissingPropertyError(
            f"{logical_id}: Handler must look like module.function, got {handler!r}"
        )
    spec = FunctionSpec(
        logical_id=logical_id,
        name=resolver.resource_name(logical_id),
        arn=resolver.get_att(logical_id, "Arn"),
        code_uri=folder,
        handler=str(handler),
        runtime=str(resolver.resolve(props.get("Runtime")) or "python3.11"),
        timeout=int(resolver.resolve(props.get("Timeout")) or 3),
        memory_size=int(resolver.resolve(props.get("MemorySize")) or 128),
        environment=_environment(resolver, logical_id, props),
        layers=tuple(layer_folder(resolver, root, layer) for layer in props.get("Layers") or []),
        tags=tag_map(resolver, logical_id, props.get("Tags")),
    )
    if not spec.handler_file.is_file():
        raise TemplateNotFoundError(
            f"{logical_id}: handler file {spec.handler_file} does not exist"
        )
    return spec
