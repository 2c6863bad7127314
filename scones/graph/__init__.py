"""``scones graph``: a state machine and one execution of it as a picture, from the Step Functions API.

The public interface (``scones console`` uses it)::

    render_svg(definition, events=None) -> str      # SVG text; nodes carry data-state/data-status
    state_runs(definition, events) -> dict[str, StateRun]

``definition`` is the ASL (a dict or its JSON text); ``events`` is GetExecutionHistory's
``events`` list. Modules: ``model`` (ASL -> graph), ``history`` (events -> per-state runs),
``d2source`` (D2 text), ``render`` (the d2 binary, SVG post-processing, PNG), ``source``
(boto3 reads), ``export`` (the evidence pack), ``cli``.
"""

from __future__ import annotations

from scones.graph.history import STATUSES, StateRun, state_runs
from scones.graph.render import render_svg

__all__ = ["STATUSES", "StateRun", "render_svg", "state_runs"]
