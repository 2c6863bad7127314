"""``scones monitor`` end to end on local folders: CSV, window, alerts, class names, errors."""

from __future__ import annotations

import base64
import csv
import io
import json
import tarfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from monitor_helpers import GENERATED, GENERATED_BELOW_093, make_record, write_capture

from scones.monitor.capture import describe_path, in_window, list_local, split_s3_uri
from scones.monitor.cli import (
    EXIT_ALERT,
    EXIT_NO_CAPTURES,
    EXIT_OK,
    EXIT_SOURCE,
    EXIT_USAGE,
    parse_when,
)

Cli = Callable[..., int]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def real_records(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


@pytest.mark.parametrize("data", ["shared", "generated"])
def test_captures_give_22_rows_with_their_content(
    data: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every record becomes one row holding exactly what was captured: the real SageMaker
    captures (shared data) and the generated set written in the twin's capture format."""
    folder = request.getfixturevalue("shared_capture" if data == "shared" else "captures")
    out = tmp_path / "report"
    assert (
        monitor_cli(str(folder), "--output", str(out), "--classes", "bicycle,motorcycle") == EXIT_OK
    )
    rows = read_csv(out / "inferences.csv")
    assert len(rows) == 22
    expected = {r["eventMetadata"]["eventId"]: r for r in real_records(folder)}
    assert {row["event_id"] for row in rows} == set(expected)
    for row in rows:
        record = expected[row["event_id"]]
        probs = json.loads(record["captureData"]["endpointOutput"]["data"])
        assert row["time"] == record["eventMetadata"]["inferenceTime"]
        assert float(row["p_bicycle"]) == probs[0]  # exactly as captured
        assert float(row["p_motorcycle"]) == probs[1]
        assert row["predicted_label"] == ("bicycle" if probs[0] >= probs[1] else "motorcycle")
        assert float(row["confidence"]) == max(probs)
        assert row["passed_threshold"] == ("true" if max(probs) >= 0.93 else "false")
        payload = record["captureData"]["endpointInput"]["data"]
        assert int(row["input_bytes"]) == len(base64.b64decode(payload))
        assert row["source"].endswith(".jsonl:" + row["source"].rsplit(":", 1)[1])
    below = sum(
        max(json.loads(r["captureData"]["endpointOutput"]["data"])) < 0.93
        for r in expected.values()
    )
    assert sum(row["passed_threshold"] == "false" for row in rows) == below == 7
    assert read_csv(out / "parse_errors.csv") == []
    printed = capsys.readouterr().out
    assert "22 inferences from 12 files; review rate 31.8% (7 below 0.93)" in printed
    for name in (
        "report.html",
        "confidence_over_time.png",
        "confidence_histogram.png",
        "class_mix.png",
        "review_rate.png",
        "request_volume.png",
    ):
        assert (out / name).stat().st_size > 1000, name
    assert not list(out.glob("*.partial"))


def test_default_class_names_and_endpoint_for_flat_folder(
    captures: Path, tmp_path: Path, monitor_cli: Cli
) -> None:
    out = tmp_path / "r"
    assert monitor_cli(str(captures), "-o", str(out), "--endpoint", "prod-ep") == EXIT_OK
    rows = read_csv(out / "inferences.csv")
    assert {"p_class 0", "p_class 1"} <= set(rows[0])
    assert {row["endpoint"] for row in rows} == {"prod-ep"}
    assert {row["variant"] for row in rows} == {""}


@pytest.mark.parametrize(
    ("args", "count"),
    [
        # the generated set: 2 records on Nov 26, then one a minute from 09:16 to 09:35 on Nov 27
        (("--since", "2026-11-27T09:25:00Z"), 11),
        (("--until", "2026-11-27"), 2),
        (("--since", "2026-11-27T09:20", "--until", "2026-11-27T09:30:00"), 10),
        (("--since", "2026-11-27T11:30+02:00", "--until", "2026-11-27T09:32:00Z"), 2),
    ],
)
def test_time_window(
    captures: Path, tmp_path: Path, monitor_cli: Cli, args: tuple[str, ...], count: int
) -> None:
    out = tmp_path / "w"
    assert monitor_cli(str(captures), "-o", str(out), *args) == EXIT_OK
    rows = read_csv(out / "inferences.csv")
    assert len(rows) == count
    since = datetime.fromisoformat(args[1]).astimezone(UTC) if args[0] == "--since" else None
    until = datetime.fromisoformat(args[-1]).astimezone(UTC) if "--until" in args else None
    for row in rows:
        when = datetime.fromisoformat(row["time"])
        assert since is None or when >= since
        assert until is None or when < until


def test_window_with_nothing_in_it_exits_3(
    captures: Path, tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "none"
    assert monitor_cli(str(captures), "-o", str(out), "--since", "2027-01-01") == EXIT_NO_CAPTURES
    err = capsys.readouterr().err.strip()
    assert err == (
        f"scones monitor: no captures in the window: 22 records under {captures} "
        "fall outside --since/--until"
    )
    assert not (out / "inferences.csv").exists() and not (out / "report.html").exists()


def test_alert_exit_codes(
    captures: Path, tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    # 7 of 22 (31.8%) are below 0.93
    assert sum(max(p, 1 - p) < 0.93 for _, p in GENERATED) == GENERATED_BELOW_093 == 7
    assert (
        monitor_cli(str(captures), "-o", str(tmp_path / "a"), "--max-review-rate", "0.3")
        == EXIT_ALERT
    )
    err = capsys.readouterr().err
    assert "ALERT: review rate 31.8% (7 of 22 below 0.93) exceeds --max-review-rate 30.0%" in err
    assert "Alert:" in (tmp_path / "a" / "report.html").read_text()
    assert (
        monitor_cli(str(captures), "-o", str(tmp_path / "b"), "--max-review-rate", "32%") == EXIT_OK
    )
    # a lower threshold: only 4 below 0.8 (0.77, 0.79, 0.52, 0.76)
    assert (
        monitor_cli(
            str(captures),
            "-o",
            str(tmp_path / "c"),
            "--threshold",
            "0.8",
            "--max-review-rate",
            "0.2",
        )
        == EXIT_OK
    )
    assert "review rate 18.2% (4 below 0.8)" in capsys.readouterr().out


def test_no_captures_exit_3(
    tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert monitor_cli(str(empty), "-o", str(tmp_path / "o")) == EXIT_NO_CAPTURES
    assert (
        capsys.readouterr().err.strip() == f"scones monitor: no .jsonl capture files under {empty}"
    )
    write_capture(empty / "blank.jsonl", ["", "  "])
    assert monitor_cli(str(empty), "-o", str(tmp_path / "o")) == EXIT_NO_CAPTURES
    assert "no capture records in 1 files" in capsys.readouterr().err


def test_all_records_unreadable_exit_3_naming_the_first(
    tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_capture(tmp_path / "in" / "bad.jsonl", ["{oops", "[]"])
    assert monitor_cli(str(tmp_path / "in"), "-o", str(tmp_path / "o")) == EXIT_NO_CAPTURES
    err = capsys.readouterr().err
    assert (
        f"none of the 2 records under {tmp_path / 'in'} could be read (first error: {path}:1: not valid JSON"
        in err
    )


def test_missing_folder_exit_4(
    tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    assert monitor_cli(str(tmp_path / "nope"), "-o", str(tmp_path / "o")) == EXIT_SOURCE
    assert capsys.readouterr().err.strip() == f"scones monitor: {tmp_path / 'nope'} does not exist"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "'yesterday' is not a time"),
        (("--since", "2024-10-17", "--until", "2024-10-16"), "is not before --until"),
        (("--classes", "bicycle"), "give two or more comma-separated names"),
        (("--classes", "a,a"), "names repeat"),
        (("--model", "/nonexistent/model.tar.gz"), "no such file"),
    ],
)
def test_bad_arguments_exit_2(
    captures: Path,
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    assert monitor_cli(str(captures), "-o", str(tmp_path / "o"), *args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc", "150%"])
def test_bad_rates_are_argparse_errors(
    captures: Path, tmp_path: Path, monitor_cli: Cli, value: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        monitor_cli(str(captures), "-o", str(tmp_path / "o"), "--max-review-rate", value)
    assert exc.value.code == EXIT_USAGE


def _model_tar(path: Path, classes_json: bytes | None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("model.onnx", b"onnx"), ("classes.json", classes_json)):
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_class_names_from_model_tar(captures: Path, tmp_path: Path, monitor_cli: Cli) -> None:
    tar = _model_tar(tmp_path / "model.tar.gz", json.dumps({"classes": ["bike", "moto"]}).encode())
    assert monitor_cli(str(captures), "-o", str(tmp_path / "o"), "--model", str(tar)) == EXIT_OK
    rows = read_csv(tmp_path / "o" / "inferences.csv")
    assert {row["predicted_label"] for row in rows} == {"bike", "moto"}
    assert f"--model {tar}" in (tmp_path / "o" / "report.html").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no classes.json file in the archive"),
        (b"{", "not valid JSON"),
        (b'{"classes": 3}', "no list of class names"),
    ],
)
def test_bad_model_tar(
    captures: Path,
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    tar = _model_tar(tmp_path / "model.tar.gz", content)
    assert monitor_cli(str(captures), "-o", str(tmp_path / "o"), "--model", str(tar)) == EXIT_USAGE
    assert message in capsys.readouterr().err
    (tmp_path / "plain.tar.gz").write_text("not a tar")
    assert (
        monitor_cli(
            str(captures), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "plain.tar.gz")
        )
        == EXIT_USAGE
    )
    assert "not a readable tar archive" in capsys.readouterr().err


def test_sagemaker_layout_twin_class_names_and_endpoint_filter(
    tmp_path: Path, monitor_cli: Cli, _isolated_home: Path
) -> None:
    root = tmp_path / "data_capture"
    write_capture(
        root / "ep-a/AllTraffic/2026/11/27/10/15-00-000-a.jsonl",
        [make_record((0.9, 0.1), event_id="a1"), make_record((0.3, 0.7), event_id="a2")],
    )
    write_capture(
        root / "ep-b/Canary/2026/11/27/11/01-00-000-b.jsonl",
        [make_record((0.99, 0.01), time="2026-11-27T11:01:00Z", event_id="b1")],
    )
    model = _isolated_home / "endpoints" / "ep-a" / "model"
    model.mkdir(parents=True)
    (model / "classes.json").write_text(json.dumps({"classes": ["bicycle", "motorcycle"]}))

    assert monitor_cli(str(root), "-o", str(tmp_path / "all")) == EXIT_OK
    rows = read_csv(tmp_path / "all" / "inferences.csv")
    assert [(r["event_id"], r["endpoint"], r["variant"], r["predicted_label"]) for r in rows] == [
        ("a1", "ep-a", "AllTraffic", "bicycle"),
        ("a2", "ep-a", "AllTraffic", "motorcycle"),
        ("b1", "ep-b", "Canary", "bicycle"),
    ]
    assert monitor_cli(str(root), "-o", str(tmp_path / "b"), "--endpoint", "ep-b") == EXIT_OK
    assert [r["event_id"] for r in read_csv(tmp_path / "b" / "inferences.csv")] == ["b1"]
    assert (
        monitor_cli(str(root), "-o", str(tmp_path / "c"), "--endpoint", "ep-c") == EXIT_NO_CAPTURES
    )


def test_parse_errors_are_counted_by_file_and_line_and_do_not_stop_the_report(
    tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mixed"
    good = write_capture(
        folder / "a.jsonl", [make_record(event_id="ok1"), "{broken", make_record(event_id="ok2")]
    )
    bad = write_capture(
        folder / "b.jsonl",
        [
            make_record({"label": 1}, event_id="x"),
            make_record((0.2, 0.3, 0.5), event_id="three"),  # 3 classes where 2 are known
            make_record(event_id="ok3"),
        ],
    )
    out = tmp_path / "o"
    assert monitor_cli(str(folder), "-o", str(out), "--classes", "bicycle,motorcycle") == EXIT_OK
    assert [r["event_id"] for r in read_csv(out / "inferences.csv")] == ["ok1", "ok2", "ok3"]
    errors = read_csv(out / "parse_errors.csv")
    assert [(e["file"], e["line"]) for e in errors] == [
        (str(good), "2"),
        (str(bad), "1"),
        (str(bad), "2"),
    ]
    assert "not valid JSON" in errors[0]["error"]
    assert "JSON dict, expected a list" in errors[1]["error"]
    assert errors[2]["error"] == "3 probabilities, expected 2 (bicycle, motorcycle)"
    captured = capsys.readouterr()
    assert "3 parse errors" in captured.out
    assert "warning: 3 records could not be read" in captured.err
    page = (out / "report.html").read_text()
    assert "3 records could not be read" in page and f"{bad}</td><td>2</td>" in page


def test_parse_when() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_when("24h", now) == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_when("30m", now) == datetime(2026, 11, 27, 11, 30, tzinfo=UTC)
    assert parse_when("7d", now) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_when("2026-11-27", now) == datetime(2026, 11, 27, tzinfo=UTC)


def test_paths_and_windows() -> None:
    f = describe_path("s3://b/data_capture/ep/AllTraffic/2026/11/27/10/15-00-000-x.jsonl", 10)
    assert (f.endpoint, f.variant, f.hour) == (
        "ep",
        "AllTraffic",
        datetime(2026, 11, 27, 10, tzinfo=UTC),
    )
    flat = describe_path("/tmp/x/15-00-000-x.jsonl", 10)
    assert (flat.endpoint, flat.variant, flat.hour) == ("", "", None)
    # a file in hour 10 may hold records from 09:xx to 11:xx; outside that it is skipped unread
    assert in_window(f, datetime(2026, 11, 27, 11, 30, tzinfo=UTC), None)
    assert not in_window(f, datetime(2026, 11, 27, 12, 0, tzinfo=UTC), None)
    assert in_window(f, None, datetime(2026, 11, 27, 9, 30, tzinfo=UTC))
    assert not in_window(f, None, datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    assert in_window(flat, datetime(2030, 1, 1, tzinfo=UTC), None)
    assert split_s3_uri("s3://bucket/data_capture") == ("bucket", "data_capture/")
    assert split_s3_uri("s3://bucket") == ("bucket", "")


def test_list_local_accepts_a_single_file(tmp_path: Path) -> None:
    path = write_capture(tmp_path / "one.jsonl", [make_record()])
    assert [f.location for f in list_local(path)] == [path.as_posix()]
