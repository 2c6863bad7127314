"""``scones env`` leaves no call unanswered: one AWS CLI call per service the workflow, the
README or the notebook uses, each answered by the twin with network access refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from awscli_helpers import png_file

pytestmark = pytest.mark.stack

#: Every AWS service the project calls (handlers, scones CLI, README, notebook, docs), with one
#: call each. service-quotas: the twin answers AWS's UnknownOperationException.
CALLS = {
    "s3": ["s3api", "list-buckets"],
    "stepfunctions": ["stepfunctions", "list-state-machines"],
    "lambda": ["lambda", "list-functions"],
    "sagemaker": ["sagemaker", "list-endpoints"],
    "sts": ["sts", "get-caller-identity"],
    "iam": ["iam", "list-roles"],
    "logs": ["logs", "describe-log-groups"],
    "events": ["events", "list-rules"],
    "cloudwatch": ["cloudwatch", "list-metrics"],
    "cloudformation": ["cloudformation", "describe-stacks"],
    "service-quotas": ["service-quotas", "list-services"],
}


@pytest.mark.parametrize("service", sorted(CALLS))
def test_each_service_is_answered_by_the_twin(aws, service: str) -> None:  # type: ignore[no-untyped-def]
    done = aws(*CALLS[service])
    assert "Could not connect" not in done.stderr and "scones-network-guard" not in done.stderr
    if done.code != 0:  # an AWS-shaped error from the twin is an answer, not a leak
        assert "An error occurred (" in done.stderr, done.stderr
        assert "(500)" not in done.stderr and "html" not in done.stderr.lower()


def test_sagemaker_runtime_is_answered_by_the_endpoint(aws, cli_twin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "answer.json"
    done = aws(
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        cli_twin.exports["SCONES_ENDPOINT_NAME"],
        "--content-type",
        "image/png",
        "--body",
        f"fileb://{png_file(tmp_path)}",
        str(out),
    )
    assert done.ok()["ContentType"].startswith("application/json")
    assert len(__import__("json").loads(out.read_text())) == 2  # two classes' probabilities


def test_the_guard_refuses_what_the_twin_does_not_answer(aws) -> None:  # type: ignore[no-untyped-def]
    """Without the catch-all, IAM would go to iam.amazonaws.com: the guard stops it, so the
    calls above really were answered on this machine."""
    done = aws("iam", "list-roles", env={"AWS_ENDPOINT_URL": None})
    assert done.code != 0
    assert "iam.amazonaws.com" in done.stderr
