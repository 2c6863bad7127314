"""Helpers for the SAM application's unit tests (imported by tests/unit/*)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
FUNCTIONS = PROJECT / "functions"
EVENTS = PROJECT / "events"
TEMPLATE = PROJECT / "template.yaml"
ASL = PROJECT / "statemachine" / "image_classification.asl.json"

HANDLERS = {
    "SerializeImageFunction": "serialize_image",
    "ClassifyImageFunction": "classify_image",
    "FilterInferencesFunction": "filter_inferences",
}

#: A real 1x1 GIF whose bytes are all ASCII (moto's sagemaker-runtime mock decodes request
#: bodies as UTF-8, so binary PNG bodies cannot go through it; see test_classify_image.py).
ASCII_GIF = (
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def load_handler(folder: str) -> ModuleType:
    """Import ``functions/<folder>/app.py`` under a unique module name (as the twin does)."""
    name = f"scones_test_fn_{folder}"
    spec = importlib.util.spec_from_file_location(name, FUNCTIONS / folder / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def read_event(name: str) -> dict[str, Any]:
    """One of the sample events under ``events/``."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def queue_endpoint_results(*bodies: str, content_type: str = "application/json") -> None:
    """Queue answers for moto's sagemaker-runtime through its documented moto-api route."""
    import requests

    results = [
        {
            "Body": body,
            "ContentType": content_type,
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "",
        }
        for body in bodies
    ]
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
        json={"results": results, "region": "us-east-1"},
        timeout=5,
    )
    assert response.status_code == 201, response.text


def image_bytes(fmt: str, size: tuple[int, int] = (32, 32), **save: Any) -> bytes:
    """A small real image in ``fmt`` made with Pillow."""
    from PIL import Image

    image = Image.new("RGB", size)
    pixels = image.load()
    assert pixels is not None
    for x in range(size[0]):
        for y in range(size[1]):
            pixels[x, y] = ((x * 7) % 256, (y * 11) % 256, ((x + y) * 5) % 256)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def sam_executable() -> str:
    """The SAM CLI: ``$SCONES_SAM``, else ``.venv/sam/bin/sam``; fail with how to install it."""
    candidate = os.environ.get("SCONES_SAM") or str(PROJECT / ".venv" / "sam" / "bin" / "sam")
    if not (Path(candidate).is_file() or shutil.which(candidate)):
        pytest.fail(f"AWS SAM CLI not found at {candidate}: run `make install-sam` to install it")
    return candidate


# ------------------------------------------------------------------------------ template


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation short tags (!Ref, !Sub, ...) into their long form."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """``template.yaml`` as plain data, short tags in their long form."""
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506
    return data


def placeholders(text: str) -> set[str]:
    """The ``${Name}`` placeholders in an ASL definition."""
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace every ``${Name}`` as CloudFormation's DefinitionSubstitutions would."""
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda match: values[match.group(1)], text)


PLAUSIBLE_SUBSTITUTIONS = {
    "SerializeImageFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:scones-SerializeImage",
    "ClassifyImageFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:scones-ClassifyImage",
    "FilterInferencesFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:scones-FilterInferences",
    "EndpointName": "scones-image-classifier",
    "ConfidenceThreshold": "0.93",
}


def policy_statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    """The inline statements of a function's ``Policies`` (SAM policy templates skipped)."""
    statements: list[dict[str, Any]] = []
    for policy in function.get("Properties", {}).get("Policies", []) or []:
        if isinstance(policy, dict) and "Statement" in policy:
            statements.extend(policy["Statement"])
    return statements


def wildcard_grants(statements: list[dict[str, Any]], services: tuple[str, ...]) -> list[str]:
    """Actions of ``services`` granted on ``Resource: "*"`` (or an ARN that is only ``*``)."""
    found = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement.get("Resource", [])
        resources = [resources] if not isinstance(resources, list) else resources
        risky = [a for a in actions if a == "*" or a.split(":")[0] in services]
        if risky and any(r == "*" for r in resources):
            found.extend(risky)
    return found
