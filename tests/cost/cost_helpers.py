"""Helpers for the ``scones cost`` tests: hand-written execution histories, the workflow's functions as
the template declares them, and a price table with round numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scones.cost.pricing import PriceTable
from scones.cost.usage import FunctionInfo

HISTORIES = Path(__file__).parent / "histories"

#: As template.yaml declares them (Globals: arm64, 256 MB; FilterInferences 128 MB).
FUNCTIONS = {
    "SerializeImageFunction": FunctionInfo(
        "SerializeImageFunction", "scones-SerializeImage", 256, "arm64", False
    ),
    "ClassifyImageFunction": FunctionInfo(
        "ClassifyImageFunction", "scones-ClassifyImage", 256, "arm64", True
    ),
    "FilterInferencesFunction": FunctionInfo(
        "FilterInferencesFunction", "scones-FilterInferences", 128, "arm64", False
    ),
}


def history(name: str) -> list[dict[str, Any]]:
    """One hand-written GetExecutionHistory ``events`` list (tests/cost/histories/NAME.json)."""
    return list(json.loads((HISTORIES / f"{name}.json").read_text(encoding="utf-8")))


def price(usd: float) -> dict[str, Any]:
    return {"usd": usd, "unit": "test", "source": "tests", "read": "2026-11-28"}


ROUND_PRICES = {
    "stepfunctions.standard.transition": 0.001,
    "stepfunctions.express.request": 0.01,
    "stepfunctions.express.gb_second": 0.1,
    "lambda.request": 0.001,
    "lambda.gb_second.arm64": 0.01,
    "lambda.gb_second.x86_64": 0.02,
    "sagemaker.hosting.instance_hour.ml.big": 1.0,
    "sagemaker.hosting.instance_hour.ml.small": 0.5,
    "sagemaker.training.instance_hour.ml.big": 3.6,
    "sagemaker.hosting.data_gb": 1.0,
    "sagemaker.serverless.gb_second": 0.5,
    "s3.put_request": 0.001,
    "s3.get_request": 0.0001,
    "s3.storage_gb_month": 1.0,
    "logs.ingestion_gb": 1.0,
    "logs.storage_gb_month": 1.0,
}


@pytest.fixture
def round_prices() -> PriceTable:
    """A price table with round numbers, for arithmetic checked by hand."""
    return PriceTable(
        region="test-1",
        currency="USD",
        read="2026-11-28",
        where="tests",
        prices={key: price(usd) for key, usd in ROUND_PRICES.items()},
    )
