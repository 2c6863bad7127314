"""One page of executions: ListExecutions, then label, confidence or error for each row.

ListExecutions gives name, status and times; the label and confidence are in the execution's
output and the error in its description, so each row needs one DescribeExecution. Those run a
few at a time on threads, a finished execution's summary is cached (it can no longer change),
and the next page's rows are described in the background while this one is read, so paging
through 10,000 executions stays fast.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    """Pages of a state machine's executions. Finished summaries are cached (LRU); a describe
    already in flight is shared, and after each page the next one is described in the
    background (``prefetch``), so following "next page" finds its rows ready."""

    def __init__(
        self, sfn: Any, *, workers: int = 8, cache_size: int = 20_000, prefetch: bool = True
    ) -> None:
        self.sfn = sfn
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="console-describe")
        self.cache: OrderedDict[str, Summary] = OrderedDict()
        self.inflight: dict[str, Future[Summary]] = {}
        self.cache_size = cache_size
        self.prefetch = prefetch
        self.lock = threading.Lock()

    def close(self) -> None:
        """Drop queued describes and wait for those running (no call outlives the console)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _describe(self, arn: str) -> Summary:
        try:
            info = self.sfn.describe_execution(executionArn=arn)
        finally:
            with self.lock:
                self.inflight.pop(arn, None)
        summary = summarize(info)
        with self.lock:
            if info.get("status") != "RUNNING":
                self.cache[arn] = summary
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
        return summary

    def _summary(self, arn: str, running: bool) -> Future[Summary]:
        """The summary of ``arn``: cached, being described, or described now."""
        with self.lock:
            found = None if running else self.cache.get(arn)
            if found is not None:
                self.cache.move_to_end(arn)
                done: Future[Summary] = Future()
                done.set_result(found)
                return done
            future = self.inflight.get(arn)
            if future is None:
                future = self.pool.submit(self._describe, arn)
                self.inflight[arn] = future
            return future

    def _list(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        listed = self.sfn.list_executions(**request)
        return listed.get("executions", []), listed.get("nextToken") or None

    def _prefetch(self, request: dict[str, Any]) -> None:
        items, _ = self._list(request)
        for item in items:
            self._summary(item["executionArn"], item.get("status") == "RUNNING")

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
        items, next_token = self._list(request)
        futures = [
            self._summary(item["executionArn"], item.get("status") == "RUNNING") for item in items
        ]
        rows = [
            Row(
                arn=item["executionArn"],
                name=item.get("name", ""),
                status=item.get("status", ""),
                start=item.get("startDate"),
                stop=item.get("stopDate"),
                summary=future.result(),
            )
            for item, future in zip(items, futures, strict=True)
        ]
        if self.prefetch and next_token:
            with contextlib.suppress(RuntimeError):  # the console is closing
                self.pool.submit(self._prefetch, {**request, "nextToken": next_token})
        return Page(rows, next_token)
