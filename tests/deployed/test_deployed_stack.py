"""The deployed tier: runs the workflow on a real AWS stack.

Runs only when ``AWS_SAM_STACK_NAME`` names a deployed stack (``sam deploy``) and AWS
credentials are available; the endpoint named by the stack's ``EndpointName`` must be in service.

Besides executions started directly, it uploads under the incoming prefix and finds the execution
the EventBridge rule started for that key (ListExecutions, newest first, then DescribeExecution of
each until one's input, the S3 event's detail, names the key), with a bounded wait.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

import pytest

STACK = os.environ.get("AWS_SAM_STACK_NAME")

pytestmark = pytest.mark.skipif(
    not STACK, reason="AWS_SAM_STACK_NAME is not set: no deployed stack to test"
)


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (120, 30, 200)).save(buf, format="PNG")
    return buf.getvalue()


def _find(outputs: dict[str, str], word: str) -> str:
    for key, value in outputs.items():
        if word.lower() in key.lower():
            return value
    raise AssertionError(f"the stack has no output named like {word!r}: {sorted(outputs)}")


def _run(sfn: Any, arn: str, payload: dict[str, str]) -> dict[str, Any]:
    execution = sfn.start_execution(
        stateMachineArn=arn, name=f"test-{uuid.uuid4()}", input=json.dumps(payload)
    )
    for _ in range(120):
        desc = sfn.describe_execution(executionArn=execution["executionArn"])
        if desc["status"] != "RUNNING":
            return dict(desc)
        time.sleep(1)
    raise AssertionError("execution did not finish in 120 s")


def test_an_image_is_classified_or_sent_to_review(outputs: dict[str, str]) -> None:
    import boto3

    bucket = _find(outputs, "bucket")
    arn = _find(outputs, "statemachine")
    key = f"{outputs.get('IncomingPrefix', 'incoming/')}tests/{uuid.uuid4()}.png"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=_png(), ContentType="image/png")
    desc = _run(boto3.client("stepfunctions"), arn, {"s3_bucket": bucket, "s3_key": key})
    if desc["status"] == "SUCCEEDED":
        out = json.loads(desc["output"])
        assert len(out["inferences"]) >= 2
        assert out["confidence"] == max(out["inferences"])
    else:
        assert desc["status"] == "FAILED"
        assert desc.get("error") == "LowConfidenceError", desc


def test_a_missing_object_fails_with_a_named_error(outputs: dict[str, str]) -> None:
    import boto3

    bucket = _find(outputs, "bucket")
    arn = _find(outputs, "statemachine")
    desc = _run(
        boto3.client("stepfunctions"),
        arn,
        {
            "s3_bucket": bucket,
            "s3_key": f"{outputs.get('IncomingPrefix', 'incoming/')}missing/{uuid.uuid4()}.png",
        },
    )
    assert desc["status"] == "FAILED"
    assert desc.get("error") == "ImageNotFoundError", desc


# ------------------------------------------------------------------------------ the S3 trigger

#: How long EventBridge may take to start the execution for an upload (it usually takes seconds).
TRIGGER_WAIT_S = 90


def _names_key(execution_input: str | None, bucket: str, key: str) -> bool:
    """Whether an execution input from the rule (the S3 event's detail) names ``bucket``/``key``.

    AWS documents URL-encoded keys for S3 event notifications but not for EventBridge events:
    the key may come as uploaded or form-encoded (what SerializeImage reads either way).
    """
    try:
        detail = json.loads(execution_input or "")
        sent, named_bucket = detail["object"]["key"], detail["bucket"]["name"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(named_bucket == bucket and key in (sent, unquote_plus(str(sent))))


def _execution_for_upload(
    sfn: Any, arn: str, bucket: str, key: str, since: datetime, wait_s: float = TRIGGER_WAIT_S
) -> dict[str, Any] | None:
    """The execution started since ``since`` whose input names the key; None after ``wait_s``."""
    seen: set[str] = set()
    deadline = time.monotonic() + wait_s
    while True:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            older = False
            for item in page["executions"]:  # the most recent first
                if item["startDate"] < since:
                    older = True
                    break
                if item["executionArn"] in seen:
                    continue
                desc = sfn.describe_execution(executionArn=item["executionArn"])
                if _names_key(desc.get("input"), bucket, key):
                    return dict(desc)
                seen.add(item["executionArn"])  # an input never changes: not described again
            if older:
                break
        if time.monotonic() > deadline:
            return None
        time.sleep(3)


def _finished(sfn: Any, desc: dict[str, Any], wait_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + wait_s
    while desc["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution still running after {wait_s} s: {desc}"
        time.sleep(2)
        desc = dict(sfn.describe_execution(executionArn=desc["executionArn"]))
    return desc


def _upload_and_follow(outputs: dict[str, str], name: str) -> tuple[str, dict[str, Any]]:
    """Upload a PNG as ``<incoming prefix>tests/<uuid>/<name>``; the rule's execution, ended."""
    import boto3

    bucket, arn = _find(outputs, "bucket"), _find(outputs, "statemachine")
    key = f"{outputs.get('IncomingPrefix', 'incoming/')}tests/{uuid.uuid4()}/{name}"
    s3, sfn = boto3.client("s3"), boto3.client("stepfunctions")
    since = datetime.now(tz=UTC) - timedelta(minutes=2)  # room for clock skew
    s3.put_object(Bucket=bucket, Key=key, Body=_png(), ContentType="image/png")
    try:
        desc = _execution_for_upload(sfn, arn, bucket, key, since)
        assert desc is not None, f"no execution names s3://{bucket}/{key} after {TRIGGER_WAIT_S} s"
        return key, _finished(sfn, desc)
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def _classified_or_reviewed(desc: dict[str, Any], key: str) -> None:
    """SerializeImage read the uploaded object: the execution got past it to a result."""
    if desc["status"] == "SUCCEEDED":
        assert json.loads(desc["output"])["s3_key"] == key
    else:
        assert (desc["status"], desc.get("error")) == ("FAILED", "LowConfidenceError"), desc


def test_an_upload_under_the_incoming_prefix_starts_an_execution(outputs: dict[str, str]) -> None:
    key, desc = _upload_and_follow(outputs, "upload.png")
    _classified_or_reviewed(desc, key)


def test_an_upload_with_spaces_and_unicode_in_its_key_is_read(outputs: dict[str, str]) -> None:
    key, desc = _upload_and_follow(outputs, "vélo électrique 自転車 1+1 100%.png")
    detail = json.loads(desc["input"])
    print(f"EventBridge sent the key {detail['object']['key']!r} for {key!r}")  # encoded or not
    _classified_or_reviewed(desc, key)


def test_a_create_folder_marker_starts_no_execution(outputs: dict[str, str]) -> None:
    import boto3

    bucket, arn = _find(outputs, "bucket"), _find(outputs, "statemachine")
    key = f"{outputs.get('IncomingPrefix', 'incoming/')}tests/{uuid.uuid4()}/"
    s3 = boto3.client("s3")
    since = datetime.now(tz=UTC) - timedelta(minutes=2)
    s3.put_object(Bucket=bucket, Key=key, Body=b"")  # what the console's "Create folder" does
    try:
        found = _execution_for_upload(boto3.client("stepfunctions"), arn, bucket, key, since, 30)
        assert found is None, f"a folder marker started {found}"
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
