"""``scones env`` output, the SeaweedFS command line, and ``up`` with a missing service."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from scones.settings import Settings
from scones.twin import services


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home", s3_port=23000)


def exported(lines: list[str]) -> dict[str, str]:
    """Run the lines in a real shell and read the variables back."""
    script = "\n".join(lines) + "\nenv -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={}).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_env_without_deployment(settings: Settings) -> None:
    lines = services.env_lines(settings)
    env = exported(lines)
    for key, value in settings.aws_env().items():
        assert env[key] == value
    assert "SCONES_BUCKET" not in env
    assert lines[-1].startswith("# nothing deployed yet")


def test_env_with_deployment(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    settings.deployed_file.write_text(
        json.dumps(
            {
                "bucket": "scones-images-local",
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:it's",
                "endpoint_name": "scones-image-classifier",
            }
        )
    )
    env = exported(services.env_lines(settings))
    assert env["SCONES_BUCKET"] == "scones-images-local"
    assert env["SCONES_STATE_MACHINE_ARN"].endswith(":it's")  # quoted safely
    assert env["SCONES_ENDPOINT_NAME"] == "scones-image-classifier"


def test_env_with_a_broken_deployed_file(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    settings.deployed_file.write_text("{not json")
    lines = services.env_lines(settings)
    assert lines[-1].startswith("# cannot read")
    exported(lines)  # still valid shell


def test_weed_binds_loopback_with_telemetry_off(settings: Settings) -> None:
    argv = services._weed_command(settings)
    assert argv[1] == "mini"
    assert "-ip=127.0.0.1" in argv and "-ip.bind=127.0.0.1" in argv
    assert "-master.telemetry=false" in argv
    assert f"-dir={settings.home / 's3'}" in argv
    ports = [int(a.split("=")[1]) for a in argv if ".port" in a and a.split("=")[1] not in ("0",)]
    assert sorted(ports) == list(range(23000, 23009))
    assert services._weed_ports(settings) == [*range(23001, 23009), 33008]


def test_find_weed_uses_the_venv_binary() -> None:
    weed = services.find_weed()
    assert weed is not None and weed.name == "weed"


def test_child_env_carries_the_settings(settings: Settings) -> None:
    env = services.child_env(replace(settings, endpoint_port=1234))
    assert env["SCONES_ENDPOINT_PORT"] == "1234"
    assert env["SCONES_HOME"] == str(settings.home)
    assert env["AWS_ENDPOINT_URL_S3"] == settings.s3_url
    assert Settings.from_env(env).endpoint_port == 1234


def test_up_reports_a_service_missing_from_the_checkout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = services.Service(
        name="later",
        title="Not built yet",
        marker="x",
        port=lambda s: 1,
        url=lambda s: "http://127.0.0.1:1",
        health_path="/",
        command=lambda s: ["false"],
        available=services._module_available("scones.twin.no_such_module"),
    )
    monkeypatch.setattr(services, "SERVICES", [missing])
    lines: list[str] = []
    reasons = services.up(settings, out=lines.append)
    assert reasons == [
        "later: not started: scones.twin.no_such_module is not part of this checkout yet"
    ]
    assert "MISSING" in lines[0]


def test_cli_help_explains_each_command() -> None:
    for command in ("up", "down", "status", "env"):
        result = subprocess.run(
            [sys.executable, "-m", "scones.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "SCONES_HOME" in result.stdout or "twin" in result.stdout
    out = subprocess.run(
        [sys.executable, "-m", "scones.cli", "up", "--help"], capture_output=True, text=True
    ).stdout
    assert "127.0.0.1" in out and 'eval "$(scones env)"' in out
