"""The shipped price table: every price the default options need, each with its source and date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scones.cost.cli import DEFAULT_INSTANCES, TRAINING_INSTANCE
from scones.cost.pricing import PriceTableError, load_prices


def test_the_shipped_table_prices_everything_the_default_options_use() -> None:
    table = load_prices()
    assert table.region == "us-east-1" and table.read == "2026-11-28"
    needed = [
        "stepfunctions.standard.transition",
        "stepfunctions.express.request",
        "stepfunctions.express.gb_second",
        "lambda.request",
        "lambda.gb_second.arm64",
        "lambda.gb_second.x86_64",
        "sagemaker.hosting.data_gb",
        "sagemaker.serverless.gb_second",
        "s3.put_request",
        "s3.get_request",
        "s3.storage_gb_month",
        "logs.ingestion_gb",
        f"sagemaker.training.instance_hour.{TRAINING_INSTANCE}",
        *(f"sagemaker.hosting.instance_hour.{t}" for t in DEFAULT_INSTANCES),
    ]
    assert [key for key in needed if not table.has(key)] == []
    assert table.usd("stepfunctions.standard.transition") == pytest.approx(0.025 / 1000)


def test_every_price_says_where_and_when_it_was_read() -> None:
    for entry in load_prices().sources():
        assert entry["source"] and entry["read"] == "2026-11-28" and entry["basis"], entry
        assert entry["source"].startswith("https://") or "unverified" in entry["source"], entry
    unverified = {
        e["key"] for e in load_prices().sources() if e["source"] == "issue text, unverified"
    }
    assert "sagemaker.hosting.instance_hour.ml.m5.large" in unverified


def test_a_missing_price_names_the_key_and_the_table() -> None:
    with pytest.raises(PriceTableError, match="ml.p5.48xlarge.*us-east-1.json"):
        load_prices().instance_hour("hosting", "ml.p5.48xlarge")


def test_bad_tables_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="cannot read"):
        load_prices(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(PriceTableError, match="not JSON"):
        load_prices(bad)
    bad.write_text(json.dumps({"prices": {"s3.get_request": {"usd": 1}}}), encoding="utf-8")
    with pytest.raises(PriceTableError, match="lacks unit, source, read"):
        load_prices(bad)
    with pytest.raises(PriceTableError, match="only us-east-1"):
        load_prices(region="eu-west-1")


def test_another_region_comes_from_its_own_file(tmp_path: Path) -> None:
    table = {
        "region": "eu-west-1",
        "read": "2026-11-28",
        "prices": {
            "s3.get_request": {"usd": 4e-7, "unit": "request", "source": "mine", "read": "today"}
        },
    }
    path = tmp_path / "eu-west-1.json"
    path.write_text(json.dumps(table), encoding="utf-8")
    loaded = load_prices(path)
    assert loaded.region == "eu-west-1" and loaded.usd("s3.get_request") == 4e-7
