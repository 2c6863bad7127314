"""One execution for the page: its events table, each state's input and output, and the graph.

The events come from GetExecutionHistory (all pages); what happened to each state comes from
``scones.graph.state_runs`` so the table and the coloured graph (``scones.graph.render_svg``)
always agree. Payloads go through ``payloads`` (thumbnails instead of base64).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scones.console.payloads import Shown, show_json, show_value
from scones.executions import event_details as _details

JSON_FIELDS = ("input", "output", "parameters", "result")


@dataclass(frozen=True)
class EventRow:
    """One history event as the events table shows it."""

    id: int
    previous: int
    type: str
    timestamp: datetime | None
    elapsed_ms: float | None  # since the execution started
    state: str
    details: Shown


@dataclass(frozen=True)
class StateRow:
    """One state that ran: status (as the graph colours it), time, input and output."""

    name: str
    status: str
    entered: int
    retries: int
    seconds: float | None
    error: str | None
    cause: str | None
    caught_by: list[str] | None
    input: Shown
    output: Shown


def _expand(details: dict[str, Any]) -> dict[str, Any]:
    """Details with their JSON-text fields parsed, so images inside show as thumbnails."""
    out = dict(details)
    for key in JSON_FIELDS:
        text = out.get(key)
        if isinstance(text, str) and text[:1] in "{[":
            with contextlib.suppress(ValueError):
                out[key] = json.loads(text)
    return out


def event_rows(events: list[dict[str, Any]]) -> list[EventRow]:
    """The events table: id, previous id, type, time (and ms since start), state, details."""
    start = events[0].get("timestamp") if events else None
    rows = []
    for event in events:
        when = event.get("timestamp")
        elapsed = None
        if isinstance(when, datetime) and isinstance(start, datetime):
            elapsed = (when - start).total_seconds() * 1000
        details = _details(event)
        rows.append(
            EventRow(
                id=int(event.get("id", 0)),
                previous=int(event.get("previousEventId", 0)),
                type=str(event.get("type", "")),
                timestamp=when if isinstance(when, datetime) else None,
                elapsed_ms=elapsed,
                state=str(details.get("name", "")),
                details=show_value(_expand(details)) if details else Shown(""),
            )
        )
    return rows


def state_rows(definition: str, events: list[dict[str, Any]]) -> list[StateRow]:
    """Each state that ran, in the order it was first entered, with its input and output."""
    from scones.graph import state_runs

    runs = state_runs(definition, events)
    first: dict[str, int] = {}
    for event in events:
        if str(event.get("type", "")).endswith("StateEntered"):
            first.setdefault(str(_details(event).get("name", "")), int(event.get("id", 0)))
    return [
        StateRow(
            name=run.name,
            status=run.status,
            entered=run.entered,
            retries=run.retries,
            seconds=run.seconds,
            error=run.error,
            cause=run.cause,
            caught_by=run.caught_by,
            input=show_json(run.input),
            output=show_json(run.output),
        )
        for run in sorted(runs.values(), key=lambda r: first.get(r.name, 1 << 62))
        if run.entered
    ]


class GraphCache:
    """Rendered SVGs of finished executions (a finished execution's picture never changes)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self.items: OrderedDict[str, str] = OrderedDict()
        self.lock = threading.Lock()

    def svg(self, key: str, definition: str, events: list[dict[str, Any]], final: bool) -> str:
        """The graph of ``definition`` coloured by ``events``; cached under ``key`` if ``final``."""
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        from scones.graph import render_svg

        svg = render_svg(definition, events)
        svg = svg[svg.index("<svg") :] if "<svg" in svg else svg  # drop the XML declaration
        if final:
            with self.lock:
                self.items[key] = svg
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return svg
