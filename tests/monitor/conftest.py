"""Fixtures for the monitor tests: the real captures, record builders, an isolated SCONES_HOME."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest
from monitor_helpers import SHARED_CAPTURE


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own SCONES_HOME, so the twin's endpoints never leak in."""
    home = tmp_path_factory.mktemp("scones-home")
    monkeypatch.setenv("SCONES_HOME", str(home))
    return home


@pytest.fixture
def real_captures() -> Path:
    """The 22 records written by a real SageMaker endpoint (shared data, read-only)."""
    if not SHARED_CAPTURE.is_dir():
        pytest.skip(f"shared Data Capture files not found at {SHARED_CAPTURE.resolve()}")
    return SHARED_CAPTURE.resolve()


@pytest.fixture
def monitor_cli() -> Callable[..., int]:
    """Run ``scones monitor ARGS`` in-process (only the monitor parser) and return its exit code."""
    from scones.monitor import cli as monitor

    def run(*args: str) -> int:
        parser = argparse.ArgumentParser(prog="scones")
        monitor.register(parser.add_subparsers(dest="command"))
        parsed = parser.parse_args(["monitor", *args])
        return int(parsed.func(parsed))

    return run
