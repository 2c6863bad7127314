"""What happened to each state in one execution, read from its GetExecutionHistory events.

Pure Python (no I/O). Works on the ``events`` list as boto3 returns it (timestamps as datetimes)
or as JSON (timestamps as ISO strings or epoch seconds). Per state:

- ``succeeded``: entered and exited (a Task whose last attempt succeeded), or a Succeed state;
- ``failed``: a Fail state entered, or a state the execution failed in (no exit, no catch);
- ``caught``: a Task whose last attempt failed and whose next state entered is one of its Catch
  targets (``caught_by``: that Catch's ErrorEquals);
- ``running``: entered, not exited, and the execution has not ended;
- ``not-run``: never entered.

``retries`` counts the extra ``TaskScheduled`` (or ``LambdaFunctionScheduled``) events within
one entry of the state; ``seconds`` is the time from entered to exited (or to the execution's end
for a state it ended in), summed over entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scones.executions import ATTEMPT_FAILED, timestamp
from scones.executions import ATTEMPT_SCHEDULED as _SCHEDULED
from scones.executions import ATTEMPT_SUCCEEDED as _ATTEMPT_SUCCEEDED
from scones.executions import EXECUTION_END as _EXECUTION_END
from scones.executions import event_details as _details
from scones.graph.model import END, START, Graph, build_graph

STATUSES = ("succeeded", "failed", "caught", "not-run", "running")

# a failed Parallel or Map state ends its attempt too
_ATTEMPT_FAILED = ATTEMPT_FAILED | {"ParallelStateFailed", "MapStateFailed"}


@dataclass
class StateRun:
    """What happened to one state in one execution."""

    name: str
    status: str = "not-run"
    caught_by: list[str] | None = None
    retries: int = 0
    seconds: float | None = None
    error: str | None = None
    cause: str | None = None
    entered: int = 0
    input: str | None = None
    output: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The run as plain JSON-able values."""
        return dict(vars(self))


@dataclass
class _Entry:
    """One entry into a state, from its StateEntered event to its end."""

    name: str
    start: datetime | None
    input: str | None
    attempts: int = 0
    failed: bool = False
    error: str | None = None
    cause: str | None = None
    end: datetime | None = None
    exited: bool = False
    output: str | None = None
    next_state: str | None = None
    kind: str = ""  # Task, Choice, Parallel, ... (from the StateEntered event type)


@dataclass
class _Reading:
    """The entries found in a history and how the execution ended."""

    entries: list[_Entry]
    end_status: str | None = None
    end_time: datetime | None = None
    error: str | None = None
    cause: str | None = None


def _owner(kind: str, last: _Entry | None, open_entries: dict[str, _Entry]) -> _Entry | None:
    """The entry a task or branch event belongs to: a Parallel/Map state's own events go to the
    newest open entry of that type, the others to the newest entry."""
    for family in ("Parallel", "Map"):
        if kind.startswith(family + "State"):
            boxes = [e for e in open_entries.values() if e.kind == family]
            return boxes[-1] if boxes else last
    return last


def _read(events: list[dict[str, Any]]) -> _Reading:
    reading = _Reading(entries=[])
    open_entries: dict[str, _Entry] = {}
    waiting: list[_Entry] = []  # ended entries whose next state is not known yet
    last: _Entry | None = None
    for event in sorted(events, key=lambda e: int(e.get("id", 0))):
        kind = str(event.get("type", ""))
        when = timestamp(event.get("timestamp"))
        details = _details(event)
        owner = _owner(kind, last, open_entries)
        if kind.endswith("StateEntered"):
            name = str(details.get("name", ""))
            for ended in waiting:
                ended.next_state = name
            waiting.clear()
            entry = _Entry(name, when, details.get("input"), kind=kind[: -len("StateEntered")])
            reading.entries.append(entry)
            open_entries[name] = entry
            last = entry
        elif kind.endswith("StateExited"):
            exited = open_entries.pop(str(details.get("name", "")), None)
            if exited is not None:
                exited.end, exited.exited = when, True
                exited.output = details.get("output")
                waiting.append(exited)
        elif owner is not None and kind in _SCHEDULED:
            owner.attempts += 1
            owner.failed, owner.error, owner.cause = False, None, None
        elif owner is not None and kind in _ATTEMPT_SUCCEEDED:
            owner.failed = False
        elif owner is not None and kind in _ATTEMPT_FAILED:
            owner.failed, owner.end = True, when
            owner.error, owner.cause = details.get("error"), details.get("cause")
            if owner not in waiting:
                waiting.append(owner)
        elif kind in _EXECUTION_END:
            reading.end_status, reading.end_time = _EXECUTION_END[kind], when
            reading.error, reading.cause = details.get("error"), details.get("cause")
    return reading


def _seconds(entry: _Entry, reading: _Reading) -> float | None:
    end = entry.end if entry.exited else (entry.end or reading.end_time)
    if entry.exited and entry.end is None:
        return None
    if entry.start is None or end is None:
        return None
    return max(0.0, (end - entry.start).total_seconds())


def _entry_status(graph: Graph, entry: _Entry, reading: _Reading) -> tuple[str, list[str] | None]:
    node = graph.nodes.get(entry.name)
    if node is not None and node.type == "Fail":
        return "failed", None
    if entry.failed:
        for catcher in graph.catchers_of(entry.name):
            if catcher.next == entry.next_state and catcher.matches(entry.error):
                return "caught", list(catcher.errors)
        if entry.next_state is None and reading.end_status is None:
            return "running", None
        return "failed", None
    if entry.exited or (node is not None and node.type == "Succeed"):
        return "succeeded", None
    if reading.end_status is None:
        return "running", None
    return ("succeeded" if reading.end_status == "SUCCEEDED" else "failed"), None


def state_runs(
    definition: dict[str, Any] | str, events: list[dict[str, Any]]
) -> dict[str, StateRun]:
    """Per state of ``definition``: what happened to it in the execution whose history is
    ``events`` (GetExecutionHistory's ``events``, any order). States never entered are
    ``not-run``; a state entered several times reports its last entry's status."""
    graph = build_graph(definition)
    reading = _read(events)
    runs = {name: StateRun(name=name) for name in graph.nodes}
    for entry in reading.entries:
        run = runs.setdefault(entry.name, StateRun(name=entry.name))
        status, caught_by = _entry_status(graph, entry, reading)
        run.status, run.caught_by = status, caught_by
        run.entered += 1
        run.retries += max(0, entry.attempts - 1)
        seconds = _seconds(entry, reading)
        if seconds is not None:
            run.seconds = (run.seconds or 0.0) + seconds
        run.input, run.output = entry.input, entry.output
        run.error, run.cause = entry.error, entry.cause
        node = graph.nodes.get(entry.name)
        if status == "failed" and node is not None and node.type == "Fail":
            run.error, run.cause = reading.error or node.error or None, reading.cause
    return runs


def transitions(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The ``(from, to)`` transitions the execution took, with ``START``/``END`` at its ends."""
    reading = _read(events)
    names = [entry.name for entry in reading.entries]
    path = list(zip(names, names[1:], strict=False))
    if names:
        path.insert(0, (START, names[0]))
        if reading.end_status == "SUCCEEDED":
            path.append((names[-1], END))
    return path


def execution_end(events: list[dict[str, Any]]) -> dict[str, Any]:
    """How the execution ended: ``{"status", "error", "cause"}`` (status None while running)."""
    reading = _read(events)
    return {"status": reading.end_status, "error": reading.error, "cause": reading.cause}
