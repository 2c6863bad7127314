"""Fixtures for the offline-stack tier: the real twin, started once per test session.

``twin_settings`` (session): a temporary ``SCONES_HOME`` and free loopback ports, the real
``scones up`` code path (``scones.cli.main(["up"])``), and ``scones down`` at the end of the
session. Returns the ``Settings``. Until ``scones.twin.sfn_server`` exists only S3 and the
endpoint run. While each test module under tests/stack runs (its module-scoped fixtures
included), ``os.environ`` holds the twin's SCONES_* settings and ``settings.aws_env()``, so plain
``boto3.client("s3")`` etc. reach the twin; other test folders never see these variables.

``tiny_model_tar`` (session): a real ``model.tar.gz`` built by ``scones.training.tiny.build_tiny_model``
(the real ETL + training on a small synthetic CIFAR-100 archive, a few seconds).

``twin_bucket`` (session): an S3 bucket created on the twin for tests to write into.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scones.settings import Settings, ensure_secret
from scones.twin import ports


def twin_environ(home: Path) -> dict[str, str]:
    """SCONES_* variables for a private twin in ``home`` on free ports."""
    return {
        "SCONES_HOME": str(home),
        **ports.free_ports(),
        "SCONES_CAPTURE_FLUSH_SECONDS": "1",
        "SCONES_BRIDGE": "1",  # whatever an earlier tier left in the environment
    }


def _forget_boto3_session() -> None:
    """boto3's default session caches the credentials it found first: drop it on every switch."""
    import boto3

    boto3.DEFAULT_SESSION = None


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    _forget_boto3_session()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        _forget_boto3_session()


def twin_variables(settings: Settings, scones: dict[str, str]) -> dict[str, str]:
    """What a test sees in ``os.environ`` while the twin runs: SCONES_* + ``aws_env()``."""
    return {**scones, **settings.aws_env()}


@pytest.fixture(scope="session")
def _twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    from scones.cli import main

    home = tmp_path_factory.mktemp("scones-home")
    scones = twin_environ(home)
    ensure_secret(home)  # as `scones up` does: the private twin gets its own random secret
    with _environ(scones):
        settings = Settings.from_env()
    variables = twin_variables(settings, scones)
    argv = ["up"]
    if importlib.util.find_spec("scones.twin.sfn_server") is None:
        argv += ["--only", "s3", "--only", "endpoint"]
    try:
        with _environ(variables):
            code = main(argv)
        if code != 0:
            pytest.fail(f"scones up failed with exit code {code}; logs in {settings.home / 'logs'}")
        yield settings, variables
    finally:
        with _environ(variables):
            main(["down"])


@pytest.fixture(scope="module", autouse=True)
def _twin_environment(_twin: tuple[Settings, dict[str, str]]) -> Iterator[None]:
    """Point boto3 at the twin for each stack test module (module fixtures included), and
    only there: later test tiers in the same session see the environment they started with."""
    with _environ(_twin[1]):
        yield


@pytest.fixture(scope="session")
def twin_settings(_twin: tuple[Settings, dict[str, str]]) -> Settings:
    """The running offline twin (see module docstring); stopped at the end of the session."""
    return _twin[0]


@pytest.fixture(scope="session")
def tiny_model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, small ``model.tar.gz`` (``scones.training.tiny.build_tiny_model``)."""
    from scones.training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def twin_bucket(_twin: tuple[Settings, dict[str, str]]) -> str:
    """A fresh bucket on the twin's S3."""
    import boto3

    name = f"scones-test-{uuid.uuid4().hex[:12]}"
    with _environ(_twin[1]):  # session fixtures run before the module environment applies
        boto3.client("s3").create_bucket(Bucket=name)
    return name
