"""The test suite's own guards and the CLI's wiring."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

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
        "graph",
        "console",
        "cost",
        "sagemaker",
    }
    missing = expected - names
    assert not missing, f"subcommands missing: {sorted(missing)} (modules: {COMMAND_MODULES})"


SERVERS = ("scones.twin.sfn_server", "scones.endpoint.server")


def _module_file(name: str) -> Path | None:
    base = Path(__file__).resolve().parents[1].joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(name: str) -> set[str]:
    """The scones modules ``name`` imports anywhere in its file (function-level imports too)."""
    path = _module_file(name)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if path else ():
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] == "scones" and _module_file(m)}


def test_no_server_reaches_a_cli_module() -> None:
    cli_modules = {"scones.cli", *COMMAND_MODULES}
    for server in SERVERS:
        assert _module_file(server), f"{server} moved: update SERVERS"
        seen, todo = set(), [server]
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(_imports(module))
        assert not seen & cli_modules, f"{server} imports {sorted(seen & cli_modules)}"


def test_the_sagemaker_source_dir_imports_nothing_of_ours() -> None:
    """``ml/`` is exactly what SageMaker receives: it must not import scones (or a package ``ml``)."""
    ml_dir = Path(__file__).resolve().parents[1] / "ml"
    files = sorted(ml_dir.rglob("*.py"))
    assert files, "ml/ has no Python files"
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"scones", "ml"}, f"{path} imports {name}"
    assert not (ml_dir / "__init__.py").exists(), "ml/ is a source dir, not a package"
