"""The twin's secret key is random per install (issue 14 item 3), not the one in this repository."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from scones.settings import DEFAULT_SECRET, Settings, ensure_secret, read_secret
from scones.twin import services


def test_ensure_secret_writes_a_private_random_secret_once(tmp_path: Path) -> None:
    assert read_secret(tmp_path) == DEFAULT_SECRET
    assert ensure_secret(tmp_path) is True
    first = read_secret(tmp_path)
    assert first != DEFAULT_SECRET and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600
    assert ensure_secret(tmp_path) is False  # kept across restarts
    assert read_secret(tmp_path) == first
    other = tmp_path / "other"
    ensure_secret(other)
    assert read_secret(other) != first  # per install


def test_from_env_reads_the_file_and_the_override_wins(tmp_path: Path) -> None:
    ensure_secret(tmp_path)
    settings = Settings.from_env({"SCONES_HOME": str(tmp_path)})
    assert settings.secret_access_key == read_secret(tmp_path)
    assert settings.aws_env()["AWS_SECRET_ACCESS_KEY"] == settings.secret_access_key
    env = {"SCONES_HOME": str(tmp_path), "SCONES_SECRET_ACCESS_KEY": "given"}
    assert Settings.from_env(env).secret_access_key == "given"
    # every service gets the secret explicitly, so a child reading from_env verifies with it
    assert services.child_env(settings)["SCONES_SECRET_ACCESS_KEY"] == settings.secret_access_key


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"secret_access_key": 5}'])
def test_a_damaged_file_falls_back_to_the_default(tmp_path: Path, content: str) -> None:
    (tmp_path / "credentials.json").write_text(content)
    assert read_secret(tmp_path) == DEFAULT_SECRET


def test_scones_up_writes_the_secret_only_when_nothing_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scones.cli import main

    monkeypatch.setenv("SCONES_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCONES_SECRET_ACCESS_KEY", raising=False)
    seen: list[str] = []
    monkeypatch.setattr(services, "up", lambda s, only=None: seen.append(s.secret_access_key) or [])
    monkeypatch.setattr(services, "running_pid", lambda s, service: 4242)
    assert main(["up"]) == 0
    assert seen == [DEFAULT_SECRET]  # services already run with the old secret: not swapped
    assert not (tmp_path / "home" / "credentials.json").exists()
    monkeypatch.setattr(services, "running_pid", lambda s, service: None)
    assert main(["up"]) == 0
    assert seen[-1] == read_secret(tmp_path / "home") != DEFAULT_SECRET
