"""Fixtures for the SAM application's unit tests: handlers loaded as the twin loads them, moto."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sam_helpers import FUNCTIONS, PROJECT, image_bytes, load_handler

from scones.twin import lambda_runtime
from scones.twin.lambda_runtime import LambdaContext


def pytest_configure(config: pytest.Config) -> None:
    """Under mutmut (``make mutation``), import the functions under their paths' module names.

    mutmut's trampolines switch a mutant on by its function's ``__module__``, the file's path
    with dots (``functions.classify_image.app``), while the twin imports each ``app.py`` under a
    name unique to its absolute path and the layer as ``scones_common``. Only the names change:
    the code, the layer on ``sys.path`` and every test stay as they are; the layer keeps its
    name (and its errors theirs) for the tests that check it (docs/testing.md).
    """
    if "MUTANT_UNDER_TEST" not in os.environ or getattr(lambda_runtime, "_by_path", False):
        return
    common = FUNCTIONS / "common" / "scones_common.py"
    name = "functions.common.scones_common"
    spec = importlib.util.spec_from_file_location(name, common)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = sys.modules["scones_common"] = module  # what `from scones_common` finds
    spec.loader.exec_module(module)  # its functions now carry the path's name
    module.__name__ = "scones_common"
    for value in vars(module).values():
        if isinstance(value, type) and value.__module__ == name:
            value.__module__ = "scones_common"
    twin_name = lambda_runtime._module_name

    def path_name(path: Path) -> str:
        resolved = path.resolve()
        if not resolved.is_relative_to(PROJECT):
            return twin_name(path)
        return ".".join(resolved.relative_to(PROJECT).with_suffix("").parts)

    lambda_runtime._module_name = path_name  # type: ignore[assignment]
    lambda_runtime._by_path = True  # type: ignore[attr-defined]


def _cold(folder: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The handler module with an empty client cache for this test, like a cold start."""
    module = load_handler(folder)
    if hasattr(module, "_clients"):
        monkeypatch.setattr(module, "_clients", {})
    return module


@pytest.fixture
def serialize(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _cold("serialize_image", monkeypatch)


@pytest.fixture
def classify(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _cold("classify_image", monkeypatch)


@pytest.fixture
def filter_fn(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _cold("filter_inferences", monkeypatch)


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _cold("idle_endpoint_guard", monkeypatch)


@pytest.fixture
def lambda_context() -> LambdaContext:
    """A Lambda context object as the twin passes it (name, request id, remaining time)."""
    return LambdaContext(function_name="scones-test-function", memory_limit_in_mb=256, timeout_s=30)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and region; nothing from the developer's AWS setup or the twin."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("MAX_IMAGE_BYTES", "ENDPOINT_NAME", "CONFIDENCE_THRESHOLD", "IDLE_HOURS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    """moto's in-memory AWS (S3, SageMaker, SageMaker Runtime, CloudWatch, Lambda, Step Functions)."""
    from moto import mock_aws

    with mock_aws(
        config={
            "stepfunctions": {"execute_state_machine": True},
            "lambda": {"use_docker": False},
        }
    ):
        yield


@pytest.fixture
def png() -> bytes:
    return image_bytes("PNG")
