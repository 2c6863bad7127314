"""The deployed tier: runs the workflow on a real AWS stack.

Runs only when ``AWS_SAM_STACK_NAME`` names a deployed stack (``sam deploy``) and AWS
credentials are available; the endpoint named by the stack's ``EndpointName`` must be in service.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from typing import Any

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
