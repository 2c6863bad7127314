"""An Amazon States Language definition as a graph: one node per state, one edge per transition.

Pure Python (no I/O). Parallel and Map states are single boxes (their branches are not drawn).
Edges: ``next`` (Next), ``default`` (a Choice's Default), ``choice`` (a Choice rule, labelled
with the rule), ``catch`` (a Catch, labelled with its ErrorEquals names); the pseudo-nodes
``start`` and ``end`` mark StartAt and the states that end the execution successfully.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

START = "__start__"
END = "__end__"

#: Choice comparison operators, shortest readable form.
_OPERATORS = {
    "IsPresent": "present",
    "IsNull": "null",
    "IsString": "is string",
    "IsNumeric": "is number",
    "IsBoolean": "is boolean",
    "IsTimestamp": "is timestamp",
}


@dataclass(frozen=True)
class Retrier:
    """One Retry entry of a Task (or Parallel/Map) state."""

    errors: tuple[str, ...]
    max_attempts: int
    interval_seconds: float
    backoff_rate: float

    def describe(self) -> str:
        """One short line: ``Retry EndpointUnavailableError x4 (2 s, x2.0)``."""
        return (
            f"Retry {', '.join(short_error(e) for e in self.errors)} x{self.max_attempts}"
            f" ({self.interval_seconds:g} s, x{self.backoff_rate:g})"
        )


@dataclass(frozen=True)
class Catcher:
    """One Catch entry: the errors it matches and the state it goes to."""

    errors: tuple[str, ...]
    next: str

    def matches(self, error: str | None) -> bool:
        """Whether this catcher handles ``error`` (``States.ALL`` matches any error name)."""
        return "States.ALL" in self.errors or (error is not None and error in self.errors)


@dataclass(frozen=True)
class Node:
    """One state of the definition."""

    name: str
    type: str
    comment: str = ""
    resource: str = ""
    retriers: tuple[Retrier, ...] = ()
    catchers: tuple[Catcher, ...] = ()
    end: bool = False
    error: str = ""
    cause: str = ""

    @property
    def terminal(self) -> bool:
        """Whether the execution stops here (End, Succeed or Fail)."""
        return self.end or self.type in ("Succeed", "Fail")


@dataclass(frozen=True)
class Edge:
    """A transition ``source -> target`` of one kind, with its label ('' when none)."""

    source: str
    target: str
    kind: str  # next | default | choice | catch | start | end
    label: str = ""
    errors: tuple[str, ...] = ()


@dataclass
class Graph:
    """The definition's states in definition order and its transitions."""

    start_at: str
    comment: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def catchers_of(self, name: str) -> tuple[Catcher, ...]:
        """The Catch entries of state ``name`` (empty for unknown states)."""
        node = self.nodes.get(name)
        return node.catchers if node else ()


class DefinitionError(ValueError):
    """The text is not an ASL definition this module can draw."""


def short_error(name: str) -> str:
    """Error names as the picture shows them (``Lambda.ServiceException`` stays as it is)."""
    return name


def _value_text(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else f'"{value}"'


def rule_text(rule: dict[str, Any], limit: int = 60) -> str:
    """A Choice rule in one short line: ``$.x present or $.y present``; cut to ``limit``."""
    text = _rule_text(rule)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rule_text(rule: dict[str, Any]) -> str:
    if "And" in rule:
        return " and ".join(_nested(r) for r in rule["And"])
    if "Or" in rule:
        return " or ".join(_nested(r) for r in rule["Or"])
    if "Not" in rule:
        inner = rule["Not"]
        for op, word in _OPERATORS.items():
            if inner.get(op) is True and "Variable" in inner:
                return f"{inner['Variable']} not {word}"
        return f"not ({_rule_text(inner)})"
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"])
    variable = rule.get("Variable", "?")
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key in _OPERATORS:
            return f"{variable} {_OPERATORS[key]}" if value else f"{variable} not {_OPERATORS[key]}"
        operator = key.replace("Path", " (path)")
        return f"{variable} {operator} {_value_text(value)}"
    return str(variable)


def _nested(rule: dict[str, Any]) -> str:
    text = _rule_text(rule)
    return f"({text})" if ("And" in rule or "Or" in rule) else text


def load_definition(definition: dict[str, Any] | str) -> dict[str, Any]:
    """The definition as a dict (``definition``: a dict or its JSON text)."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise DefinitionError(f"the definition is not JSON: {exc}") from None
    if not isinstance(definition, dict) or not isinstance(definition.get("States"), dict):
        raise DefinitionError("the definition has no States object")
    if definition.get("StartAt") not in definition["States"]:
        raise DefinitionError(f"StartAt {definition.get('StartAt')!r} is not a state")
    return definition


def _node(name: str, state: dict[str, Any]) -> Node:
    retriers = tuple(
        Retrier(
            errors=tuple(r.get("ErrorEquals", [])),
            max_attempts=int(r.get("MaxAttempts", 3)),
            interval_seconds=float(r.get("IntervalSeconds", 1)),
            backoff_rate=float(r.get("BackoffRate", 2.0)),
        )
        for r in state.get("Retry", [])
    )
    catchers = tuple(
        Catcher(errors=tuple(c.get("ErrorEquals", [])), next=str(c["Next"]))
        for c in state.get("Catch", [])
    )
    return Node(
        name=name,
        type=str(state.get("Type", "?")),
        comment=str(state.get("Comment", "")),
        resource=str(state.get("Resource", "")),
        retriers=retriers,
        catchers=catchers,
        end=bool(state.get("End", False)),
        error=str(state.get("Error", state.get("ErrorPath", ""))),
        cause=str(state.get("Cause", state.get("CausePath", ""))),
    )


def _edges(name: str, state: dict[str, Any]) -> list[Edge]:
    edges = [
        Edge(name, str(choice["Next"]), "choice", rule_text(choice))
        for choice in state.get("Choices", [])
        if "Next" in choice
    ]
    if "Default" in state:
        edges.append(Edge(name, str(state["Default"]), "default", "Default"))
    if "Next" in state:
        edges.append(Edge(name, str(state["Next"]), "next"))
    for catch in state.get("Catch", []):
        errors = tuple(catch.get("ErrorEquals", []))
        edges.append(Edge(name, str(catch["Next"]), "catch", "Catch " + ", ".join(errors), errors))
    if state.get("End") or state.get("Type") == "Succeed":
        edges.append(Edge(name, END, "end"))
    return edges


def build_graph(definition: dict[str, Any] | str) -> Graph:
    """The graph of an ASL definition (dict or JSON text); ``DefinitionError`` when it is not one."""
    data = load_definition(definition)
    graph = Graph(start_at=str(data["StartAt"]), comment=str(data.get("Comment", "")))
    graph.edges.append(Edge(START, graph.start_at, "start"))
    for name, state in data["States"].items():
        graph.nodes[name] = _node(name, state)
        graph.edges.extend(_edges(name, state))
    missing = sorted({e.target for e in graph.edges} - set(graph.nodes) - {END})
    if missing:
        raise DefinitionError(f"transitions to states that do not exist: {', '.join(missing)}")
    return graph
