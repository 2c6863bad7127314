"""Fixtures for the SAM application's unit tests: handlers loaded as the twin loads them, moto."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sam_helpers import image_bytes, load_handler

from scones.twin.lambda_runtime import LambdaContext


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
