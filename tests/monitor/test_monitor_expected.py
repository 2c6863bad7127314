"""Issue 15: the monitor shows the review rate the model expects (its ``metrics.json``) beside
the observed one, from ``--model-metrics`` or from the offline twin's endpoint."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from monitor_helpers import GENERATED, GENERATED_BELOW_093, make_record, write_capture

from scones.monitor.cli import EXIT_OK, EXIT_USAGE
from scones.monitor.expected import expected_from_metrics

Cli = Callable[..., int]
OBSERVED = f"{GENERATED_BELOW_093 / len(GENERATED):.1%}"  # 7 of 22: 31.8%


def metrics_file(path: Path, **values: object) -> Path:
    path.write_text(json.dumps({"classes": ["bicycle", "motorcycle"], **values}))
    return path


def summary(out: Path) -> str:
    return (out / "report.html").read_text()


def test_metrics_json_gives_expected_beside_observed(
    captures: Path, tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = metrics_file(
        tmp_path / "metrics.json", expected_review_rate=0.08, threshold=0.93, n_test=2000
    )
    out = tmp_path / "o"
    assert monitor_cli(str(captures), "-o", str(out), "--model-metrics", str(metrics)) == EXIT_OK
    printed = capsys.readouterr().out
    assert f"review rate {OBSERVED} (7 below 0.93; the model expected 8.0%)" in printed
    page = summary(out)
    assert "<th>review rate expected</th><td>8.0% at 0.93 on 2,000 validation images" in page
    assert f"Review rate {OBSERVED} (confidence below 0.93); the model expected 8.0%." in page


def test_model_archive_and_model_folder_work_and_coverage_is_the_fallback(
    captures: Path, tmp_path: Path, monitor_cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    metrics_file(folder / "metrics.json", coverage=0.75, threshold=0.93)  # older model: no rate
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = (folder / "metrics.json").read_bytes()
        info = tarfile.TarInfo("metrics.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    for source in (folder, archive):
        out = tmp_path / f"o-{source.name}"
        assert monitor_cli(str(captures), "-o", str(out), "--model-metrics", str(source)) == EXIT_OK
        assert "the model expected 25.0%" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"accuracy": 0.9}), "no expected_review_rate"),
        (json.dumps({"expected_review_rate": 1.5, "threshold": 0.93}), "no expected_review_rate"),
    ],
)
def test_unusable_metrics_are_usage_errors(
    content: str,
    message: str,
    captures: Path,
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(content)
    code = monitor_cli(str(captures), "-o", str(tmp_path / "o"), "--model-metrics", str(metrics))
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before reading anything


def test_missing_metrics_file(captures: Path, tmp_path: Path, monitor_cli: Cli) -> None:
    missing = str(tmp_path / "nope.json")
    assert monitor_cli(str(captures), "-o", str(tmp_path / "o"), "--model-metrics", missing) == 2


def test_the_twin_endpoint_model_gives_it_without_an_option(
    tmp_path: Path,
    monitor_cli: Cli,
    capsys: pytest.CaptureFixture[str],
    _isolated_home: Path,
) -> None:
    root = tmp_path / "data_capture"
    write_capture(
        root / "ep-a/AllTraffic/2026/11/27/10/15-00-000-a.jsonl",
        [make_record((0.9, 0.1), event_id="a1"), make_record((0.99, 0.01), event_id="a2")],
    )
    model = _isolated_home / "endpoints" / "ep-a" / "model"
    model.mkdir(parents=True)
    metrics_file(model / "metrics.json", expected_review_rate=0.1, threshold=0.93, n_test=200)
    out = tmp_path / "o"
    assert monitor_cli(str(root), "-o", str(out)) == EXIT_OK
    assert "review rate 50.0% (1 below 0.93; the model expected 10.0%)" in capsys.readouterr().out
    assert str(model / "metrics.json") in summary(out)


def test_without_metrics_the_report_says_how_to_get_them(
    captures: Path, tmp_path: Path, monitor_cli: Cli
) -> None:
    assert monitor_cli(str(captures), "-o", str(tmp_path / "o")) == EXIT_OK
    assert "not known: give --model-metrics" in summary(tmp_path / "o")


def test_expected_from_metrics_reads_the_rate_or_coverage() -> None:
    rate = expected_from_metrics({"expected_review_rate": 0.05, "threshold": 0.9}, "m")
    assert rate is not None and (rate.rate, rate.threshold) == (0.05, 0.9)
    fallback = expected_from_metrics({"coverage": 0.92, "threshold": 0.93}, "m")
    assert fallback is not None and abs(fallback.rate - 0.08) < 1e-12
    assert fallback.short(0.93) == "8.0%" and fallback.short(0.5) == "8.0% at 0.93"
    assert expected_from_metrics({"coverage": 0.92}, "m") is None  # no threshold: no meaning
    assert expected_from_metrics([0.1], "m") is None
    assert expected_from_metrics({"expected_review_rate": True, "threshold": 0.93}, "m") is None
