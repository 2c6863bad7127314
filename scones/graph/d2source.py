"""The D2 source of a state-machine graph, plain or coloured by one execution's state runs.

Pure Python. Each state is the D2 shape ``n<index>`` (index in definition order), so the SVG's
node groups can be found again (``svg.node_ids``); labels are escaped D2 double-quoted strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from scones.graph.history import StateRun
from scones.graph.model import END, START, Edge, Graph, Node, Retrier

#: fill, stroke per status (and the legend's words).
STATUS_STYLE: dict[str, tuple[str, str, str]] = {
    "succeeded": ("#d3f0d8", "#2e7d32", "succeeded"),
    "caught": ("#ffe2b8", "#e65100", "failed, caught by a Catch"),
    "failed": ("#f9d0d0", "#c62828", "failed"),
    "running": ("#d6e4ff", "#1565c0", "running"),
    "not-run": ("#f4f5f7", "#b0b4bd", "not run"),
}
#: shape, fill, stroke for the plain (uncoloured) graph, per state type.
TYPE_STYLE: dict[str, tuple[str, str, str]] = {
    "Task": ("rectangle", "#e8eefc", "#0d32b2"),
    "Choice": ("diamond", "#fff6d6", "#8a6d00"),
    "Pass": ("rectangle", "#f4f5f7", "#5c6370"),
    "Wait": ("hexagon", "#f4f5f7", "#5c6370"),
    "Parallel": ("rectangle", "#ede7f6", "#5e35b1"),
    "Map": ("rectangle", "#ede7f6", "#5e35b1"),
    "Succeed": ("oval", "#e3f4e6", "#2e7d32"),
    "Fail": ("oval", "#fbe4e4", "#c62828"),
}
EDGE_GREY = "#b0b4bd"
LABEL_LIMIT = 48


def quote(text: str) -> str:
    """``text`` as a D2 double-quoted string (no substitutions, newlines kept)."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("$", "\\$")
        .replace("\n", "\\n")
        .replace("\r", "")
    )
    return f'"{escaped}"'


def clip(text: str, limit: int = LABEL_LIMIT) -> str:
    """One line of at most ``limit`` characters (``...`` where cut)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def retry_line(retrier: Retrier) -> str:
    """A short Retry note for a node: ``Retry EndpointUnavailableError x4``; several errors of
    one family as ``Lambda.* (5)``, other lists as the first name and ``+N``."""
    errors = list(retrier.errors) or ["?"]
    families = {e.partition(".")[0] for e in errors if "." in e}
    if len(errors) > 1 and len(families) == 1 and all("." in e for e in errors):
        shown = f"{families.pop()}.* ({len(errors)})"
    else:
        shown = errors[0] + (f" +{len(errors) - 1}" if len(errors) > 1 else "")
    return f"Retry {shown} x{retrier.max_attempts}"


def cause_text(cause: str | None) -> str:
    """The readable part of a cause: a Lambda error's ``errorMessage``, else the cause."""
    if not cause:
        return ""
    try:
        data = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(data, dict) and isinstance(data.get("errorMessage"), str):
        return str(data["errorMessage"])
    return cause


def seconds_text(seconds: float | None) -> str:
    """``0.12 s``, ``3.4 s``, ``2 min 5 s`` ('' when unknown)."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def node_label(node: Node, run: StateRun | None) -> str:
    """The node's text: name, type, Retry notes; with a run: status, time, retries, error."""
    kind = node.type
    if node.resource and node.type == "Task":
        kind += " " + node.resource.rpartition(":::")[2]
    lines = [node.name, kind]
    lines += [retry_line(r) for r in node.retriers]
    if run is not None:
        status = run.status.replace("-", " ")
        if run.seconds is not None and run.status != "not-run":
            status += "  " + seconds_text(run.seconds)
        lines.append(status)
        if run.retries:
            lines.append(f"retried {run.retries}x")
        if run.error and run.status in ("failed", "caught"):
            lines.append(clip(run.error))
        if run.cause and run.status in ("failed", "caught"):
            lines.append(clip(cause_text(run.cause)))
    return "\n".join(lines)


@dataclass(frozen=True)
class D2Graph:
    """D2 source and the shape id of each state (``{"n0": "ReadInput", ...}``)."""

    source: str
    ids: dict[str, str]


def _node_line(node_id: str, node: Node, run: StateRun | None) -> str:
    shape, fill, stroke = TYPE_STYLE.get(node.type, ("rectangle", "#f4f5f7", "#5c6370"))
    dash = 0
    if run is not None:
        fill, stroke, _ = STATUS_STYLE[run.status]
        dash = 4 if run.status == "not-run" else 0
    style = f'fill: "{fill}"; stroke: "{stroke}"; stroke-width: 2'
    if dash:
        style += f"; stroke-dash: {dash}"
    if node.type in ("Parallel", "Map"):
        style += "; multiple: true"
    if node.type == "Task":
        style += "; border-radius: 6"
    return f"{node_id}: {quote(node_label(node, run))} {{shape: {shape}; style: {{{style}}}}}"


def _edge_line(
    ids: dict[str, str], edge: Edge, runs: Mapping[str, StateRun] | None, taken: set
) -> str:
    source, target = ids[edge.source], ids[edge.target]
    label = clip(edge.label) if edge.label else ""
    styles = []
    if edge.kind == "catch":
        styles.append("stroke-dash: 4")
    if runs is not None:
        if (edge.source, edge.target) in taken:
            stroke = "#e65100" if edge.kind == "catch" else "#2e7d32"
            styles.append(f'stroke: "{stroke}"; stroke-width: 3')
        else:
            styles.append(f'stroke: "{EDGE_GREY}"; font-color: "#8a8f99"')
    text = f"{source} -> {target}"
    if label:
        text += f": {quote(label)}"
    if styles:
        text += " {style: {" + "; ".join(styles) + "}}"
    return text


def _legend() -> list[str]:
    lines = ["vars: {", "  d2-legend: {"]
    for index, (fill, stroke, words) in enumerate(STATUS_STYLE.values()):
        lines.append(
            f'    l{index}: {quote(words)} {{style: {{fill: "{fill}"; stroke: "{stroke}"}}}}'
        )
    lines += ["  }", "}"]
    return lines


def d2_source(
    graph: Graph,
    runs: Mapping[str, StateRun] | None = None,
    path: list[tuple[str, str]] | None = None,
    title: str | None = None,
) -> D2Graph:
    """D2 source for ``graph``; with ``runs`` (``state_runs``'s result) coloured by status, the
    transitions in ``path`` (``(from, to)`` pairs the execution took) drawn bold, and a legend."""
    ids = {name: f"n{index}" for index, name in enumerate(graph.nodes)}
    ids[START], ids[END] = "start", "end"
    lines = ["direction: down"]
    if title:
        lines.append(
            f"title: {quote(title)} {{shape: text; near: top-center; style.font-size: 22}}"
        )
    if runs is not None:
        lines += _legend()
    lines.append('start: "Start" {shape: circle; width: 56; style: {fill: "#ffffff"}}')
    lines.append('end: "End" {shape: circle; width: 56; style: {fill: "#ffffff"}}')
    for name, node in graph.nodes.items():
        lines.append(_node_line(ids[name], node, runs.get(name) if runs is not None else None))
    taken = set(path or [])
    for edge in graph.edges:
        lines.append(_edge_line(ids, edge, runs, taken))
    return D2Graph("\n".join(lines) + "\n", {ids[name]: name for name in graph.nodes})
