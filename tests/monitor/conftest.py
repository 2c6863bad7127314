"""Fixtures for the monitor tests: generated captures, the CLI in-process, an isolated SCONES_HOME.

The real SageMaker captures come from ``shared_capture`` (tests/conftest.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest
from monitor_helpers import write_generated_captures


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own SCONES_HOME, so the twin's endpoints never leak in."""
    home = tmp_path_factory.mktemp("scones-home")
    monkeypatch.setenv("SCONES_HOME", str(home))
    return home


@pytest.fixture
def captures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated capture set (``monitor_helpers.GENERATED``: 22 records in 12 flat files)."""
    return write_generated_captures(tmp_path_factory.mktemp("captures"))


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
