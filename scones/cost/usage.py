"""Usage summed over executions: transitions, Lambda time per function, endpoint calls and bytes.

The functions' memory and architecture come from ``template.yaml`` (through the twin's template
reader: the same Globals merge and parameters ``sam deploy`` uses). A function named in a
history is matched to the template by its name (``<stack>-SerializeImage``), by the ARN's name,
or by the name ending in the logical id's stem (``...-SerializeImage`` for
``SerializeImageFunction``).
"""

from __future__ import annotations

import base64
import binascii
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.cost.history import ExecutionCount

DEFAULT_ARCHITECTURE = "x86_64"  # Lambda's default when a function names none


@dataclass(frozen=True)
class FunctionInfo:
    """What prices a function: its memory and architecture (from the template)."""

    logical_id: str
    name: str
    memory_mb: int
    architecture: str
    calls_endpoint: bool  # its environment names ENDPOINT_NAME


@dataclass
class FunctionUsage:
    """One function's measured use."""

    info: FunctionInfo
    invocations: int = 0
    billed_ms: int = 0
    durations_ms: list[int] = field(default_factory=list)
    #: It turned an S3 object into image_data (SerializeImage): one S3 GET per invocation.
    reads_images: bool = False

    @property
    def gb_seconds(self) -> float:
        """Billed GB-seconds: memory (GB) x billed seconds."""
        return self.info.memory_mb / 1024 * self.billed_ms / 1000

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "name": self.info.name,
            "memory_mb": self.info.memory_mb,
            "architecture": self.info.architecture,
            "invocations": self.invocations,
            "billed_ms": self.billed_ms,
            "median_ms": statistics.median(self.durations_ms) if self.durations_ms else None,
            "gb_seconds": round(self.gb_seconds, 6),
        }


@dataclass
class Usage:
    """Everything ``scones cost`` measured."""

    executions: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    state_entries: int = 0
    retries: int = 0
    functions: dict[str, FunctionUsage] = field(default_factory=dict)
    unknown_functions: dict[str, int] = field(default_factory=dict)
    endpoint_invocations: int = 0
    endpoint_bytes_in: int = 0
    endpoint_bytes_out: int = 0
    image_bytes: int = 0  # images read by the workflow (what was uploaded)
    images_read: int = 0
    #: (duration ms, largest state payload bytes) of each finished execution
    runs: list[tuple[int, int]] = field(default_factory=list)
    history_bytes: int = 0
    error_log_bytes: int = 0
    capture_objects: int = 0
    capture_bytes: int = 0
    definition_bytes: int = 0

    @property
    def state_transitions(self) -> int:
        """Billable transitions: state entries plus retries."""
        return self.state_entries + self.retries

    @property
    def s3_get_requests(self) -> int:
        """One GET per invocation of a function that reads the image from S3."""
        return sum(f.invocations for f in self.functions.values() if f.reads_images)

    @property
    def lambda_invocations(self) -> int:
        """Invocations of every function (the template's and unknown ones)."""
        return sum(f.invocations for f in self.functions.values()) + sum(
            self.unknown_functions.values()
        )

    @property
    def endpoint_ms(self) -> list[int]:
        """Billed durations of the endpoint-calling functions' invocations (an upper bound of
        the endpoint's own time per call: the call is inside them)."""
        return [
            ms for f in self.functions.values() if f.info.calls_endpoint for ms in f.durations_ms
        ]

    def as_dict(self) -> dict[str, Any]:
        """The ``usage`` object of ``scones cost --json``."""
        return {
            "executions": self.executions,
            "statuses": dict(sorted(self.statuses.items())),
            "state_transitions": self.state_transitions,
            "state_entries": self.state_entries,
            "retries": self.retries,
            "lambda_invocations": self.lambda_invocations,
            "lambda_billed_ms": sum(f.billed_ms for f in self.functions.values()),
            "lambda": {lid: f.as_dict() for lid, f in sorted(self.functions.items())},
            "unknown_functions": dict(self.unknown_functions),
            "endpoint_invocations": self.endpoint_invocations,
            "endpoint_bytes_in": self.endpoint_bytes_in,
            "endpoint_bytes_out": self.endpoint_bytes_out,
            "image_bytes": self.image_bytes,
            "images_read": self.images_read,
            "s3_get_requests": self.s3_get_requests,
            "capture_objects": self.capture_objects,
            "capture_bytes": self.capture_bytes,
            "execution_ms_median": statistics.median([ms for ms, _ in self.runs])
            if self.runs
            else None,
            "history_bytes": self.history_bytes,
            "error_log_bytes": self.error_log_bytes,
            "definition_bytes": self.definition_bytes,
        }


def read_functions(project_root: Path, region: str = "us-east-1") -> dict[str, FunctionInfo]:
    """Each function of the SAM template: name, MemorySize and Architectures (Globals merged)."""
    from scones.twin.template import load_template, read_app

    app = read_app(project_root, region=region)
    template = load_template(app.template_path)
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    resources = template.get("Resources") or {}
    found: dict[str, FunctionInfo] = {}
    for logical_id, spec in app.functions.items():
        props = (resources.get(logical_id) or {}).get("Properties") or {}
        architectures = props.get("Architectures") or globals_fn.get("Architectures")
        architecture = str(architectures[0]) if architectures else DEFAULT_ARCHITECTURE
        found[logical_id] = FunctionInfo(
            logical_id=logical_id,
            name=spec.name,
            memory_mb=spec.memory_size,
            architecture=architecture,
            calls_endpoint="ENDPOINT_NAME" in spec.environment,
        )
    return found


def _function_name(reference: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME[:qualifier]`` -> ``NAME``."""
    parts = reference.split(":")
    if reference.startswith("arn:") and len(parts) >= 7:
        return parts[6]
    return parts[0]


def match_function(reference: str, functions: dict[str, FunctionInfo]) -> FunctionInfo | None:
    """The template's function a history names (see the module docstring)."""
    name = _function_name(reference)
    for info in functions.values():
        if name == info.name:
            return info
    for info in functions.values():
        stem = info.logical_id.removesuffix("Function")
        if stem and (name.endswith(f"-{stem}") or name == stem):
            return info
    return None


def _image_bytes(payload: Any) -> int:
    """Decoded size of ``image_data`` (base64) in a work item, 0 when absent or not base64."""
    data = payload.get("image_data") if isinstance(payload, dict) else None
    if not isinstance(data, str):
        return 0
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return 0


def _inferences_bytes(result: Any) -> int:
    """Size of the endpoint's answer (the JSON list of probabilities) in a result."""
    inferences = result.get("inferences") if isinstance(result, dict) else None
    if not isinstance(inferences, list) or not inferences:
        return 0
    return len(json.dumps(inferences).encode("utf-8"))


def add_execution(usage: Usage, count: ExecutionCount, functions: dict[str, FunctionInfo]) -> None:
    """Add one execution's counts to ``usage``."""
    usage.executions += 1
    status = count.status or "RUNNING"
    usage.statuses[status] = usage.statuses.get(status, 0) + 1
    usage.state_entries += count.state_entries
    usage.retries += count.retries
    usage.history_bytes += count.history_bytes
    usage.error_log_bytes += count.error_log_bytes
    if count.duration_ms is not None:
        usage.runs.append((count.duration_ms, count.largest_payload_bytes))
    for attempt in count.attempts:
        if attempt.function is None or not attempt.invoked:
            continue
        info = match_function(attempt.function, functions)
        if info is None:
            key = _function_name(attempt.function)
            usage.unknown_functions[key] = usage.unknown_functions.get(key, 0) + 1
            continue
        used = usage.functions.setdefault(info.logical_id, FunctionUsage(info))
        used.invocations += 1
        used.billed_ms += attempt.billed_ms
        used.durations_ms.append(attempt.billed_ms)
        if info.calls_endpoint:
            usage.endpoint_invocations += 1
            usage.endpoint_bytes_in += _image_bytes(attempt.payload)
            usage.endpoint_bytes_out += _inferences_bytes(attempt.result)
        elif attempt.succeeded and not _image_bytes(attempt.payload):
            read = _image_bytes(attempt.result)
            if read:  # it turned an S3 object into image_data
                used.reads_images = True
                usage.images_read += 1
                usage.image_bytes += read
