"""Helpers for the SAM application's tests (tests/functions/*): paths, events, images, SAM CLI.

The template is read and the handlers are imported by the twin's own code
(``scones.twin.template`` and ``scones.twin.lambda_runtime.load_handler``, layers included),
so these tests exercise exactly what ``scones deploy --local`` and ``scones invoke`` run.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto_helpers import queue_endpoint_results  # noqa: F401  (re-exported for the tests)

from scones.twin import lambda_runtime
from scones.twin.template import TwinApp, load_template, read_app
from scones.twin.template import substitute_definition as substitute  # noqa: F401

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
#: Functions the template declares only under a condition: logical id -> (folder, the
#: parameter overrides that deploy it).
OPTIONAL_HANDLERS = {
    "IdleEndpointGuardFunction": ("idle_endpoint_guard", {"IdleEndpointGuard": "enabled"}),
}
ALL_HANDLERS = {**HANDLERS, **{k: folder for k, (folder, _) in OPTIONAL_HANDLERS.items()}}
#: Overrides that switch every optional part of the template on.
EVERYTHING_ON = {k: v for _, overrides in OPTIONAL_HANDLERS.values() for k, v in overrides.items()}
#: The ASL's Task states and the function each one invokes.
TASK_FUNCTIONS = {
    "SerializeImage": "SerializeImageFunction",
    "ClassifyImage": "ClassifyImageFunction",
    "FilterInferences": "FilterInferencesFunction",
}

#: A real 1x1 GIF whose bytes are all ASCII (moto's sagemaker-runtime mock decodes request
#: bodies as UTF-8, so binary PNG bodies cannot go through it; see test_classify_image.py).
ASCII_GIF = (
    b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def read_template() -> dict[str, Any]:
    """``template.yaml`` as plain data, short tags in their long form (the twin's reader)."""
    return load_template(TEMPLATE)


@functools.cache
def project_app() -> TwinApp:
    """The project's SAM app as the twin reads it (parameters from samconfig.toml)."""
    return read_app(PROJECT)


@functools.cache
def full_app() -> TwinApp:
    """The project's SAM app with every optional function deployed (``EVERYTHING_ON``)."""
    return read_app(PROJECT, parameter_overrides=EVERYTHING_ON)


def load_handler(folder: str) -> ModuleType:
    """The handler module of ``functions/<folder>``, imported as the twin imports it.

    ``lambda_runtime.load_handler`` puts the function's layer folders on ``sys.path`` first and
    imports the module once per process, as Lambda does per execution environment.
    """
    spec = next(f for f in full_app().functions.values() if f.code_uri.name == folder)
    handler = lambda_runtime.load_handler(spec.handler_file, spec.handler_name, spec.layers)
    return sys.modules[handler.__module__]


def read_event(name: str) -> dict[str, Any]:
    """One of the sample events under ``events/``."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


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


#: The wheels ``sam build`` needs for SerializeImage's requirements.txt, fetched once by
#: ``make install-sam`` (``$SCONES_LAMBDA_WHEELS`` overrides the folder): the arm64 wheels it
#: packages and this machine's, which its first ``pip download`` pass resolves with.
LAMBDA_WHEELS = PROJECT / ".venv" / "sam" / "wheels"


def lambda_wheelhouse() -> Path:
    """The wheel folder for an offline ``sam build``; fail with how to fill it."""
    folder = Path(os.environ.get("SCONES_LAMBDA_WHEELS") or LAMBDA_WHEELS)
    pins = (FUNCTIONS / "serialize_image" / "requirements.txt").read_text().split()
    names = {p.split("==")[0].lower().replace("-", "_") + "-" + p.split("==")[1] for p in pins}
    wheels = [w.name.lower() for w in folder.glob("*.whl")] if folder.is_dir() else []
    for arch in ("aarch64", "x86_64"):
        missing = [n for n in names if not any(w.startswith(n) and arch in w for w in wheels)]
        if missing:
            pytest.fail(
                f"no {arch} wheels for {', '.join(sorted(missing))} in {folder}: run "
                "`make install-sam` (it downloads them once)"
            )
    return folder


def offline_pip(wheelhouse: Path) -> dict[str, str]:
    """Environment that makes pip (also the one ``sam build`` runs) use only ``wheelhouse``."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}


def sam_executable() -> str:
    """The SAM CLI: ``$SCONES_SAM``, else ``.venv/sam/bin/sam``; fail with how to install it."""
    candidate = os.environ.get("SCONES_SAM") or str(PROJECT / ".venv" / "sam" / "bin" / "sam")
    if not (Path(candidate).is_file() or shutil.which(candidate)):
        pytest.fail(f"AWS SAM CLI not found at {candidate}: run `make install-sam` to install it")
    return candidate


# ------------------------------------------------------------------------------ template checks


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
