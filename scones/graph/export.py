"""The evidence pack: what someone reviewing a run asks for, written from the API.

``write_pack(folder, machine, execution, events)`` writes:

- ``<state machine name>.asl.json``: the definition as the console's Export JSON gives it (the
  deployed definition, ``DescribeStateMachine.definition``, indented);
- ``describe-state-machine.json``: the whole DescribeStateMachine answer;
- ``describe-execution.json``: DescribeExecution of the execution;
- ``execution-history.json``: ``{"events": [...]}``, every page of GetExecutionHistory;
- ``graph.svg`` and ``graph.png``: the graph coloured by that execution;
- ``manifest.json``: the files and what they are.

Timestamps are ISO 8601 with their UTC offset, as the AWS CLI prints them.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from scones.graph.history import execution_end
from scones.graph.render import PngUnavailableError, render_png, render_svg


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
    """An API answer without boto3's ``ResponseMetadata``."""
    return {k: v for k, v in answer.items() if k != "ResponseMetadata"}


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented JSON (datetimes as ISO 8601)."""
    path.write_text(json.dumps(data, indent=2, default=_default) + "\n", encoding="utf-8")
    return path


def export_definition(definition: str) -> str:
    """The definition as the console's Export JSON writes it: the ASL, indented by two."""
    return json.dumps(json.loads(definition), indent=2, ensure_ascii=False) + "\n"


def safe_name(name: str) -> str:
    """``name`` usable as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "state-machine"


def title_for(
    machine: dict[str, Any], execution: dict[str, Any] | None, events: list[dict[str, Any]] | None
) -> str:
    """The line above the graph: the state machine, and the execution with how it ended."""
    title = str(machine.get("name") or machine.get("stateMachineArn") or "state machine")
    if execution is None:
        return title
    title += f"  |  {execution.get('name')}: {execution.get('status')}"
    error = execution_end(events or []).get("error") or execution.get("error")
    return title + (f" ({error})" if error else "")


def write_pack(
    folder: Path,
    machine: dict[str, Any],
    execution: dict[str, Any] | None,
    events: list[dict[str, Any]] | None,
) -> list[Path]:
    """Write the evidence pack for ``machine`` (DescribeStateMachine) and, when given, one
    ``execution`` (DescribeExecution) with its history ``events``; return the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    definition = str(machine["definition"])
    asl = folder / f"{safe_name(str(machine.get('name', 'state-machine')))}.asl.json"
    asl.write_text(export_definition(definition), encoding="utf-8")
    written = [asl, write_json(folder / "describe-state-machine.json", without_metadata(machine))]
    if execution is not None:
        written.append(write_json(folder / "describe-execution.json", without_metadata(execution)))
        written.append(write_json(folder / "execution-history.json", {"events": events or []}))
    svg = folder / "graph.svg"
    coloured = events if execution is not None else None
    title = title_for(machine, execution, events)
    svg.write_text(render_svg(definition, coloured, title=title), "utf-8")
    written.append(svg)
    png_problem = None
    try:
        written.append(render_png(definition, coloured, folder / "graph.png", title=title))
    except PngUnavailableError as exc:
        png_problem = str(exc)
        print(f"scones graph: no graph.png: {exc}", file=sys.stderr)
    manifest = {
        "state_machine_arn": machine.get("stateMachineArn"),
        "execution_arn": execution.get("executionArn") if execution else None,
        "status": execution.get("status") if execution else None,
        "ended": execution_end(events or []) if execution is not None else None,
        "files": [path.name for path in written] + ["manifest.json"],
        "png_unavailable": png_problem,
    }
    written.append(write_json(folder / "manifest.json", manifest))
    return written
