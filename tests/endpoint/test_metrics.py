"""The endpoint's Invocations metric: counted on the request path, published from a thread.

Unit tests with a fake CloudWatch client and clock; one round trip through moto's CloudWatch
read back the way the idle-endpoint guard reads it; the app counting what it serves.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_endpoint_app import invoke, model_tar

from scones.endpoint import app as es
from scones.endpoint.metrics import InvocationMetrics, metric_datum
from scones.endpoint.registry import register_endpoint
from scones.settings import Settings

T0 = 1_800_000_000.0  # a whole minute (30,000,000 minutes since the epoch)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Putter:
    """A CloudWatch client that records calls, fails while ``failing``, or blocks until let go."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failing = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def put_metric_data(self, **kwargs: Any) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.failing:
            raise ConnectionError("CloudWatch is down")
        self.calls.append(kwargs)


def sums(putter: Putter) -> dict[tuple[str, str, datetime], float]:
    """``(endpoint, variant, minute) -> Sum`` over every datum sent."""
    found: dict[tuple[str, str, datetime], float] = {}
    for call in putter.calls:
        assert call["Namespace"] == "AWS/SageMaker"
        for datum in call["MetricData"]:
            assert datum["MetricName"] == "Invocations"
            dims = {d["Name"]: d["Value"] for d in datum["Dimensions"]}
            key = (dims["EndpointName"], dims["VariantName"], datum["Timestamp"])
            found[key] = found.get(key, 0) + datum["StatisticValues"]["Sum"]
    return found


def metrics(putter: Putter, clock: Clock, **kwargs: Any) -> InvocationMetrics:
    return InvocationMetrics(lambda: putter, clock=clock, **kwargs)


def minute(offset: int = 0) -> datetime:
    return datetime.fromtimestamp(T0, UTC) + timedelta(minutes=offset)


def test_counts_per_endpoint_variant_and_minute() -> None:
    putter, clock = Putter(), Clock()
    m = metrics(putter, clock)
    for _ in range(3):
        m.count("ep", "AllTraffic")
    m.count("other", "AllTraffic")
    clock.now += 59
    m.count("ep", "AllTraffic")
    clock.now += 1  # the next minute
    m.count("ep", "AllTraffic")
    assert m.pending == 6
    assert m.flush() is True
    assert len(putter.calls) == 1  # one PutMetricData for everything waiting
    assert sums(putter) == {
        ("ep", "AllTraffic", minute(0)): 4,
        ("other", "AllTraffic", minute(0)): 1,
        ("ep", "AllTraffic", minute(1)): 1,
    }
    assert m.pending == 0 and m.published == 6
    assert m.flush() is True and len(putter.calls) == 1  # nothing new: no call


def test_a_datum_is_what_sagemaker_publishes() -> None:
    datum = metric_datum("ep", "AllTraffic", int(T0) // 60, 7)
    assert datum["Timestamp"] == minute(0)
    assert datum["StatisticValues"] == {"SampleCount": 7, "Sum": 7, "Minimum": 1, "Maximum": 1}
    assert datum["Dimensions"] == [
        {"Name": "EndpointName", "Value": "ep"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]


def test_failures_keep_the_counts_for_the_next_round(caplog: pytest.LogCaptureFixture) -> None:
    putter, clock = Putter(), Clock()
    m = metrics(putter, clock)
    m.count("ep", "AllTraffic")
    putter.failing = True
    assert m.flush() is False
    assert m.failed_puts == 1 and m.pending == 1
    assert "metrics publish failed" in caplog.text
    m.count("ep", "AllTraffic")  # counting goes on while CloudWatch is down
    putter.failing = False
    assert m.flush() is True
    assert sums(putter) == {("ep", "AllTraffic", minute(0)): 2}


def test_too_many_waiting_minutes_drop_the_oldest() -> None:
    putter, clock = Putter(), Clock()
    m = metrics(putter, clock, max_pending=2)
    putter.failing = True
    for _ in range(3):
        m.count("ep", "AllTraffic")
        clock.now += 60
    assert m.flush() is False
    assert m.dropped == 1 and m.pending == 2
    putter.failing = False
    assert m.flush() is True
    assert set(sums(putter)) == {("ep", "AllTraffic", minute(1)), ("ep", "AllTraffic", minute(2))}


def test_large_backlogs_go_in_calls_of_at_most_1000_datums() -> None:
    putter, clock = Putter(), Clock()
    m = metrics(putter, clock)
    for i in range(1500):
        m.count(f"ep-{i}", "AllTraffic")
    assert m.flush() is True
    assert [len(c["MetricData"]) for c in putter.calls] == [1000, 500]


def test_counting_never_waits_for_a_slow_publish() -> None:
    putter, clock = Putter(), Clock()
    putter.gate = threading.Event()
    m = metrics(putter, clock)
    m.count("ep", "AllTraffic")
    flushing = threading.Thread(target=m.flush)
    flushing.start()
    assert putter.entered.wait(10)  # the publish is stuck inside PutMetricData
    m.count("ep", "AllTraffic")  # and this returns anyway
    assert m.pending == 1
    putter.gate.set()
    flushing.join(10)
    assert m.flush() is True
    assert sums(putter) == {("ep", "AllTraffic", minute(0)): 2}


def test_the_thread_publishes_and_close_sends_the_rest() -> None:
    putter, clock = Putter(), Clock()
    m = metrics(putter, clock, flush_interval=0.01)
    m.start()
    m.count("ep", "AllTraffic")
    deadline = datetime.now() + timedelta(seconds=10)
    while not putter.calls and datetime.now() < deadline:
        threading.Event().wait(0.01)
    assert putter.calls, "the background thread published nothing"
    m.count("ep", "AllTraffic")
    assert m.close() is True
    assert sums(putter) == {("ep", "AllTraffic", minute(0)): 2}


def test_published_to_moto_and_read_back_as_the_guard_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through a real boto3 CloudWatch client into moto; GetMetricStatistics, hourly Sum."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_CLOUDWATCH", raising=False)
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch")
        m = InvocationMetrics(lambda: cloudwatch)
        for _ in range(5):
            m.count("scones-image-classifier", "AllTraffic")
        m.count("another", "AllTraffic")
        assert m.flush() is True
        now = datetime.now(UTC)
        answer = cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=[
                {"Name": "EndpointName", "Value": "scones-image-classifier"},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum"],
        )
        assert sum(p["Sum"] for p in answer["Datapoints"]) == 5


class Counter:
    def __init__(self) -> None:
        self.counted: list[tuple[str, str]] = []
        self.started = self.closed = False

    def count(self, endpoint: str, variant: str) -> None:
        self.counted.append((endpoint, variant))

    def start(self) -> None:
        self.started = True

    def close(self, timeout: float = 5.0) -> bool:
        self.closed = True
        return True


def test_the_app_counts_each_invocation_of_a_known_endpoint(
    settings: Settings, tmp_path: Path
) -> None:
    register_endpoint(settings, "ep", model_tar(tmp_path, "2"), capture_s3_uri=None)
    counter = Counter()
    app = es.EndpointServer(settings, None, counter)  # type: ignore[arg-type]
    assert invoke(app, b"1", name="ep")[0] == 200
    assert invoke(app, b"x", name="ep")[0] == 424  # a model error is still an invocation
    assert invoke(app, b"1", name="nope")[0] == 400  # an unknown endpoint is not
    assert counter.counted == [("ep", "AllTraffic"), ("ep", "AllTraffic")]


def test_the_app_starts_and_closes_the_publisher_with_its_lifespan(settings: Settings) -> None:
    counter = Counter()
    app = es.EndpointServer(settings, None, counter)  # type: ignore[arg-type]
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert counter.started and counter.closed
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_create_app_publishes_at_the_configured_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCONES_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SCONES_METRICS_FLUSH_SECONDS", "0.5")
    app = es.create_app()
    assert app.metrics is not None and app.metrics.flush_interval == 0.5


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")
