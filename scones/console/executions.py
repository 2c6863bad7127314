"""One page of executions: ListExecutions, then label, confidence or error for each row.

ListExecutions gives name, status and times; the label and confidence are in the execution's
output and the error in its description, so each row needs one DescribeExecution. Those run a
few at a time on threads, and a finished execution's summary is cached (it can no longer
change), so paging back and forth through 10,000 executions stays fast.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
DEFAULT_PAGE = 25
MAX_PAGE = 100


@dataclass(frozen=True)
class Summary:
    """What DescribeExecution adds to a row (cached once the execution has ended)."""

    label: Any = None
    confidence: float | None = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class Row:
    """One execution as the executions page shows it."""

    arn: str
    name: str
    status: str
    start: datetime | None
    stop: datetime | None
    summary: Summary

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to stop (None while running)."""
        if self.start is None or self.stop is None:
            return None
        return (self.stop - self.start).total_seconds()


@dataclass(frozen=True)
class Page:
    """A page of rows and the token of the next page (None on the last)."""

    rows: list[Row]
    next_token: str | None


def summarize(info: dict[str, Any]) -> Summary:
    """Label and confidence from a DescribeExecution's output, or its error and cause."""
    label = confidence = None
    output = info.get("output")
    if output:
        try:
            value = json.loads(output)
        except ValueError:
            value = None
        if isinstance(value, dict):
            label = value.get("label")
            raw = value.get("confidence")
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                confidence = float(raw)
    return Summary(label, confidence, info.get("error"), info.get("cause"))


class Executions:
    """Pages of a state machine's executions, with finished summaries cached (LRU)."""

    def __init__(self, sfn: Any, *, workers: int = 8, cache_size: int = 20_000) -> None:
        self.sfn = sfn
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="console-describe")
        self.cache: OrderedDict[str, Summary] = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()

    def close(self) -> None:
        """Stop the describe threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _cached(self, arn: str) -> Summary | None:
        with self.lock:
            found = self.cache.get(arn)
            if found is not None:
                self.cache.move_to_end(arn)
            return found

    def _describe(self, arn: str) -> tuple[str, Summary]:
        info = self.sfn.describe_execution(executionArn=arn)
        summary = summarize(info)
        if info.get("status") != "RUNNING":
            with self.lock:
                self.cache[arn] = summary
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        return str(info.get("status", "")), summary

    def page(
        self,
        state_machine_arn: str,
        *,
        status: str | None = None,
        token: str | None = None,
        size: int = DEFAULT_PAGE,
    ) -> Page:
        """One page of ListExecutions (newest first) with each row's summary."""
        request: dict[str, Any] = {
            "stateMachineArn": state_machine_arn,
            "maxResults": max(1, min(size, MAX_PAGE)),
        }
        if status:
            request["statusFilter"] = status
        if token:
            request["nextToken"] = token
        listed = self.sfn.list_executions(**request)
        items = listed.get("executions", [])
        summaries: dict[str, Summary] = {}
        missing = []
        for item in items:
            cached = self._cached(item["executionArn"])
            if cached is not None and item.get("status") != "RUNNING":
                summaries[item["executionArn"]] = cached
            else:
                missing.append(item["executionArn"])
        for arn, (_, summary) in zip(missing, self.pool.map(self._describe, missing), strict=True):
            summaries[arn] = summary
        rows = [
            Row(
                arn=item["executionArn"],
                name=item.get("name", ""),
                status=item.get("status", ""),
                start=item.get("startDate"),
                stop=item.get("stopDate"),
                summary=summaries[item["executionArn"]],
            )
            for item in items
        ]
        return Page(rows, listed.get("nextToken") or None)
