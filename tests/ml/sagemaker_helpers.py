"""What the SageMaker-path tests share: names, the CLI runner, stubbed Service Quotas and
SageMaker clients (botocore's Stubber: exact requests, no network)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.stub import Stubber

from scones import sagemaker_cli

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/scones-sagemaker"
BUCKET = "scones-test-bucket"
ENDPOINT = "scones-image-classifier"
QUOTA_PAGE = {"ServiceCode": "sagemaker", "MaxResults": 100}


def cli(*argv: str) -> int:
    """Run ``scones sagemaker ARGV`` in-process; return its exit code."""
    parser = argparse.ArgumentParser()
    sagemaker_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sagemaker", *argv])
    return int(args.func(args))


def _quota(name: str, code: str, value: float) -> dict[str, Any]:
    return {"ServiceCode": "sagemaker", "QuotaCode": code, "QuotaName": name, "Value": value}


def quota_client(
    name: str, code: str, value: float | None, *, default: float = 2.0
) -> tuple[Any, Stubber]:
    """A Service Quotas client that lists quota ``name`` (code ``code``, AWS default
    ``default``) on the second page of SageMaker's defaults, then answers GetServiceQuota with
    ``value`` (None: NoSuchResourceException, i.e. no applied value). Codes are test data."""
    client = boto3.client(
        "service-quotas", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )
    stub = Stubber(client)
    other = _quota("ml.t3.medium for endpoint usage", "L-TEST0000", 4.0)
    stub.add_response(
        "list_aws_default_service_quotas", {"Quotas": [other], "NextToken": "p2"}, QUOTA_PAGE
    )
    stub.add_response(
        "list_aws_default_service_quotas",
        {"Quotas": [_quota(name, code, default)]},
        {**QUOTA_PAGE, "NextToken": "p2"},
    )
    params = {"ServiceCode": "sagemaker", "QuotaCode": code}
    if value is None:
        stub.add_client_error(
            "get_service_quota", "NoSuchResourceException", "no applied value", 400, None, params
        )
    else:
        stub.add_response("get_service_quota", {"Quota": _quota(name, code, value)}, params)
    stub.activate()
    return client, stub


def endpoint_description(status: str, name: str = ENDPOINT) -> dict[str, Any]:
    """A DescribeEndpoint answer in ``status``."""
    now = datetime(2026, 11, 28, tzinfo=UTC)
    return {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/{name}",
        "EndpointConfigName": "scones-config-x",
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }


def stubbed_sagemaker() -> tuple[Any, Stubber]:
    """A SageMaker client with a Stubber (not yet activated)."""
    client = boto3.client(
        "sagemaker", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )
    return client, Stubber(client)
