"""The endpoint's ``AWS/SageMaker`` ``Invocations`` metric, published to CloudWatch off the request
path, as a real endpoint publishes it (so the idle-endpoint guard works against the twin too).

The request path only increments a counter per endpoint, variant and minute (``count``). A
background thread (``start``) sends what was counted every ``flush_interval`` seconds with one
``PutMetricData`` call: per endpoint, variant and minute one aggregated datum
(``StatisticValues``: ``Sum`` = ``SampleCount`` = the requests, ``Minimum`` = ``Maximum`` = 1),
dimensions ``EndpointName`` and ``VariantName``, timestamped at the start of the minute, which
CloudWatch adds up like SageMaker's own one-minute datapoints. A failed call keeps the counts
for the next round (at most ``max_pending`` minute buckets; older ones are dropped and counted)
and is logged; a request never waits for or fails because of it. ``close`` sends what is left.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("scones.metrics")

NAMESPACE = "AWS/SageMaker"
METRIC = "Invocations"
MAX_DATUMS_PER_CALL = 1000  # PutMetricData's limit on MetricData items

Key = tuple[str, str, int]  # endpoint, variant, minute (epoch seconds // 60)


class MetricPutter(Protocol):
    """The one method of a boto3 CloudWatch client that the publisher uses."""

    def put_metric_data(self, **kwargs: Any) -> Any: ...


def metric_datum(endpoint: str, variant: str, minute: int, count: int) -> dict[str, Any]:
    """One ``PutMetricData`` item: ``count`` invocations of a variant in one minute."""
    return {
        "MetricName": METRIC,
        "Dimensions": [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        "Timestamp": datetime.fromtimestamp(minute * 60, UTC),
        "StatisticValues": {"SampleCount": count, "Sum": count, "Minimum": 1, "Maximum": 1},
        "Unit": "None",
    }


class InvocationMetrics:
    """Counts invocations per endpoint, variant and minute; publishes them from one thread."""

    def __init__(
        self,
        client_factory: Callable[[], MetricPutter],
        *,
        flush_interval: float = 5.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self._client_factory = client_factory
        self._client: MetricPutter | None = None
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._counts: dict[Key, int] = {}
        self._thread: threading.Thread | None = None
        self.published = 0  # invocations sent
        self.dropped = 0  # minute buckets given up when too many were waiting
        self.failed_puts = 0

    def count(self, endpoint: str, variant: str) -> None:
        """Count one invocation now (the request path: a dict update under a lock)."""
        key = (endpoint, variant, int(self._clock()) // 60)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    @property
    def pending(self) -> int:
        """Invocations counted and not yet published."""
        with self._lock:
            return sum(self._counts.values())

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
            self._thread.start()

    def flush(self) -> bool:
        """Publish everything counted so far; True when nothing is left waiting."""
        with self._flush_lock:
            with self._lock:
                counts, self._counts = self._counts, {}
            if not counts:
                return True
            failed = self._publish(counts)
            if failed:
                self._keep(failed)
            return not failed

    def _publish(self, counts: dict[Key, int]) -> dict[Key, int]:
        """Send ``counts``; return those that could not be sent."""
        items = sorted(counts.items(), key=lambda item: item[0][2])
        for start in range(0, len(items), MAX_DATUMS_PER_CALL):
            chunk = items[start : start + MAX_DATUMS_PER_CALL]
            try:
                if self._client is None:
                    self._client = self._client_factory()
                self._client.put_metric_data(
                    Namespace=NAMESPACE,
                    MetricData=[metric_datum(e, v, m, n) for (e, v, m), n in chunk],
                )
            except Exception as exc:  # CloudWatch down or refusing: keep and retry later
                self.failed_puts += 1
                log.warning(
                    "metrics publish failed, will retry",
                    extra={"datums": len(items) - start, "error": str(exc)},
                )
                return dict(items[start:])
            self.published += sum(n for _, n in chunk)
        return {}

    def _keep(self, failed: dict[Key, int]) -> None:
        """Put unsent counts back, keeping at most ``max_pending`` buckets (the newest)."""
        with self._lock:
            for key, n in failed.items():
                self._counts[key] = self._counts.get(key, 0) + n
            excess = len(self._counts) - self.max_pending
            if excess > 0:
                for key in sorted(self._counts, key=lambda k: k[2])[:excess]:
                    del self._counts[key]
                self.dropped += excess
                log.warning("metrics buckets dropped", extra={"dropped_total": self.dropped})

    def _run(self) -> None:
        backoff = self.flush_interval
        while not self._stop.wait(backoff):
            ok = self.flush()
            backoff = self.flush_interval if ok else min(backoff * 2, 60.0)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the thread and publish what is left (one try); True when all was sent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.flush()


def cloudwatch_client() -> MetricPutter:
    """A CloudWatch client for the twin: ``AWS_ENDPOINT_URL_CLOUDWATCH``, else the moto server."""
    import os

    import boto3  # deferred: only the metrics thread needs it
    from botocore.config import Config

    from scones.settings import Settings

    url = os.environ.get("AWS_ENDPOINT_URL_CLOUDWATCH") or Settings.from_env().moto_url
    # short timeouts, no botocore retries: the publisher retries on its next round
    config = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 1})
    client: MetricPutter = boto3.session.Session().client(
        "cloudwatch", endpoint_url=url, config=config
    )
    return client
