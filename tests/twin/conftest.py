"""Fixtures for the workflow unit tests: a small SAM app with trivial handlers, moto in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from workflow_sample_app import write_app

from scones.settings import Settings


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    """A small SAM app (two functions, one state machine) in a temporary folder."""
    return write_app(tmp_path / "app")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The production sfn server (Lambda binding + fixes) on a free loopback port, in this
    process, without the bridge."""
    from scones.twin.sfn_server import ServerOptions, start_server

    home = tmp_path_factory.mktemp("home")
    settings = Settings(project_root=home, home=home)
    running = start_server(
        settings, ServerOptions("127.0.0.1", 0, bridge=False, keep_executions=50)
    )
    yield running
    running.stop()


@pytest.fixture
def settings_for(moto_server: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build Settings for an app root that point Lambda / Step Functions at ``moto_server``."""

    def build(root: Path) -> Settings:
        return Settings(project_root=root, home=tmp_path / "home", moto_port=moto_server.port)  # type: ignore[attr-defined]

    return build
