"""The twin's commands: outcome interpretation, the classify loop, the summary table, redaction,
the CLI surface and its one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scones.cli import main
from scones.errors import CommandError
from scones.settings import Settings
from scones.twin import bridge, cli, services
from scones.twin import classify as classify_module
from scones.twin.classify import ClassifyReport, interpret
from scones.twin.report import format_report, redact
from scones.twin.workflow import ExecutionOutcome

CLASSES = ["bicycle", "motorcycle"]


def test_interpret_each_outcome_kind() -> None:
    ok = interpret(
        "k1", ExecutionOutcome("a1", "SUCCEEDED", {"label": 1, "confidence": 0.97}), CLASSES
    )
    assert (ok.outcome, ok.class_name, ok.confidence) == ("classified", "motorcycle", 0.97)
    review = interpret(
        "k2", ExecutionOutcome("a2", "FAILED", None, "LowConfidenceError", "0.61 < 0.93"), CLASSES
    )
    assert (review.outcome, review.cause) == ("review", "0.61 < 0.93")
    bad = interpret(
        "k3", ExecutionOutcome("a3", "FAILED", None, "NotAnImageError", "bad PNG"), CLASSES
    )
    assert (bad.outcome, bad.error) == ("failed", "NotAnImageError")
    odd = interpret("k4", ExecutionOutcome("a4", "SUCCEEDED", {"x": 1}), CLASSES)
    assert (odd.outcome, odd.error) == ("failed", "UnexpectedOutput")
    cause = json.dumps({"errorMessage": "not a PNG", "errorType": "NotAnImageError"})
    lam = interpret("k6", ExecutionOutcome("a6", "FAILED", None, "NotAnImageError", cause), CLASSES)
    assert lam.cause == "not a PNG"
    timed = interpret("k5", ExecutionOutcome("a5", "TIMED_OUT"), CLASSES)
    assert (timed.outcome, timed.error) == ("failed", "TIMED_OUT")


def test_report_counts_and_table() -> None:
    report = ClassifyReport(source="x", bucket="b", prefix="p/", seconds=2.0)
    outcomes = [
        ExecutionOutcome("1", "SUCCEEDED", {"label": 0, "confidence": 0.99}),
        ExecutionOutcome("2", "SUCCEEDED", {"label": 0, "confidence": 0.95}),
        ExecutionOutcome("3", "FAILED", None, "LowConfidenceError", "low"),
        ExecutionOutcome("4", "FAILED", None, "ImageTooLargeError", "too big"),
    ]
    report.results = [interpret(str(i), o, CLASSES) for i, o in enumerate(outcomes)]
    assert report.counts() == {
        "classified": {"bicycle": 2},
        "review": 1,
        "failed": {"ImageTooLargeError": 1},
        "total": 4,
    }
    table = format_report(report)
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
    shown = redact(event)
    assert shown["image_data"] == "<40 base64 characters>"
    assert shown["nested"][0]["image_data"] == "<1 base64 characters>"
    assert shown["s3_key"] == "a.png" and shown["inferences"] == [0.1, 0.9]


def test_read_json_arg_forms(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"a": 1}')
    assert cli._read_json_arg(str(path)) == {"a": 1}
    assert cli._read_json_arg('{"b": 2}') == {"b": 2}
    with pytest.raises(CommandError, match="not valid JSON"):
        cli._read_json_arg("{nope")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_deep(5000).encode(), "nested too deeply"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "JSON value not readable"),
        (b"\xff\xd8\xff\xe0 a JPEG, not JSON", "not a text file"),
        (b"not json at all", "not valid JSON"),
    ],
)
def test_hostile_json_inputs_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    """`scones run --input deep.json`, `--input image.jpg`, `scones invoke -e` with a
    5,000-digit number printed tracebacks (issue 14): now one line, exit 2, before any call."""
    path = tmp_path / "input.json"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        cli._read_json_arg(str(path))
    for argv in (["run", "--input", str(path)], ["invoke", "SomeFunction", "-e", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and message in err, err
    inline = '{"s3_key": ' + "9" * 5000 + "}"
    assert main(["invoke", "SomeFunction", "-e", inline]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scones invoke: JSON value not readable: ") and len(err) < 300


@pytest.mark.parametrize("value", ["0", "-3", "x"])
def test_classify_concurrency_below_one_is_refused_by_argparse(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--concurrency 0` hung (issue 14)."""
    with pytest.raises(SystemExit) as exited:
        main(["classify", "s3://b/p/", "--concurrency", value])
    assert exited.value.code == 2
    assert "--concurrency" in capsys.readouterr().err


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


class FakeStepFunctions:
    """Just enough of a Step Functions client for the classify loop: each execution answers the
    scripted statuses in turn (the last one from then on)."""

    class exceptions:  # noqa: N801 - the boto3 client's attribute name
        class ExecutionAlreadyExists(Exception):
            pass

        class ExecutionDoesNotExist(Exception):
            pass

    def __init__(self, script: dict[str, list[ExecutionOutcome]]) -> None:
        self.script = script  # object key -> outcomes (arn filled in)
        self.names: list[str] = []
        self.running = 0
        self.most_running = 0
        self.by_arn: dict[str, list[ExecutionOutcome]] = {}

    def start_execution(self, stateMachineArn: str, name: str, input: str) -> dict[str, str]:  # noqa: N803
        key = json.loads(input)["detail"]["object"]["key"]
        arn = stateMachineArn.replace(":stateMachine:", ":execution:") + ":" + name
        self.names.append(name)
        self.by_arn[arn] = list(self.script[key])
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        return {"executionArn": arn}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803
        steps = self.by_arn[executionArn]
        outcome = steps.pop(0) if len(steps) > 1 else steps[0]
        if outcome.status != "RUNNING" and len(steps) <= 1:
            self.running -= 1
        info: dict[str, Any] = {"status": outcome.status}
        if outcome.output is not None:
            info["output"] = json.dumps(outcome.output)
        info.update({k: v for k, v in (("error", outcome.error), ("cause", outcome.cause)) if v})
        return info


def _flight(sfn: FakeStepFunctions, suffix: str = "", timeout_s: float = 30.0) -> Any:
    config = bridge.BridgeConfig(
        bucket="b",
        prefix="in/",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:m",
        region="us-east-1",
        rules=[{"name": "classify", "pattern": {}}],
        since=datetime(2026, 1, 1, tzinfo=UTC),
    )
    return classify_module._InFlight(sfn, config, suffix, timeout_s)


def _obj(key: str) -> bridge.S3Object:
    return bridge.S3Object("b", key, "etag-" + key, 1, datetime(2026, 1, 2, tzinfo=UTC))


def test_classify_loop_keeps_the_concurrency_and_reports_each_image_once() -> None:
    running = ExecutionOutcome("", "RUNNING")
    sfn = FakeStepFunctions(
        {
            "in/a.png": [
                running,
                ExecutionOutcome("", "SUCCEEDED", {"label": 1, "confidence": 0.99}),
            ],
            "in/b.png": [ExecutionOutcome("", "FAILED", None, "LowConfidenceError", "0.6")],
            "in/c.png": [running, running, ExecutionOutcome("", "FAILED", None, "NotAnImageError")],
            "in/d.png": [ExecutionOutcome("", "SUCCEEDED", {"label": 0, "confidence": 0.95})],
        }
    )
    seen: list[str] = []
    flight = _flight(sfn)
    objects = [_obj(f"in/{c}.png") for c in "abcd"]
    results = classify_module._run_all(
        flight, objects, CLASSES, 2, False, lambda r: seen.append(r.key)
    )
    assert sfn.most_running <= 2
    by_key = {r.key: (r.outcome, r.class_name or r.error) for r in results}
    assert by_key == {
        "in/a.png": ("classified", "motorcycle"),
        "in/b.png": ("review", "LowConfidenceError"),
        "in/c.png": ("failed", "NotAnImageError"),
        "in/d.png": ("classified", "bicycle"),
    }
    assert sorted(seen) == sorted(by_key)
    assert sfn.names == [bridge.execution_name(o) for o in objects]  # the bridge's names
    assert flight.describe_calls >= len(objects)


def test_classify_loop_times_out_a_stuck_execution_and_rerun_gets_fresh_names() -> None:
    sfn = FakeStepFunctions({"in/stuck.png": [ExecutionOutcome("", "RUNNING")]})
    flight = _flight(sfn, suffix="again", timeout_s=0.05)
    (result,) = classify_module._run_all(flight, [_obj("in/stuck.png")], CLASSES, 4, False, None)
    assert (result.outcome, result.error) == ("failed", "ClassifyTimeout")
    assert result.cause == "still running after 0s"
    assert sfn.names[0].endswith("-again") and len(sfn.names[0]) <= 80


def _deployed_home(tmp_path: Path) -> Settings:
    settings = Settings(project_root=tmp_path, home=tmp_path / "home")
    settings.home.mkdir(parents=True)
    settings.deployed_file.write_text(
        json.dumps(
            {
                "bucket": "b",
                "incoming_prefix": "in/",
                "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:m",
                "endpoint_name": "e",
            }
        )
    )
    return settings


def test_classify_refuses_a_bad_source_before_any_call(tmp_path: Path) -> None:
    settings = _deployed_home(tmp_path)
    with pytest.raises(CommandError, match="bridge configuration is missing"):
        classify_module.classify(settings, "s3://b/in/", progress=False)
    bridge.write_config(
        settings,
        bridge.BridgeConfig("b", "in/", "arn", "us-east-1", [], datetime(2026, 1, 1, tzinfo=UTC)),
    )
    with pytest.raises(CommandError, match="not an S3 URI"):
        classify_module.classify(settings, "s3:///in/", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(CommandError, match="no images"):
        classify_module.classify(settings, str(empty), progress=False)


def test_local_images_skips_other_files(tmp_path: Path) -> None:
    for name in ("a.PNG", "sub/b.jpg", "c.txt", ".hidden.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    images, skipped = classify_module.local_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == ["a.PNG", "sub/b.jpg"]
    assert skipped == 1


def test_up_failure_is_one_line_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> list[str]:
        raise services.ServiceError("s3: port 8333 on 127.0.0.1 is taken by another program")

    monkeypatch.setattr(services, "up", fail)
    assert main(["up"]) == 1
    assert capsys.readouterr().err == (
        "scones up: s3: port 8333 on 127.0.0.1 is taken by another program\n"
    )


def test_workflow_errors_keep_their_class_name_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCONES_HOME", str(tmp_path))
    monkeypatch.setenv("SCONES_PROJECT", str(tmp_path))  # no template.yaml here
    assert main(["invoke", "SomeFunction"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scones invoke: TemplateNotFoundError: template not found")
    assert err.count("\n") == 1


def test_deploy_refuses_a_rule_pattern_the_bridge_cannot_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow_sample_app import TEMPLATE, write_app

    template = TEMPLATE.replace("key: [{ prefix: in/ }]", "key: [{ between: [1, 2] }]")
    assert template != TEMPLATE
    root = write_app(tmp_path / "app", template=template)
    monkeypatch.setenv("SCONES_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCONES_PROJECT", str(root))
    assert main(["deploy", "--local", "--model", str(tmp_path / "none.tar.gz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("scones deploy: UnsupportedPatternError: event pattern operator")
    assert not (tmp_path / "home" / "deployed.json").exists()


class DyingStepFunctions(FakeStepFunctions):
    """Answers ``alive_for`` DescribeExecution calls, then refuses connections (the sfn server
    died); ``lost`` executions are unknown once (the server restarted and forgot them)."""

    def __init__(self, script: dict[str, list[ExecutionOutcome]], alive_for: int = 10**9) -> None:
        super().__init__(script)
        self.alive_for, self.lost = alive_for, set[str]()

    def describe_execution(self, executionArn: str) -> dict[str, Any]:  # noqa: N803
        from botocore.exceptions import EndpointConnectionError

        self.alive_for -= 1
        if self.alive_for < 0:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        if executionArn in self.lost:
            self.lost.discard(executionArn)
            raise self.exceptions.ExecutionDoesNotExist(executionArn)
        return super().describe_execution(executionArn)


def _script(keys: list[str]) -> dict[str, list[ExecutionOutcome]]:
    ok = ExecutionOutcome("", "SUCCEEDED", {"label": 0, "confidence": 0.99})
    bad = ExecutionOutcome("", "FAILED", None, "S3UnavailableError", "S3 did not answer")
    return {k: [ExecutionOutcome("", "RUNNING"), bad if "bad" in k else ok] for k in keys}


def test_classify_stops_early_with_what_ended_and_resumes_without_redoing(
    tmp_path: Path,
) -> None:
    """The sfn server died mid-batch: the run reports what ended; the next run skips those,
    runs the rest and the failed one again under -r2 (issue 14: it ran all 2,000 again)."""
    from scones.twin.classify_journal import Journal

    keys = [f"in/{i:02d}.png" for i in range(12)] + ["in/bad.png"]
    objects = [_obj(k) for k in keys]
    options = {"concurrency": 3, "progress": False, "on_result": None, "wait_s": 0.0}
    journal = Journal(tmp_path / "journal.jsonl").load()
    first = DyingStepFunctions(_script(keys), alive_for=12)
    results: list[Any] = []
    stopped = classify_module._run_resiliently(
        _flight(first), objects, CLASSES, options, journal, results
    )
    journal.close()
    assert stopped is not None and "stopped answering" in stopped
    assert 0 < len(results) < len(keys)
    ended = {r.key for r in results}

    journal = Journal(tmp_path / "journal.jsonl").load()  # a new process: read from disk
    assert set(k for _, k, _ in journal.entries) == ended
    second = DyingStepFunctions(_script(keys))  # restarted: knows no execution
    flight, again = _flight(second), list[Any]()
    assert (
        classify_module._run_resiliently(flight, objects, CLASSES, options, journal, again) is None
    )
    assert sorted(r.key for r in again) == sorted(keys)  # each image once
    started = {n.rsplit("-", 1)[0] if n.endswith("-r2") else n for n in second.names}
    assert started == {bridge.execution_name(o) for o in objects if o.key not in ended}
    assert flight.new == len(keys) - len(ended)

    journal.close()
    journal = Journal(tmp_path / "journal.jsonl").load()
    third = DyingStepFunctions(_script(keys))
    again = []
    classify_module._run_resiliently(_flight(third), objects, CLASSES, options, journal, again)
    attempt = 3 if "in/bad.png" in ended else 2  # only the failed image runs again
    assert third.names == [f"{bridge.execution_name(_obj('in/bad.png'))}-r{attempt}"]


def test_executions_the_restarted_server_lost_are_started_again() -> None:
    keys = ["in/a.png", "in/b.png"]
    sfn = DyingStepFunctions(_script(keys))
    flight = _flight(sfn)
    objects = [_obj(k) for k in keys]
    flight.start(objects[0])
    sfn.lost.add(next(iter(flight.started)))
    results = classify_module._run_all(flight, objects[1:], CLASSES, 4, False, None)
    while flight.started:
        results += [classify_module.interpret(i.obj.key, o, CLASSES) for i, o in flight.ended()]
    assert sorted(r.key for r in results) == keys and flight.restarted == 1
    assert sfn.names.count(bridge.execution_name(objects[0])) == 2  # the same name again


def test_progress_in_a_log_is_a_few_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Not a line per step in non-interactive logs (issue 14)."""
    from scones.twin.classify_source import Progress

    bar = Progress(2000, "classify", enabled=True)  # stderr is captured: not a terminal
    for _ in range(2000):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"classify: {n}/2000 images" for n in (500, 1000, 1500, 2000)]
