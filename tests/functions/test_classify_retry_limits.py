"""ClassifyImageFunction's retry plan and client at their limits: the jittered pauses, a pause
counted against the next attempt's time, shorter reads when time is short, the client's
timeouts and attempts, and the log fields operations rely on (what ``make mutation`` found
untested; docs/testing.md). Simulated time and in-process fake clients: no network.
"""

from __future__ import annotations

import base64
import io
import logging
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber
from limits_helpers import ENDPOINT, PNG_MAGIC, answer

from scones.twin.lambda_runtime import LambdaContext

# ------------------------------------------------------------------------------ the retry plan


@pytest.mark.parametrize(
    ("attempt", "jitter", "pause"),
    [(2, 1.0, 0.5), (3, 1.0, 1.0), (4, 1.0, 2.0), (5, 1.0, 2.0), (3, 0.5, 0.5), (2, 0.0, 0.0)],
)
def test_backoff(classify: ModuleType, attempt: int, jitter: float, pause: float) -> None:
    assert classify.backoff_s(attempt, jitter) == pause


class Clock:
    """Simulated time for ``CallBudget``; failures cost ``cost_s`` each."""

    def __init__(self, timeout_s: float, cost_s: float = 0.0) -> None:
        self.now, self.timeout_s, self.cost_s = 0.0, timeout_s, cost_s
        self.pauses: list[float] = []
        self.reads: list[int] = []

    def remaining_s(self) -> float:
        return self.timeout_s - self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def client(self, answers: list[Exception | bytes]) -> Any:
        clock = self

        class Client:
            def invoke_endpoint(self, **_: Any) -> Any:
                clock.now += clock.cost_s
                result = answers.pop(0)
                if isinstance(result, Exception):
                    raise result
                return {"Body": io.BytesIO(result)}

        def client_for(read_s: int) -> Any:
            clock.reads.append(read_s)
            return Client()

        return client_for


def throttled() -> Exception:
    from botocore.exceptions import ClientError

    error = {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}
    return ClientError(error, "InvokeEndpoint")  # type: ignore[arg-type]


def test_retries_pause_with_jittered_backoff_and_log_each_failure(
    classify: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(80)
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 0.5)
    client_for = clock.client([throttled(), throttled(), b"[0.1, 0.9]"])
    with caplog.at_level(logging.WARNING):
        assert classify.invoke_within(budget, ENDPOINT, PNG_MAGIC, client_for) == b"[0.1, 0.9]"
    assert clock.pauses == [0.25, 0.5]  # 0.5 s and 1 s, times the jitter; none before the first
    assert clock.reads == [65, 65, 65]
    failures = [r for r in caplog.records if r.getMessage() == "endpoint attempt failed"]
    assert [(r.attempt, r.read_timeout_s) for r in failures] == [(1, 65), (2, 65)]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING for r in failures)
    assert failures[0].error == f"endpoint {ENDPOINT!r} failed: ThrottlingException: slow down"  # type: ignore[attr-defined]


def test_a_permanent_error_is_not_retried(classify: ModuleType) -> None:
    from botocore.exceptions import ClientError

    clock = Clock(80)
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 0.5)
    error = ClientError({"Error": {"Code": "ValidationError", "Message": "bad"}}, "InvokeEndpoint")  # type: ignore[arg-type]
    with pytest.raises(classify.EndpointError) as caught:
        classify.invoke_within(budget, ENDPOINT, PNG_MAGIC, clock.client([error, b"[1, 0]"]))
    assert type(caught.value) is classify.EndpointError
    assert clock.reads == [65] and clock.pauses == []


def test_all_attempts_failing_name_the_last_error_and_the_count(classify: ModuleType) -> None:
    clock = Clock(80)
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 1.0)
    client_for = clock.client([throttled(), throttled(), throttled(), b"[1, 0]"])
    with pytest.raises(classify.EndpointUnavailableError) as caught:
        classify.invoke_within(budget, ENDPOINT, PNG_MAGIC, client_for)
    assert str(caught.value) == (
        f"endpoint {ENDPOINT!r} failed: ThrottlingException: slow down "
        "(3 attempt(s) in this invocation)"
    )
    assert clock.pauses == [0.5, 1.0] and len(clock.reads) == classify.MAX_ATTEMPTS == 3


def test_the_pause_counts_against_the_next_attempts_time(classify: ModuleType) -> None:
    """20.2 s left would allow a 10 s read, but not once the 0.5 s pause is taken off."""
    clock = Clock(20.2 + 1.0, cost_s=1.0)  # the first attempt costs 1 s: 20.2 s left after it
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 1.0)
    with pytest.raises(classify.EndpointUnavailableError, match=r"\(1 attempt\(s\)"):
        classify.invoke_within(budget, ENDPOINT, PNG_MAGIC, clock.client([throttled()]))
    assert clock.reads == [10] and clock.pauses == []


def test_the_second_attempt_gets_a_shorter_read_when_time_is_short(classify: ModuleType) -> None:
    clock = Clock(40, cost_s=10.0)  # 40 s: a 30 s read; after 10 s and a 0.5 s pause, 20 s
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 1.0)
    client_for = clock.client([throttled(), b"[0.5, 0.5]"])
    assert classify.invoke_within(budget, ENDPOINT, PNG_MAGIC, client_for) == b"[0.5, 0.5]"
    assert clock.reads == [30, 15] and clock.pauses == [0.5]


def test_too_little_time_for_one_attempt_says_what_to_set(classify: ModuleType) -> None:
    clock = Clock(19.94)
    budget = classify.CallBudget(clock.remaining_s, sleep=clock.sleep, jitter=lambda: 0.5)
    with pytest.raises(classify.ConfigurationError) as caught:
        classify.invoke_within(budget, ENDPOINT, PNG_MAGIC, clock.client([]))
    assert str(caught.value) == (
        "only 19.9 s of the function's time left, less than one call to the endpoint needs: "
        "set the function's Timeout to at least 75 s"
    )


def test_the_budget_reads_the_context_in_seconds(classify: ModuleType) -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 12_345

    assert classify.CallBudget.from_context(Context()).remaining_s() == 12.345
    budget = classify.CallBudget.from_context(object())  # no such method: the template's 80 s
    assert 79.0 < budget.remaining_s() <= 80.0


# ------------------------------------------------------------------------------ the client


def test_the_clients_settings(classify: ModuleType, aws_env: None) -> None:
    client = classify.runtime_client()
    assert client.meta.service_model.service_name == "sagemaker-runtime"
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 65)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert client.meta.region_name == "us-east-1"  # the standard settings (AWS_REGION)
    short = classify.runtime_client(15)
    assert short.meta.config.read_timeout == 15 and short.meta.config.connect_timeout == 5
    assert short.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert classify.runtime_client(15) is short and classify.runtime_client(65) is client
    assert set(classify._clients) == {"sagemaker-runtime:65", "sagemaker-runtime:15"}


def test_the_handler_uses_the_full_read_timeout_client(
    classify: ModuleType, aws_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    image = PNG_MAGIC + b"rest"
    event = {
        "s3_bucket": "bkt",
        "s3_key": "incoming/a.png",
        "image_data": base64.b64encode(image).decode(),
        "endpoint_name": ENDPOINT,
        "extra": [1],
    }
    context = LambdaContext(function_name="scones-ClassifyImage", timeout_s=80)
    with Stubber(classify.runtime_client(65)) as stub, caplog.at_level(logging.INFO):
        answer(stub, b"[0.125, 0.875]", image)
        result = classify.lambda_handler(event, context)
    assert result == {**event, "inferences": [0.125, 0.875], "label": 1, "confidence": 0.875}
    (record,) = [r for r in caplog.records if r.getMessage() == "classified image"]
    assert record.levelno == logging.INFO
    fields = ("s3_bucket", "s3_key", "endpoint_name", "label", "confidence")
    assert {k: getattr(record, k, "missing") for k in fields} == {
        "s3_bucket": "bkt",
        "s3_key": "incoming/a.png",
        "endpoint_name": ENDPOINT,
        "label": 1,
        "confidence": 0.875,
    }
