"""The price table: ``scones/cost/prices/<region>.json`` (us-east-1 ships) or ``--prices FILE``.

A table is ``{"region", "currency", "read", "prices": {key: {"usd", "unit", "source", "read",
"basis"}}}``; every price says where it was read and when. Keys used by ``scones cost``:
``stepfunctions.standard.transition``, ``stepfunctions.express.request``,
``stepfunctions.express.gb_second``, ``lambda.request``, ``lambda.gb_second.<arch>``,
``sagemaker.hosting.instance_hour.<type>``, ``sagemaker.training.instance_hour.<type>``,
``sagemaker.hosting.data_gb``, ``sagemaker.serverless.gb_second``, ``s3.put_request``,
``s3.get_request``, ``s3.storage_gb_month``, ``logs.ingestion_gb``, ``logs.storage_gb_month``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from scones.errors import CommandError

DEFAULT_REGION = "us-east-1"
_FIELDS = ("usd", "unit", "source", "read")


class PriceTableError(CommandError):
    """The price table is missing, malformed, or lacks a price that is needed."""


@dataclass(frozen=True)
class PriceTable:
    """Prices by key, with where each was read."""

    region: str
    currency: str
    read: str
    where: str  # the file it came from
    prices: dict[str, dict[str, Any]]

    def usd(self, key: str) -> float:
        """The price of ``key`` in dollars, or ``PriceTableError`` naming the table."""
        try:
            return float(self.prices[key]["usd"])
        except KeyError:
            raise PriceTableError(
                f"no price {key!r} in {self.where}: add it (with its source and date) or pass"
                " --prices FILE"
            ) from None

    def has(self, key: str) -> bool:
        """Whether the table prices ``key``."""
        return key in self.prices

    def instance_hour(self, use: str, instance_type: str) -> float:
        """Price of one instance-hour of ``instance_type`` for ``use`` (hosting, training)."""
        return self.usd(f"sagemaker.{use}.instance_hour.{instance_type}")

    def sources(self) -> list[dict[str, Any]]:
        """Every price with its source, for reports."""
        return [{"key": key, **value} for key, value in sorted(self.prices.items())]


def _check(data: Any, where: str) -> PriceTable:
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        raise PriceTableError(f"{where}: not a price table (needs a 'prices' object)")
    for key, value in data["prices"].items():
        missing = [f for f in _FIELDS if not isinstance(value, dict) or f not in value]
        if missing:
            raise PriceTableError(f"{where}: price {key!r} lacks {', '.join(missing)}")
        if not isinstance(value["usd"], int | float) or value["usd"] < 0:
            raise PriceTableError(f"{where}: price {key!r} is not a number >= 0")
    return PriceTable(
        region=str(data.get("region", "?")),
        currency=str(data.get("currency", "USD")),
        read=str(data.get("read", "?")),
        where=where,
        prices=dict(data["prices"]),
    )


def load_prices(path: Path | None = None, region: str = DEFAULT_REGION) -> PriceTable:
    """The table in ``path``, else the one shipped for ``region``."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PriceTableError(f"cannot read {path}: {exc.strerror or exc}") from None
        where = str(path)
    else:
        shipped = resources.files("scones.cost.prices").joinpath(f"{region}.json")
        if not shipped.is_file():
            raise PriceTableError(
                f"no price table ships for {region} (only {DEFAULT_REGION}): pass --prices FILE"
            )
        text, where = shipped.read_text(encoding="utf-8"), f"scones/cost/prices/{region}.json"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PriceTableError(f"{where}: not JSON ({exc})") from None
    return _check(data, where)
