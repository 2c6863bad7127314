"""Hostile capture records (issue 14): each lands in ``parse_errors.csv`` with its reason, the rest
of its file is still read, memory stays bounded, and a crash never exits with the alert's code."""

from __future__ import annotations

import csv
import io
import json
import random
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from monitor_helpers import make_record, write_capture

from scones.monitor import capture as cap
from scones.monitor import cli as monitor_cli_module
from scones.monitor.cli import EXIT_ALERT, EXIT_CRASH, EXIT_OK, EXIT_USAGE, parse_when
from scones.monitor.collect import Collector, Recorder
from scones.monitor.figures import choose_bucket
from scones.monitor.records import MAX_CLASSES, MalformedCaptureError, parse_record
from scones.monitor.run import MonitorOptions, run_monitor

Cli = Callable[..., int]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def good(k: int) -> dict[str, Any]:
    return make_record((0.97, 0.03), time=f"2026-11-27T10:{k:02d}:00Z", event_id=f"ok-{k}")


def deep(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


# (line as written, what its parse_errors.csv reason says)
HOSTILE: list[tuple[str | bytes, str]] = [
    (json.dumps(make_record(time="9999-12-31T23:59:59Z")), "9999-12-31T23:59:59Z is after"),
    (json.dumps(make_record(time="9999-12-31T23:59:59-05:00")), "not an ISO 8601 time"),
    (json.dumps(make_record(time="0001-01-01T00:00:00Z")), "0001-01-01T00:00:00Z is before"),
    (json.dumps(make_record(time="0001-01-01T00:00:00+05:00")), "years 1-9999"),
    (json.dumps(make_record(time="yesterday at noon")), "not an ISO 8601 time"),
    (json.dumps(make_record(time="1970-01-01T00:00:00Z")), "before 2017-11-29"),
    (deep(100_000), "nested too deeply"),
    (json.dumps(make_record([1e-5] * 100_000)), "about 100,000 values"),
    (b'{"captureData": "\xff\xfe caf\xe9"}', "not UTF-8"),
    (json.dumps(make_record(event_id="\ud800")), "unpaired surrogate"),
    (json.dumps(make_record(event_id="x" * 5000)), "5,000 characters"),
]


def test_every_hostile_record_is_a_parse_error_and_the_file_goes_on(
    tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[bytes] = []
    for k, (line, _) in enumerate(HOSTILE):
        lines.append(json.dumps(good(k)).encode())
        lines.append(line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass"))
    lines.append(json.dumps(good(59)).encode())
    folder = tmp_path / "captures"
    folder.mkdir()
    (folder / "hostile.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    out = tmp_path / "out"
    assert monitor_cli(str(folder), "-o", str(out), "--no-progress") == EXIT_OK
    with open(out / "parse_errors.csv", newline="") as handle:
        errors = list(csv.DictReader(handle))
    assert [int(e["line"]) for e in errors] == [2 * k + 2 for k in range(len(HOSTILE))]
    for error, (_, reason) in zip(errors, HOSTILE, strict=True):
        assert reason in error["error"], (reason, error["error"])
        assert "\n" not in error["error"]
    with open(out / "inferences.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["event_id"] for r in rows] == [f"ok-{k}" for k in range(len(HOSTILE))] + ["ok-59"]
    printed = capsys.readouterr().out
    assert f"{len(HOSTILE) + 1} inferences from 1 files" in printed
    assert f"{len(HOSTILE)} parse errors" in printed


def test_a_1970_record_does_not_stretch_the_figures(tmp_path: Path) -> None:
    """Six records over 5 minutes and one dated 1970: buckets of a minute over the real span."""
    write_capture(
        tmp_path / "c" / "x.jsonl",
        [good(k) for k in range(5)] + [make_record(time="1970-01-01T00:00:00Z", event_id="old")],
    )
    result = run_monitor(
        MonitorOptions(source=str(tmp_path / "c"), output=tmp_path / "o", progress=False)
    )
    assert result.collector.count == 5
    assert result.collector.errors_total == 1
    assert result.figures is not None
    assert result.figures.bucket == "1min"
    assert len(result.figures.series["volume"]) == 5


def test_buckets_stay_bounded_over_long_spans() -> None:
    eight_years = 8 * 365 * 86400.0
    assert choose_bucket(0, eight_years) == "30d"
    assert choose_bucket(0, 60 * 86400.0) == "1d"
    assert choose_bucket(0, 300 * 86400.0, "1min") == "7d"  # 432,000 bars asked: auto instead
    assert choose_bucket(0, 3600.0, "1min") == "1min"


def test_recorder_rejects_times_relative_to_its_clock() -> None:
    rows, errors = io.StringIO(), io.StringIO()
    recorder = Recorder(
        Collector(threshold=0.93), rows, errors, classes=["a", "b"], classes_from="", now=NOW
    )
    capture = cap.CaptureFile("mem.jsonl", "", "", None, 0)
    recorder.read_file(
        capture,
        [
            json.dumps(make_record(time="2026-11-29T11:00:00Z")).encode(),  # within a day: kept
            json.dumps(make_record(time="2026-11-29T12:00:01Z")).encode(),  # past it: refused
            json.dumps(make_record(time="2017-11-28T23:59:59Z")).encode(),
        ],
    )
    assert recorder.collector.count == 1
    reasons = [row[2] for row in csv.reader(io.StringIO(errors.getvalue()))][1:]
    assert "is after 2026-11-29T12:00:00Z" in reasons[0]
    assert "before 2017-11-29" in reasons[1]


def test_an_unexpected_error_in_one_record_does_not_drop_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from scones.monitor import collect

    real = collect.parse_record

    def flaky(line: Any) -> Any:
        if b"boom" in line:
            raise ZeroDivisionError("boom")
        return real(line)

    monkeypatch.setattr(collect, "parse_record", flaky)
    errors = io.StringIO()
    recorder = Recorder(
        Collector(threshold=0.93), io.StringIO(), errors, classes=["a", "b"], classes_from=""
    )
    lines = [json.dumps(good(k)).encode() for k in range(3)]
    lines.insert(1, json.dumps(make_record(event_id="boom")).encode())
    recorder.read_file(cap.CaptureFile("mem.jsonl", "", "", None, 0), lines)
    assert recorder.collector.count == 3
    assert "unreadable: ZeroDivisionError: boom" in errors.getvalue()


def test_a_100000_probability_record_is_refused_in_bounded_memory() -> None:
    line = json.dumps(make_record([1e-5] * 100_000)).encode()
    tracemalloc.start()
    try:
        with pytest.raises(MalformedCaptureError, match="more than the 1,000 classes"):
            parse_record(line)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the line is 0.7 MB; parsing its 100,000 floats would cost about 10 MB more
    assert peak < 4 * len(line), peak
    assert (
        len(parse_record(json.dumps(make_record([1 / MAX_CLASSES] * MAX_CLASSES))).probabilities)
        == MAX_CLASSES
    )


def test_deep_nesting_inside_the_output_is_a_parse_error() -> None:
    record = make_record()
    record["captureData"]["endpointOutput"]["data"] = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MalformedCaptureError, match="nested too deeply"):
        parse_record(json.dumps(record))


def test_a_huge_line_is_skipped_without_holding_it(tmp_path: Path, monitor_cli: Cli) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    huge = b'{"x": "' + b"a" * (cap.MAX_LINE_BYTES + 10) + b'"}'
    lines = [json.dumps(good(1)).encode(), huge, json.dumps(good(2)).encode()]
    (folder / "h.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "o"
    assert monitor_cli(str(folder), "-o", str(out), "--no-progress") == EXIT_OK
    with open(out / "parse_errors.csv", newline="") as handle:
        (error,) = list(csv.DictReader(handle))
    assert error["line"] == "2"
    assert error["error"] == f"line of {len(huge) + 1:,} bytes, over {cap.MAX_LINE_BYTES:,}"
    assert (out / "inferences.csv").read_text().count("\n") == 3  # header and two rows


@pytest.mark.parametrize("seed", range(5))
def test_split_lines_matches_splitlines_for_any_chunking(seed: int) -> None:
    rng = random.Random(seed)
    lines = [bytes(rng.choice(b"ab{}") for _ in range(rng.randrange(0, 40))) for _ in range(60)]
    data = b"\n".join(lines) + (b"\n" if seed % 2 else b"")
    cuts = sorted(rng.sample(range(1, len(data)), 20))
    chunks = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    limit = 25
    got = list(cap.split_lines(chunks, limit))
    pieces = data.split(b"\n")
    whole = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    expected = [cap.LongLine(len(w)) if len(w) > limit else w for w in whole]
    assert got == expected


def test_large_s3_objects_are_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Body:
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)
            self.whole_reads = 0

        def read(self, size: int | None = None) -> bytes:
            if size is None:
                self.whole_reads += 1
            return self._data.read(size)

        def close(self) -> None:
            pass

    bodies: list[Body] = []

    class Client:
        def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
            bodies.append(Body(b"one\ntwo\n"))
            return {"Body": bodies[-1]}

    monkeypatch.setattr(cap, "PREFETCH_MAX_BYTES", 4)
    files = [cap.describe_path("s3://b/k.jsonl", 8), cap.describe_path("s3://b/s.jsonl", 3)]
    got = [(f.location, list(lines)) for f, lines in cap.iter_captures(files, Client())]
    assert got == [
        ("s3://b/k.jsonl", [b"one\n", b"two\n"]),
        ("s3://b/s.jsonl", [b"one\n", b"two\n"]),
    ]
    assert sorted(b.whole_reads for b in bodies) == [0, 1]  # the large one only in chunks


def test_a_crash_never_exits_with_the_alert_code(
    monkeypatch: pytest.MonkeyPatch,
    captures: Path,
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(monitor_cli_module, "run_monitor", broken)
    code = monitor_cli(str(captures), "-o", str(tmp_path / "o"))
    assert code == EXIT_CRASH != EXIT_ALERT
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a bug'" in err
    assert f"unexpected error (exit {EXIT_CRASH})" in err


@pytest.mark.parametrize("text", ["99999999999w", "0001-01-01T00:00:00+05:00", "10000-01-01"])
def test_absurd_since_is_a_usage_error(
    text: str, captures: Path, tmp_path: Path, monitor_cli: Cli
) -> None:
    assert monitor_cli(str(captures), "-o", str(tmp_path / "o"), "--since", text) == EXIT_USAGE
    with pytest.raises(Exception, match="is not a time"):
        parse_when(text, NOW)


def test_split_lines_memory_stays_near_its_limit() -> None:
    """40 MiB without a newline, then a short line: the long one is counted, never held."""

    def chunks() -> Any:
        for _ in range(40):
            yield b"a" * (1 << 20)
        yield b"\nshort\n"

    tracemalloc.start()
    try:
        got = list(cap.split_lines(chunks(), limit=2 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [cap.LongLine((40 << 20) + 1), b"short\n"]
    assert peak < 6 << 20, peak
