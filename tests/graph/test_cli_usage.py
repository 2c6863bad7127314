"""``scones graph`` usage errors: one line on stderr and exit 2, before any AWS call."""

from __future__ import annotations

from pathlib import Path

import pytest

from scones.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "FAILED", "--output", "x.svg"], "--status and --error go with --latest"),
        (["--latest"], "say where to write"),
    ],
)
def test_usage_errors_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["graph", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_nothing_deployed_says_deploy_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCONES_HOME", str(tmp_path))
    assert main(["graph", "--output", str(tmp_path / "g.svg")]) == 2
    assert "scones deploy --local" in capsys.readouterr().err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["graph", "--help"])
    assert "scones graph --latest --status FAILED" in capsys.readouterr().out
