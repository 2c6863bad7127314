"""Command helpers: outcome interpretation, the summary table, redaction, the CLI surface."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scones.cli import main
from scones.twin import commands, moto_patches
from scones.twin.commands import ExecutionOutcome

CLASSES = ["bicycle", "motorcycle"]


def test_interpret_each_outcome_kind() -> None:
    ok = commands._interpret(
        "k1", ExecutionOutcome("a1", "SUCCEEDED", {"label": 1, "confidence": 0.97}), CLASSES
    )
    assert (ok.outcome, ok.class_name, ok.confidence) == ("classified", "motorcycle", 0.97)
    review = commands._interpret(
        "k2", ExecutionOutcome("a2", "FAILED", None, "LowConfidenceError", "0.61 < 0.93"), CLASSES
    )
    assert (review.outcome, review.cause) == ("review", "0.61 < 0.93")
    bad = commands._interpret(
        "k3", ExecutionOutcome("a3", "FAILED", None, "NotAnImageError", "bad PNG"), CLASSES
    )
    assert (bad.outcome, bad.error) == ("failed", "NotAnImageError")
    odd = commands._interpret("k4", ExecutionOutcome("a4", "SUCCEEDED", {"x": 1}), CLASSES)
    assert (odd.outcome, odd.error) == ("failed", "UnexpectedOutput")
    cause = json.dumps({"errorMessage": "not a PNG", "errorType": "NotAnImageError"})
    lam = commands._interpret(
        "k6", ExecutionOutcome("a6", "FAILED", None, "NotAnImageError", cause), CLASSES
    )
    assert lam.cause == "not a PNG"
    timed = commands._interpret("k5", ExecutionOutcome("a5", "TIMED_OUT"), CLASSES)
    assert (timed.outcome, timed.error) == ("failed", "TIMED_OUT")


def test_report_counts_and_table() -> None:
    report = commands.ClassifyReport(source="x", bucket="b", prefix="p/", seconds=2.0)
    outcomes = [
        ExecutionOutcome("1", "SUCCEEDED", {"label": 0, "confidence": 0.99}),
        ExecutionOutcome("2", "SUCCEEDED", {"label": 0, "confidence": 0.95}),
        ExecutionOutcome("3", "FAILED", None, "LowConfidenceError", "low"),
        ExecutionOutcome("4", "FAILED", None, "ImageTooLargeError", "too big"),
    ]
    report.results = [commands._interpret(str(i), o, CLASSES) for i, o in enumerate(outcomes)]
    assert report.counts() == {
        "classified": {"bicycle": 2},
        "review": 1,
        "failed": {"ImageTooLargeError": 1},
        "total": 4,
    }
    table = commands.format_report(report)
    assert "classified: bicycle" in table and "ImageTooLargeError" in table
    assert "2.0 images/s" in table
    data = report.to_json()
    assert data["total"] == 4 and len(data["items"]) == 4
    json.dumps(data)


def test_redact_hides_image_bytes_only() -> None:
    event = {
        "s3_key": "a.png",
        "image_data": "QUJD" * 10,
        "inferences": [0.1, 0.9],
        "nested": [{"image_data": "x"}],
    }
    shown = commands.redact(event)
    assert shown["image_data"] == "<40 base64 characters>"
    assert shown["nested"][0]["image_data"] == "<1 base64 characters>"
    assert shown["s3_key"] == "a.png" and shown["inferences"] == [0.1, 0.9]


def test_read_json_arg_forms(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"a": 1}')
    assert commands._read_json_arg(str(path)) == {"a": 1}
    assert commands._read_json_arg('{"b": 2}') == {"b": 2}
    with pytest.raises(commands.CommandError, match="not valid JSON"):
        commands._read_json_arg("{nope")


def test_deploy_without_local_explains_aws(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy"]) == 0
    assert "sam deploy --guided" in capsys.readouterr().out


def test_user_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCONES_HOME", str(tmp_path))
    assert main(["run", "--input", "{}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "scones deploy --local" in err
    assert main(["classify", str(tmp_path / "missing")]) == 2
    assert main(["deploy", "--local", "--model", str(tmp_path / "none.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no model at" in err


def test_program_pool_never_hands_one_program_to_two_takers() -> None:
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    pool = moto_patches._ProgramPool(per_definition=2)
    first, second = pool.take(definition), pool.take(definition)
    assert first is not second
    pool.give(definition, first)
    assert pool.take(definition) is first  # reused once given back
    other = json.dumps({"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": True}}})
    assert pool.take(other) is not first
