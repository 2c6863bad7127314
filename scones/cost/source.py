"""Where ``scones cost`` reads usage: the Step Functions API and the Data Capture prefix in S3.

Plain boto3 calls that work on the twin and on a real account: DescribeStateMachine,
ListExecutions (newest first, stopping at ``--since``), GetExecutionHistory (every page) and
ListObjectsV2 over the capture prefix. Without ``--state-machine`` it reads the twin's
deployment (``deployed.json``): through the standard AWS settings when they name an endpoint
(``eval "$(scones env)"``), else through the twin's own endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scones.errors import CommandError
from scones.executions import describe_state_machine as describe_state_machine  # re-exported
from scones.executions import endpoint_chosen, execution_history
from scones.settings import Settings

HISTORY_WORKERS = 8


@dataclass(frozen=True)
class Target:
    """The state machine to measure, the clients that read it, and its capture location."""

    sfn: Any
    s3: Any
    state_machine_arn: str
    capture_uri: str | None  # s3://bucket/prefix (the endpoint's DestinationS3Uri)
    endpoint_name: str | None
    twin: bool


def target_for(
    settings: Settings,
    state_machine_arn: str | None,
    capture_uri: str | None = None,
    endpoint_name: str | None = None,
) -> Target:
    """The clients and names to read: ``--state-machine`` on the standard AWS settings, else the
    twin's deployment."""
    import boto3

    if state_machine_arn:
        return Target(
            boto3.client("stepfunctions"),
            boto3.client("s3"),
            state_machine_arn,
            capture_uri,
            endpoint_name,
            twin=False,
        )
    from scones.twin.deploy import read_deployed

    deployed = read_deployed(settings)
    if endpoint_chosen():
        sfn, s3 = boto3.client("stepfunctions"), boto3.client("s3")
    else:
        from scones.twin.clients import twin_clients

        sfn, s3 = twin_clients(settings, "stepfunctions", "s3")
    return Target(
        sfn,
        s3,
        str(deployed["state_machine_arn"]),
        capture_uri or deployed.get("capture_uri"),
        endpoint_name or deployed.get("endpoint_name"),
        twin=True,
    )


def list_executions(sfn: Any, arn: str, since: datetime | None) -> list[dict[str, Any]]:
    """Every execution the state machine still lists (started at or after ``since``)."""
    from botocore.exceptions import ClientError

    found: list[dict[str, Any]] = []
    paginator = sfn.get_paginator("list_executions")
    try:
        for page in paginator.paginate(stateMachineArn=arn):
            for execution in page.get("executions", []):
                started = execution.get("startDate")
                if since is not None and isinstance(started, datetime) and started < since:
                    return found  # newest first: the rest are older
                found.append(execution)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "StateMachineTypeNotSupported":
            raise CommandError(
                f"{arn} is an EXPRESS state machine: AWS does not list its executions or keep"
                " their histories; measure a STANDARD deployment (or the twin), whose usage"
                " scones cost prices as Express too"
            ) from None
        raise
    return found


def histories(
    sfn: Any, executions: list[dict[str, Any]], read: Callable[[Any, str], Any] = execution_history
) -> Iterator[list[dict[str, Any]]]:
    """The history of each execution, read by a few threads (boto3 clients are thread-safe)."""
    arns = [str(e["executionArn"]) for e in executions]
    with ThreadPoolExecutor(max_workers=HISTORY_WORKERS) as pool:
        yield from pool.map(lambda arn: read(sfn, arn), arns)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)`` (prefix without a trailing slash)."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise CommandError(f"not an S3 URI: {uri!r} (expected s3://bucket/prefix)")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def capture_objects(
    s3: Any, capture_uri: str, endpoint_name: str | None, since: datetime | None
) -> tuple[int, int]:
    """``(objects, bytes)`` of Data Capture files under ``capture_uri/endpoint_name/``
    (modified at or after ``since``)."""
    bucket, prefix = split_s3_uri(capture_uri)
    parts = [p for p in (prefix, endpoint_name) if p]
    full = "/".join(parts) + "/" if parts else ""
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full):
        for item in page.get("Contents", []):
            modified = item.get("LastModified")
            if since is not None and isinstance(modified, datetime) and modified < since:
                continue
            count += 1
            size += int(item.get("Size", 0))
    return count, size
