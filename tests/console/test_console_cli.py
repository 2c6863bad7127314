"""``scones console``: where it reads from (twin or AWS), its address checks, its help."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from scones.cli import main
from scones.errors import CommandError
from scones.settings import Settings


def _settings(tmp_path: Path, **deployed: Any) -> Settings:
    settings = Settings(project_root=tmp_path, home=tmp_path / "home", moto_port=5999, s3_port=5998)
    if deployed:
        settings.home.mkdir(parents=True)
        settings.deployed_file.write_text(json.dumps(deployed))
    return settings


def test_twin_source_reads_the_deployment_and_points_at_the_twin(tmp_path: Path) -> None:
    from scones.console.source import twin_source

    settings = _settings(
        tmp_path,
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:scones-ImageClassification",
        endpoint_name="ep",
        capture_uri="s3://b/data_capture",
    )
    classes = settings.endpoints_dir / "ep" / "model" / "classes.json"
    classes.parent.mkdir(parents=True)
    classes.write_text(json.dumps({"classes": ["bicycle", "motorcycle"]}))
    source = twin_source(settings)
    assert source.mode == "twin" and source.endpoint_name == "ep"
    assert source.sfn.meta.endpoint_url == "http://127.0.0.1:5999"
    assert source.s3.meta.endpoint_url == "http://127.0.0.1:5998"
    assert source.sfn._request_signer._credentials.access_key == settings.access_key_id
    assert source.class_name(1) == "1 (motorcycle)" and source.class_name(7) == "7"
    assert source.report == settings.home / "monitor" / "report.html"


def test_nothing_deployed_falls_back_to_aws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto import mock_aws

    from scones.console.cli import pick_source

    monkeypatch.setenv("SCONES_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    args = argparse.Namespace(aws=False, state_machine=None, endpoint=None, classes="a,b")
    with mock_aws():
        import boto3

        sfn = boto3.client("stepfunctions")
        for name in ("other", "scones-ImageClassification"):
            sfn.create_state_machine(
                name=name,
                definition='{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}',
                roleArn="arn:aws:iam::123456789012:role/r",
            )
        source = pick_source(args)
    assert source.mode == "aws" and source.state_machine_arn.endswith(":scones-ImageClassification")
    assert source.classes == ["a", "b"] and "eu-west-1" in source.where
    assert "showing AWS with your credentials" in capsys.readouterr().err


def test_only_loopback_and_a_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from scones.console.cli import check_address

    with pytest.raises(CommandError, match="127.0.0.1 only"):
        check_address("0.0.0.0", 8090)
    with pytest.raises(CommandError, match="not a port"):
        check_address("127.0.0.1", 70000)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"port {port} on 127.0.0.1 is taken"):
            check_address("127.0.0.1", port)


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["console", "--host", "192.168.1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "scones console: --host 192.168.1.5: the console binds 127.0.0.1 only (it shows your AWS data)"
    )


def test_help_explains_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["console", "--help"])
    out = capsys.readouterr().out
    assert "read-only" in out and "--port" in out and "Examples:" in out and "--aws" in out


def test_a_twin_that_is_not_running_is_one_line_on_the_page(tmp_path: Path) -> None:
    from console_helpers import asgi_get

    from scones.console.app import close_app, create_app
    from scones.console.source import twin_source

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = Settings(
        project_root=tmp_path, home=tmp_path / "home", moto_port=closed, s3_port=closed
    )
    settings.home.mkdir()
    settings.deployed_file.write_text(
        json.dumps({"state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:m"})
    )
    app = create_app(twin_source(settings), 8090)
    try:
        status, _, page = asgi_get(app, "/")
    finally:
        close_app(app)
    assert status == 503 and "the offline twin is not reachable" in page and "scones up" in page


def test_aws_without_a_region_is_one_line(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from scones.console.source import aws_source

    settings = Settings(project_root=tmp_path, home=tmp_path / "home")
    with pytest.raises(CommandError, match="^no AWS region: set AWS_DEFAULT_REGION"):
        aws_source(settings, session=SimpleNamespace(region_name=None))
