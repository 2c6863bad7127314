"""The test suite's own guards and the CLI's wiring."""

from __future__ import annotations

import socket

import pytest

from scones.cli import COMMAND_MODULES, build_parser


def test_tests_cannot_reach_the_network() -> None:
    with socket.socket() as sock, pytest.raises(OSError, match="may not reach the network"):
        sock.connect(("192.0.2.1", 80))


def test_every_stage_registers_its_commands() -> None:
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    names = set(choices)
    expected = {
        "etl",
        "train",
        "up",
        "down",
        "status",
        "env",
        "deploy",
        "invoke",
        "run",
        "classify",
        "monitor",
        "sagemaker",
    }
    missing = expected - names
    assert not missing, f"subcommands missing: {sorted(missing)} (modules: {COMMAND_MODULES})"
