"""The model's own expectation of the review rate, to show beside the observed one.

``scones train`` writes ``metrics.json`` into the model (``model.tar.gz`` and the model folder):
``expected_review_rate`` is the share of its validation images whose confidence is below the
threshold. Older models have only ``coverage`` (the share at or above ``threshold``), which
gives the same number as ``1 - coverage``. The file comes from ``--model-metrics`` (a
``metrics.json``, a model folder or a ``model.tar.gz``) or, for an endpoint of the offline twin,
from the model it serves (``$SCONES_HOME/endpoints/<endpoint>/model/metrics.json``).
"""

from __future__ import annotations

import json
import logging
import math
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scones.monitor.errors import MonitorUsageError

log = logging.getLogger(__name__)

METRICS = "metrics.json"
MAX_METRICS_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ExpectedRate:
    """The review rate the model expects, the threshold it was measured at, and where from."""

    rate: float
    threshold: float
    source: str
    images: int | None = None  # validation images it was measured on

    def short(self, threshold: float) -> str:
        """``8.0%``, with ``at 0.9`` added when measured at another threshold than ``threshold``."""
        same = abs(self.threshold - threshold) < 1e-9
        return f"{self.rate:.1%}" + ("" if same else f" at {self.threshold:g}")

    def describe(self) -> str:
        """One line for the report: ``8.0% at 0.93 on 2,000 validation images (where)``."""
        images = f" on {self.images:,} validation images" if self.images else ""
        return f"{self.rate:.1%} at {self.threshold:g}{images} ({self.source})"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def expected_from_metrics(metrics: Any, source: str) -> ExpectedRate | None:
    """The expected review rate in a parsed ``metrics.json``, or None when it holds none."""
    if not isinstance(metrics, dict):
        return None
    threshold = _number(metrics.get("threshold"))
    rate = _number(metrics.get("expected_review_rate"))
    if rate is None:
        coverage = _number(metrics.get("coverage"))
        rate = None if coverage is None else 1.0 - coverage
    if rate is None or not 0.0 <= rate <= 1.0 or threshold is None:
        return None
    images = metrics.get("n_test")
    return ExpectedRate(rate, threshold, source, images if isinstance(images, int) else None)


def _read_bytes(path: Path) -> bytes:
    """``metrics.json``'s bytes from a file, a model folder or a model archive."""
    from scones.archive import UnsafeArchiveError, read_member

    if path.is_dir():
        path = path / METRICS
    if not path.is_file():
        raise MonitorUsageError(f"--model-metrics {path}: no such file")
    if not tarfile.is_tarfile(path):
        if path.stat().st_size > MAX_METRICS_BYTES:
            raise MonitorUsageError(f"--model-metrics {path}: over {MAX_METRICS_BYTES:,} bytes")
        return path.read_bytes()
    try:
        data = read_member(path, METRICS, MAX_METRICS_BYTES)
    except UnsafeArchiveError as exc:
        raise MonitorUsageError(f"--model-metrics {path}: unsafe archive ({exc})") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise MonitorUsageError(f"--model-metrics {path}: unreadable archive ({exc})") from None
    if data is None:
        raise MonitorUsageError(f"--model-metrics {path}: the archive has no {METRICS}")
    return data


def read_expected(path: Path) -> ExpectedRate:
    """The expected review rate of ``--model-metrics PATH``; ``MonitorUsageError`` if it has none."""
    raw = _read_bytes(path)
    try:
        metrics = json.loads(raw)
    except (ValueError, RecursionError):
        raise MonitorUsageError(f"--model-metrics {path}: {METRICS} is not valid JSON") from None
    expected = expected_from_metrics(metrics, str(path))
    if expected is None:
        raise MonitorUsageError(
            f"--model-metrics {path}: no expected_review_rate (or coverage and threshold) in it"
        )
    return expected


def expected_from_twin(endpoints_dir: Path, endpoint_names: set[str]) -> ExpectedRate | None:
    """The expected review rate of the model a local (offline twin) endpoint serves, when
    exactly one of ``endpoint_names`` has one; unreadable files are logged and skipped."""
    found: list[ExpectedRate] = []
    for name in sorted(n for n in endpoint_names if n):
        path = endpoints_dir / name / "model" / METRICS
        if not path.is_file() or path.stat().st_size > MAX_METRICS_BYTES:
            continue
        try:
            expected = expected_from_metrics(json.loads(path.read_bytes()), str(path))
        except (ValueError, RecursionError, OSError) as exc:
            log.warning(
                "ignoring unreadable model metrics", extra={"path": str(path), "error": str(exc)}
            )
            continue
        if expected is not None:
            found.append(expected)
    return found[0] if len(found) == 1 else None
