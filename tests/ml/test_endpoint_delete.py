"""`scones sagemaker delete` waits until the endpoint is gone (issue 16, item 6): boto3's
``endpoint_deleted`` waiter, one attempt per poll, bounded, with progress."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from sagemaker_helpers import (
    BUCKET,
    ENDPOINT,
    REGION,
    ROLE,
    cli,
    endpoint_description,
    stubbed_sagemaker,
)

from scones.endpoint import sagemaker as endpoint_sm

DESCRIBE = {"EndpointName": ENDPOINT}


def _gone(stub: Stubber) -> None:
    message = f"Could not find endpoint '{ENDPOINT}'."
    stub.add_client_error("describe_endpoint", "ValidationException", message, 400, None, DESCRIBE)


def test_wait_polls_the_waiter_until_the_endpoint_is_gone() -> None:
    sm, stub = stubbed_sagemaker()
    for _ in range(2):
        stub.add_response("describe_endpoint", endpoint_description("Deleting"), DESCRIBE)
    _gone(stub)
    sleeps: list[float] = []
    with stub:
        endpoint_sm.wait_until_deleted(sm, ENDPOINT, poll_s=7, sleep=sleeps.append, progress=False)
        stub.assert_no_pending_responses()
    assert sleeps == [7, 7]


def test_wait_is_bounded() -> None:
    sm, stub = stubbed_sagemaker()
    for _ in range(3):
        stub.add_response("describe_endpoint", endpoint_description("Deleting"), DESCRIBE)
    sleeps: list[float] = []
    with stub, pytest.raises(endpoint_sm.EndpointDeleteError, match=r"still exists \(Deleting\)"):
        endpoint_sm.wait_until_deleted(
            sm, ENDPOINT, poll_s=10, timeout_s=30, sleep=sleeps.append, progress=False
        )
    assert sleeps == [10, 10]  # 3 checks, no sleep after the last


def test_wait_stops_on_failed_or_other_errors() -> None:
    sm, stub = stubbed_sagemaker()
    stub.add_response("describe_endpoint", endpoint_description("Failed"), DESCRIBE)
    stub.add_client_error("describe_endpoint", "AccessDeniedException", "no", 400, None, DESCRIBE)
    with stub:
        with pytest.raises(endpoint_sm.EndpointDeleteError, match="terminal failure state"):
            endpoint_sm.wait_until_deleted(sm, ENDPOINT, sleep=lambda s: None, progress=False)
        with pytest.raises(endpoint_sm.EndpointDeleteError, match="AccessDeniedException"):
            endpoint_sm.wait_until_deleted(sm, ENDPOINT, sleep=lambda s: None, progress=False)


def test_delete_of_an_endpoint_already_deleting_only_waits() -> None:
    sm, stub = stubbed_sagemaker()
    stub.add_response("describe_endpoint", endpoint_description("Deleting"), DESCRIBE)
    stub.add_client_error(
        "describe_endpoint_config",
        "ValidationException",
        "Could not find endpoint configuration",
        400,
        None,
        {"EndpointConfigName": "scones-config-x"},
    )
    stub.add_client_error(
        "delete_endpoint_config",
        "ValidationException",
        "Could not find endpoint configuration",
        400,
        None,
        {"EndpointConfigName": "scones-config-x"},
    )
    stub.add_response("describe_endpoint", endpoint_description("Deleting"), DESCRIBE)
    _gone(stub)
    with stub:  # no DeleteEndpoint call: a second one would fail on a Deleting endpoint
        deleted = endpoint_sm.delete(sm, ENDPOINT, poll_s=1, sleep=lambda s: None, progress=False)
        stub.assert_no_pending_responses()
    assert deleted == [f"endpoint {ENDPOINT}"]


def test_deploy_while_deleting_says_so() -> None:
    sm, stub = stubbed_sagemaker()
    stub.add_response("describe_endpoint", endpoint_description("Deleting"), DESCRIBE)
    with stub, pytest.raises(endpoint_sm.EndpointExistsError, match="is still being deleted"):
        endpoint_sm.ensure_absent(sm, ENDPOINT)


def _deploy() -> int:
    return cli(
        "deploy",
        "--model-data",
        f"s3://{BUCKET}/scones/output/job/output/model.tar.gz",
        "--no-wheels",
        "--bucket",
        BUCKET,
        "--role",
        ROLE,
        "--region",
        REGION,
        "--quiet",
    )


def test_delete_then_redeploy_at_once(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert _deploy() == 0
    assert cli("delete", "--region", REGION, "--quiet") == 0
    assert "is gone" in capsys.readouterr().out
    assert _deploy() == 0  # no EndpointExistsError
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointStatus"] == "InService"


def test_delete_no_wait_does_not_wait(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _deploy() == 0
    calls: list[Any] = []
    monkeypatch.setattr(endpoint_sm, "wait_until_deleted", lambda *a, **k: calls.append(a))
    assert cli("delete", "--region", REGION, "--quiet", "--no-wait") == 0
    assert calls == [] and "is gone" not in capsys.readouterr().out
