"""The four canonical executions of the real state machine, rendered and read back through the
SVG's ``data-state``/``data-status`` (the contract for scripts and tests); the CLI and the
evidence pack on the same executions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graph_helpers import Run, Workflow, deployed_workflow, run_canonical

from scones.cli import main
from scones.graph import render_svg, state_runs

NODE = re.compile(r'<g class="[^"]*" data-state="([^"]+)" data-status="([^"]+)">')
FRONT = ["ReadInput", "CheckInput", "AddSettings"]


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workflow]:
    with (
        pytest.MonkeyPatch.context() as patch,
        deployed_workflow(tmp_path_factory.mktemp("aws")) as deployed,
    ):
        run_canonical(deployed, patch)
        yield deployed


def statuses(svg: str) -> dict[str, str]:
    """``{state: status}`` as the SVG carries it."""
    return dict(NODE.findall(svg))


def ran(found: dict[str, str]) -> dict[str, str]:
    return {name: status for name, status in found.items() if status != "not-run"}


def rendered(workflow: Workflow, name: str) -> tuple[Run, dict[str, str]]:
    run = workflow.runs[name]
    found = statuses(render_svg(workflow.definition, run.events))
    assert set(found) == set(json.loads(workflow.definition)["States"])  # every state, once
    return run, found


def test_success(workflow: Workflow) -> None:
    run, found = rendered(workflow, "success")
    assert run.describe["status"] == "SUCCEEDED"
    tasks = ["SerializeImage", "ClassifyImage", "FilterInferences"]
    assert ran(found) == dict.fromkeys(FRONT + tasks, "succeeded")


def test_low_confidence_is_caught_and_ends_in_the_review_fail_state(workflow: Workflow) -> None:
    run, found = rendered(workflow, "low-confidence")
    assert (run.describe["status"], run.describe["error"]) == ("FAILED", "LowConfidenceError")
    assert ran(found) == {
        **dict.fromkeys(FRONT + ["SerializeImage", "ClassifyImage"], "succeeded"),
        "FilterInferences": "caught",
        "RecordForHumanReview": "succeeded",
        "LowConfidence": "failed",
    }
    runs = state_runs(workflow.definition, run.events)
    assert runs["FilterInferences"].caught_by == ["LowConfidenceError"]
    assert runs["FilterInferences"].error == "LowConfidenceError"
    assert runs["LowConfidence"].error == "LowConfidenceError"
    assert "0.6" in (runs["LowConfidence"].cause or "")


def test_not_an_image_is_caught_into_its_fail_state(workflow: Workflow) -> None:
    run, found = rendered(workflow, "not-an-image")
    assert run.describe["error"] == "NotAnImageError"
    assert ran(found) == {
        **dict.fromkeys(FRONT, "succeeded"),
        "SerializeImage": "caught",
        "NotAnImage": "failed",
    }
    runs = state_runs(workflow.definition, run.events)
    assert runs["SerializeImage"].caught_by == ["NotAnImageError"]
    assert "not a PNG" in (runs["NotAnImage"].cause or "")


def test_a_retried_endpoint_unavailable_error_then_success(workflow: Workflow) -> None:
    run, found = rendered(workflow, "endpoint-retried")
    assert run.describe["status"] == "SUCCEEDED"
    tasks = ["SerializeImage", "ClassifyImage", "FilterInferences"]
    assert ran(found) == dict.fromkeys(FRONT + tasks, "succeeded")
    classify = state_runs(workflow.definition, run.events)["ClassifyImage"]
    assert classify.retries == 1 and classify.error is None
    failed = [e for e in run.events if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == ["EndpointUnavailableError"]
    svg = render_svg(workflow.definition, run.events)
    assert "retried 1x" in svg


def test_each_state_has_its_time(workflow: Workflow) -> None:
    runs = state_runs(workflow.definition, workflow.runs["success"].events)
    for name in FRONT + ["SerializeImage", "ClassifyImage", "FilterInferences"]:
        assert runs[name].seconds is not None and runs[name].seconds >= 0
    assert runs["MissingImageLocation"].seconds is None


# ------------------------------------------------------------------------------ the CLI


def graph(*args: str) -> int:
    return main(["graph", *args])


def test_cli_latest_failed_draws_the_newest_failed_execution(
    workflow: Workflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "failed.svg"
    code = graph(
        "--state-machine",
        workflow.machine_arn,
        "--latest",
        "--status",
        "FAILED",
        "--output",
        str(out),
    )
    assert code == 0
    assert "not-an-image: FAILED (NotAnImageError)" in capsys.readouterr().out
    assert statuses(out.read_text())["NotAnImage"] == "failed"


def test_cli_resolves_an_execution_name(workflow: Workflow, tmp_path: Path) -> None:
    out = tmp_path / "low.png"
    assert (
        graph(
            "--state-machine",
            workflow.machine_arn,
            "--execution",
            "low-confidence",
            "--output",
            str(out),
        )
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_unknown_name_is_one_line(
    workflow: Workflow, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = graph(
        "--state-machine",
        workflow.machine_arn,
        "--execution",
        "nope",
        "--output",
        str(tmp_path / "x.svg"),
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "no execution named 'nope'" in err


def test_cli_plain_graph_has_states_but_no_status(workflow: Workflow, tmp_path: Path) -> None:
    out = tmp_path / "plain.svg"
    assert graph("--state-machine", workflow.machine_arn, "--output", str(out)) == 0
    svg = out.read_text()
    assert svg.count("data-state=") == len(json.loads(workflow.definition)["States"])
    assert "data-status=" not in svg


def test_export_writes_the_evidence_pack(workflow: Workflow, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    assert (
        graph(
            "--state-machine",
            workflow.machine_arn,
            "--execution",
            "low-confidence",
            "--export",
            str(pack),
        )
        == 0
    )
    names = sorted(p.name for p in pack.iterdir())
    assert names == sorted(
        [
            "scones-ImageClassification.asl.json",
            "describe-state-machine.json",
            "describe-execution.json",
            "execution-history.json",
            "graph.svg",
            "graph.png",
            "manifest.json",
        ]
    )
    definition = json.loads((pack / "scones-ImageClassification.asl.json").read_text())
    assert definition == json.loads(workflow.definition)
    history = json.loads((pack / "execution-history.json").read_text())["events"]
    assert len(history) == len(workflow.runs["low-confidence"].events)
    assert history[0]["type"] == "ExecutionStarted" and "T" in history[0]["timestamp"]
    described = json.loads((pack / "describe-execution.json").read_text())
    assert described["status"] == "FAILED" and "ResponseMetadata" not in described
    manifest: dict[str, Any] = json.loads((pack / "manifest.json").read_text())
    assert manifest["ended"]["error"] == "LowConfidenceError"
    assert set(manifest["files"]) == set(names)
    assert statuses((pack / "graph.svg").read_text())["FilterInferences"] == "caught"


def test_cli_latest_with_an_error_skips_other_failures(
    workflow: Workflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "review.svg"
    args = ["--latest", "--status", "FAILED", "--error", "LowConfidenceError"]
    assert graph("--state-machine", workflow.machine_arn, *args, "--output", str(out)) == 0
    assert "low-confidence: FAILED (LowConfidenceError)" in capsys.readouterr().out
    args = ["--latest", "--status", "SUCCEEDED", "--error", "NoSuchError"]
    assert graph("--state-machine", workflow.machine_arn, *args, "--output", str(out)) == 2
    assert "no execution with status SUCCEEDED and error NoSuchError" in capsys.readouterr().err


def test_cli_latest_with_no_match_is_one_line(
    workflow: Workflow, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = graph(
        "--state-machine",
        workflow.machine_arn,
        "--latest",
        "--status",
        "ABORTED",
        "--output",
        str(tmp_path / "x.svg"),
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{workflow.machine_arn} has no execution with status ABORTED" in err
