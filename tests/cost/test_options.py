"""The option arithmetic on simple numbers (prices in cost_helpers.ROUND_PRICES), checked by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scones.cost.options import (
    GIB,
    Endpoint,
    Option,
    PerImage,
    break_even,
    default_options,
    express_gb_seconds,
    price_option,
)
from scones.cost.pricing import PriceTable

USE = PerImage(
    transitions=8,
    lambdas=[(1, 100, 1024), (2, 500, 512)],
    express_gb_seconds=0.0125,
    endpoint_calls=1,
    endpoint_bytes=GIB * 0.001,
    inference_ms=200,
    s3_gets=1,
    s3_puts=2,
    stored_bytes=GIB * 0.01,
    error_log_bytes=GIB * 0.002,
)
REALTIME = Endpoint("realtime", "ml.big", count=2)
SERVERLESS = Endpoint("serverless", memory_mb=2048)
ASYNC = Endpoint("async", "ml.big", hours_per_day=2)


def test_standard_real_time_arm64(round_prices: PriceTable) -> None:
    priced = price_option(Option("STANDARD", "arm64", REALTIME), USE, round_prices)
    # 8 transitions x 0.001
    assert priced.components["workflow"] == pytest.approx(0.008)
    # 1 x (0.001 + 0.1 s x 1 GB x 0.01) + 2 x (0.001 + 0.5 s x 0.5 GB x 0.01)
    assert priced.components["lambda"] == pytest.approx(0.002 + 0.007)
    assert priced.components["endpoint"] == pytest.approx(0.001)  # 0.001 GB x $1
    # 2 PUT x 0.001 + 1 GET x 0.0001 + 0.01 GB-month x $1
    assert priced.components["s3"] == pytest.approx(0.0121)
    # 0.002 GB of ERROR-level logs: ingested ($1/GB) and kept a month ($1/GB-month)
    assert priced.components["logs"] == pytest.approx(0.004)
    assert priced.floor_usd == pytest.approx(2 * 1.0 * 730)
    assert priced.as_dict(1000)["per_1000_images_usd"] == pytest.approx(34.1)
    assert priced.monthly_usd(1000) == pytest.approx(1460 + 34.1)


def test_express_and_x86_change_only_their_lines(round_prices: PriceTable) -> None:
    express = price_option(Option("EXPRESS", "arm64", REALTIME), USE, round_prices)
    assert express.components["workflow"] == pytest.approx(0.01 + 0.0125 * 0.1)
    x86 = price_option(Option("STANDARD", "x86_64", REALTIME), USE, round_prices)
    assert x86.components["lambda"] == pytest.approx(0.003 + 0.012)
    assert x86.floor_usd == express.floor_usd == pytest.approx(1460)


def test_full_execution_logs_price_the_whole_history(round_prices: PriceTable) -> None:
    use = replace(USE, full_log_bytes=GIB * 0.05)
    full = price_option(Option("EXPRESS", "arm64", REALTIME, logs="full"), use, round_prices)
    assert full.components["logs"] == pytest.approx(0.05 * 2)
    assert any("ExecutionLogs=errors: $4.0000" in note for note in full.notes)
    errors = price_option(Option("EXPRESS", "arm64", REALTIME), use, round_prices)
    assert errors.components["logs"] == pytest.approx(0.004) and errors.notes == []


def test_serverless_has_no_floor_and_says_monitoring_needs_another_capture(
    round_prices: PriceTable,
) -> None:
    priced = price_option(Option("STANDARD", "arm64", SERVERLESS), USE, round_prices)
    # 1 call x 0.2 s x 2 GB x 0.5 + data 0.001
    assert priced.components["endpoint"] == pytest.approx(0.201)
    assert priced.floor_usd == 0
    assert any("Data Capture" in note for note in priced.notes)


def test_break_even_of_an_idle_instance_against_serverless(round_prices: PriceTable) -> None:
    realtime = price_option(Option("STANDARD", "arm64", REALTIME), USE, round_prices)
    serverless = price_option(Option("STANDARD", "arm64", SERVERLESS), USE, round_prices)
    # 1460 + 0.0341 N = 0.2341 N  ->  N = 7300
    assert break_even(realtime, serverless) == pytest.approx(7300, rel=1e-6)
    express = price_option(Option("EXPRESS", "arm64", REALTIME), USE, round_prices)
    assert break_even(realtime, express) is None  # same floor, Standard cheaper per image


def test_async_bills_its_window_then_the_extra_hours(round_prices: PriceTable) -> None:
    priced = price_option(Option("EXPRESS", "arm64", ASYNC), USE, round_prices)
    window = 2 * 730 / 24
    assert priced.floor_usd == pytest.approx(window)
    # each request: its input PUT to S3, the answer PUT, SageMaker's GET of the input
    assert priced.components["s3"] == pytest.approx(4 * 0.001 + 2 * 0.0001 + 0.01)
    per_image = 0.01125 + 0.009 + 0.004 + 0.001 + 0.0142
    assert priced.per_image_usd == pytest.approx(per_image)
    assert priced.monthly_usd(1_000_000) == pytest.approx(window + 1_000_000 * per_image)
    hours = 2_000_000 * 0.2 / 3600  # more than the window: the rest is billed by the hour
    assert priced.monthly_usd(2_000_000) == pytest.approx(
        window + 2_000_000 * per_image + (hours - window) * 1.0
    )


def test_express_duration_rounds_to_100_ms_and_memory_to_64_mb() -> None:
    # 240 ms -> 300 ms, 7,320 ms -> 7,400 ms; 50 MB + 1 KB -> one 64 MB chunk
    runs = [(240, 1000), (7320, 1000)]
    assert express_gb_seconds(runs, 0) == pytest.approx((0.0625 * 0.3 + 0.0625 * 7.4) / 2)
    # 50 MB + 20 MB of payload -> 128 MB
    assert express_gb_seconds([(100, 20_000_000)], 0) == pytest.approx(0.125 * 0.1)
    assert express_gb_seconds([], 0) == 0


def test_the_default_options_change_one_thing_at_a_time() -> None:
    names = [o.name for o in default_options("arm64", ["ml.m5.large", "ml.t2.medium"])]
    assert names == [
        "Standard, arm64, real-time 1 x ml.m5.large",
        "Express, arm64, real-time 1 x ml.m5.large",
        "Standard, x86_64, real-time 1 x ml.m5.large",
        "Express, arm64, real-time 1 x ml.t2.medium",
        "Standard, arm64, serverless 2048 MB",
        "Express, arm64, serverless 2048 MB",
        "Express, arm64, async ml.m5.large (1 h/day, else 0)",
    ]
    express = [o for o in default_options("arm64", ["ml.m5.large"]) if o.workflow == "EXPRESS"]
    assert {o.logs for o in express} == {"full"}  # template.yaml: ExecutionLogs=auto
