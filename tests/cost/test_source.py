"""The boto3 reading of ``scones cost`` on fake clients: paging, --since, an Express machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from scones.cost import source
from scones.cost.cli import parse_since
from scones.errors import CommandError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class Pages:
    """A paginator over fixed pages (or one that raises)."""

    def __init__(self, pages: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.pages, self.error, self.calls = pages, error, 0

    def paginate(self, **_: Any) -> Any:
        if self.error:
            raise self.error
        for page in self.pages:
            self.calls += 1
            yield page


class Client:
    def __init__(self, paginator: Pages) -> None:
        self.paginator = paginator

    def get_paginator(self, _: str) -> Pages:
        return self.paginator


def _execution(minutes_ago: int) -> dict[str, Any]:
    return {
        "executionArn": f"arn:x:{minutes_ago}",
        "startDate": NOW - timedelta(minutes=minutes_ago),
    }


def test_listing_stops_at_the_first_execution_older_than_since() -> None:
    pages = Pages(
        [
            {"executions": [_execution(1), _execution(30)]},
            {"executions": [_execution(59), _execution(61), _execution(5)]},
            {"executions": [_execution(1)]},
        ]
    )
    found = source.list_executions(Client(pages), "arn:sm", NOW - timedelta(hours=1))
    assert [e["executionArn"] for e in found] == ["arn:x:1", "arn:x:30", "arn:x:59"]
    assert pages.calls == 2  # newest first: no need to read further
    everything = source.list_executions(Client(Pages(pages.pages)), "arn:sm", None)
    assert len(everything) == 6


def test_an_express_machine_on_aws_says_what_to_measure_instead() -> None:
    error = ClientError(
        {"Error": {"Code": "StateMachineTypeNotSupported", "Message": "no"}}, "ListExecutions"
    )
    with pytest.raises(CommandError, match="EXPRESS state machine.*measure a STANDARD"):
        source.list_executions(Client(Pages([], error)), "arn:sm", None)


def test_capture_objects_counts_those_modified_since() -> None:
    pages = Pages(
        [
            {"Contents": [{"Size": 10, "LastModified": NOW - timedelta(minutes=5)}]},
            {"Contents": [{"Size": 20, "LastModified": NOW - timedelta(hours=5)}]},
        ]
    )
    assert source.capture_objects(Client(pages), "s3://b/cap", "ep", None) == (2, 30)
    assert source.capture_objects(Client(pages), "s3://b/cap", "ep", NOW - timedelta(hours=1)) == (
        1,
        10,
    )


def test_s3_uris_and_ages_are_checked() -> None:
    assert source.split_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert source.split_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(CommandError, match="not an S3 URI"):
        source.split_s3_uri("bucket/prefix")
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("1.5h", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)
    with pytest.raises(CommandError, match="--since '1 hour'"):
        parse_since("1 hour", NOW)
