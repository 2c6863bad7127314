"""Counting from execution histories against hand counts (tests/cost/histories/*.json).

succeeded: ReadInput, CheckInput, AddSettings, SerializeImage, ClassifyImage, FilterInferences
  = 6 entries, no retry -> 6 transitions; 3 invocations billed 122, 46 (45.5 up), 4 (3.1 up) ms.
retried: the same 6 entries; SerializeImage once refused by Lambda before starting
  (Lambda.ServiceException, retried: 1 retry, no invocation), ClassifyImage twice
  EndpointUnavailableError (2 retries) -> 9 transitions; 5 invocations: 100, 30+20+40, 5 ms.
caught: an S3 event (ReadInput, CheckS3Event, FromS3Event, AddSettings), the three tasks (the
  first as a plain function ARN: LambdaFunction* events), FilterInferences' LowConfidenceError
  caught into RecordForHumanReview, then the Fail state LowConfidence = 9 entries, no retry
  -> 9 transitions; 3 invocations: 61 (60.1 up), 50, 7 ms.
"""

from __future__ import annotations

from cost_helpers import FUNCTIONS, history

from scones.cost.history import count_execution
from scones.cost.usage import Usage, add_execution, match_function


def test_a_succeeded_execution_counts_six_transitions_and_three_invocations() -> None:
    count = count_execution(history("succeeded"))
    assert (count.state_entries, count.retries, count.state_transitions) == (6, 0, 6)
    assert count.status == "SUCCEEDED" and count.duration_ms == 240
    invoked = [(a.state, a.billed_ms) for a in count.attempts if a.invoked]
    assert invoked == [("SerializeImage", 122), ("ClassifyImage", 46), ("FilterInferences", 4)]
    assert count.error_log_bytes == 0


def test_retries_are_transitions_and_only_started_attempts_are_invocations() -> None:
    count = count_execution(history("retried"))
    assert (count.state_entries, count.retries, count.state_transitions) == (6, 3, 9)
    assert len(count.attempts) == 6  # 2 SerializeImage + 3 ClassifyImage + 1 FilterInferences
    invoked = [(a.state, a.billed_ms) for a in count.attempts if a.invoked]
    assert invoked == [
        ("SerializeImage", 100),
        ("ClassifyImage", 30),
        ("ClassifyImage", 20),
        ("ClassifyImage", 40),
        ("FilterInferences", 5),
    ]
    refused = count.attempts[0]
    assert not refused.invoked and refused.error == "Lambda.ServiceException"
    assert refused.billed_ms == 0
    assert count.duration_ms == 7320


def test_a_caught_error_counts_the_catch_target_and_the_fail_state() -> None:
    count = count_execution(history("caught"))
    assert (count.state_entries, count.retries, count.state_transitions) == (9, 0, 9)
    assert count.status == "FAILED" and count.error == "LowConfidenceError"
    invoked = [(a.state, a.billed_ms, a.succeeded) for a in count.attempts if a.invoked]
    assert invoked == [
        ("SerializeImage", 61, True),
        ("ClassifyImage", 50, True),
        ("FilterInferences", 7, False),
    ]
    serialize = count.attempts[0]  # LambdaFunctionScheduled: the resource is the function ARN
    assert serialize.function == (
        "arn:aws:lambda:us-east-1:123456789012:function:scones-SerializeImage"
    )
    assert serialize.result["image_data"] == "iVBORw0KGgo="
    assert count.error_log_bytes > 0  # the TaskFailed and ExecutionFailed events


def test_events_in_any_order_count_the_same() -> None:
    events = history("retried")
    assert count_execution(list(reversed(events))).state_transitions == 9


def test_the_three_executions_add_up_per_function_and_for_the_endpoint() -> None:
    usage = Usage()
    for name in ("succeeded", "retried", "caught"):
        add_execution(usage, count_execution(history(name)), FUNCTIONS)
    assert usage.executions == 3
    assert (usage.state_entries, usage.retries, usage.state_transitions) == (21, 3, 24)
    assert usage.statuses == {"SUCCEEDED": 2, "FAILED": 1}
    per_function = {lid: (f.invocations, f.billed_ms) for lid, f in sorted(usage.functions.items())}
    assert per_function == {
        "ClassifyImageFunction": (5, 46 + 90 + 50),
        "FilterInferencesFunction": (3, 4 + 5 + 7),
        "SerializeImageFunction": (3, 122 + 100 + 61),
    }
    assert usage.lambda_invocations == 11
    # every ClassifyImage invocation calls the endpoint with the 8-byte image; the answers:
    # "[0.97, 0.03]" (12 bytes), "[0.02, 0.98]" (12), "[0.6, 0.4]" (10)
    assert (usage.endpoint_invocations, usage.endpoint_bytes_in) == (5, 5 * 8)
    assert usage.endpoint_bytes_out == 12 + 12 + 10
    assert (usage.s3_get_requests, usage.images_read, usage.image_bytes) == (3, 3, 24)
    assert sorted(ms for ms, _ in usage.runs) == [190, 240, 7320]
    assert usage.unknown_functions == {}
    gb_s = usage.functions["FilterInferencesFunction"].gb_seconds
    assert abs(gb_s - 128 / 1024 * 16 / 1000) < 1e-12


def test_functions_are_matched_by_name_arn_qualifier_or_stem() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:scones-ClassifyImage"
    for reference in (arn, f"{arn}:$LATEST", "scones-ClassifyImage", "prod-ClassifyImage"):
        found = match_function(reference, FUNCTIONS)
        assert found is not None and found.logical_id == "ClassifyImageFunction", reference
    assert match_function("something-else", FUNCTIONS) is None


def test_a_function_missing_from_the_template_is_reported_not_priced() -> None:
    usage = Usage()
    add_execution(usage, count_execution(history("succeeded")), {})
    assert usage.functions == {}
    assert usage.unknown_functions == {
        "scones-SerializeImage": 1,
        "scones-ClassifyImage": 1,
        "scones-FilterInferences": 1,
    }
