"""The ASL: statelint, structure, Retry/Catch rules, and real executions in moto's interpreter
with Lambda bound to our handlers in-process."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from sam_helpers import (
    ASCII_GIF,
    ASL,
    HANDLERS,
    PLAUSIBLE_SUBSTITUTIONS,
    load_handler,
    project_app,
    queue_endpoint_results,
    read_event,
    substitute,
)

#: What a ``lambda:invoke`` task retries: AWS's list for Lambda service exceptions
#: (docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html), plus the
#: throttling error the same page names.
LAMBDA_TRANSIENT = {
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
#: Our errors that retrying cannot fix.
PERMANENT = {
    "InvalidEventError",
    "ConfigurationError",
    "ImageNotFoundError",
    "ImageAccessDeniedError",
    "NotAnImageError",
    "ImageTooLargeError",
    "EndpointError",
    "MalformedInferenceError",
    "LowConfidenceError",
}
TASK_FUNCTIONS = {
    "SerializeImage": "SerializeImageFunction",
    "ClassifyImage": "ClassifyImageFunction",
    "FilterInferences": "FilterInferencesFunction",
}


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ASL.read_text())
    return data


def named_errors(module: ModuleType) -> set[str]:
    """The exception classes a handler module defines (the names it can fail with)."""
    return {
        name
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == module.__name__
    }


def targets(state: dict[str, Any]) -> list[str]:
    found = [state[k] for k in ("Next", "Default") if k in state]
    found += [choice["Next"] for choice in state.get("Choices", [])]
    found += [catch["Next"] for catch in state.get("Catch", [])]
    return found


# ------------------------------------------------------------------------------ static checks


def test_statelint_accepts_the_substituted_definition(tmp_path: Path) -> None:
    statelint = Path(sys.executable).with_name("statelint")
    if not statelint.exists():
        pytest.fail(f"statelint not found at {statelint}: run `make install`")
    definition = tmp_path / "definition.json"
    definition.write_text(substitute(ASL.read_text(), PLAUSIBLE_SUBSTITUTIONS))
    result = subprocess.run(
        [str(statelint), str(definition)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_statelint_rejects_a_broken_definition(tmp_path: Path, asl: dict[str, Any]) -> None:
    broken = json.loads(substitute(ASL.read_text(), PLAUSIBLE_SUBSTITUTIONS))
    broken["States"]["SerializeImage"]["Next"] = "NoSuchState"
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(broken))
    statelint = Path(sys.executable).with_name("statelint")
    result = subprocess.run(
        [str(statelint), str(definition)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0


def test_jsonpath_only(asl: dict[str, Any]) -> None:
    text = ASL.read_text()
    assert "JSONata" not in text and '"Assign"' not in text and "{%" not in text


def test_every_target_exists_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert asl["StartAt"] in states
    for name, state in states.items():
        for target in targets(state):
            assert target in states, f"{name} -> {target} does not exist"
    reachable, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo.extend(targets(states[name]))
    assert reachable == set(states)


def test_the_flow_is_serialize_classify_filter(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert states["SerializeImage"]["Next"] == "ClassifyImage"
    assert states["ClassifyImage"]["Next"] == "FilterInferences"
    assert states["FilterInferences"].get("End") is True


@pytest.mark.parametrize("task", sorted(TASK_FUNCTIONS))
def test_tasks_use_the_lambda_invoke_form(asl: dict[str, Any], task: str) -> None:
    state = asl["States"][task]
    assert state["Resource"] == "arn:aws:states:::lambda:invoke"
    assert state["Parameters"] == {
        "FunctionName": f"${{{TASK_FUNCTIONS[task]}Arn}}",
        "Payload.$": "$",
    }
    assert state["OutputPath"] == "$.Payload"


@pytest.mark.parametrize("task", sorted(TASK_FUNCTIONS))
def test_retry_only_transient_errors_with_backoff(asl: dict[str, Any], task: str) -> None:
    retried: set[str] = set()
    for retrier in asl["States"][task]["Retry"]:
        retried.update(retrier["ErrorEquals"])
        assert retrier["BackoffRate"] > 1 and retrier["MaxAttempts"] >= 2
    assert retried >= LAMBDA_TRANSIENT
    assert not retried & PERMANENT, f"{task} retries permanent errors {retried & PERMANENT}"
    assert "States.ALL" not in retried
    if task == "ClassifyImage":
        assert "EndpointUnavailableError" in retried


def test_serialize_retries_s3_unavailable_long_enough_for_a_restart(asl: dict[str, Any]) -> None:
    """S3 down for a while (a SeaweedFS restart took about 10 s) costs no image: the waits
    add up to more than 20 s and stay bounded (issue 14)."""
    retrier = next(
        r
        for r in asl["States"]["SerializeImage"]["Retry"]
        if r["ErrorEquals"] == ["S3UnavailableError"]
    )
    waits, interval = [], float(retrier["IntervalSeconds"])
    for _ in range(retrier["MaxAttempts"]):
        waits.append(min(interval, retrier.get("MaxDelaySeconds", interval)))
        interval *= retrier["BackoffRate"]
    assert retrier.get("JitterStrategy", "NONE") == "NONE", "full jitter can cut the waits short"
    assert 20 <= sum(waits) <= 120, waits
    assert "S3UnavailableError" in asl["States"]["SerializeImage"]["Comment"]


def test_s3_unavailable_is_a_named_shared_error() -> None:
    """Defined once in the CommonLayer, imported by SerializeImage (the name the ASL retries)."""
    module = load_handler(HANDLERS["SerializeImageFunction"])
    error = module.S3UnavailableError
    assert error.__name__ == "S3UnavailableError" and issubclass(error, ConnectionError)
    assert error.__module__ == "scones_common"
    catches = json.loads(ASL.read_text())["States"]["SerializeImage"]["Catch"]
    catcher = next(c for c in catches if "S3UnavailableError" in c["ErrorEquals"])
    fail = json.loads(ASL.read_text())["States"][catcher["Next"]]
    assert fail["Type"] == "Fail" and fail["ErrorPath"] == "$.Error"  # keeps its own name


def test_every_lambda_task_retries_exactly_the_transient_lambda_errors(
    asl: dict[str, Any],
) -> None:
    tasks = {
        name: state
        for name, state in asl["States"].items()
        if state.get("Resource") == "arn:aws:states:::lambda:invoke"
    }
    assert set(tasks) == set(TASK_FUNCTIONS)
    for name, state in tasks.items():
        lambda_retriers = [
            set(r["ErrorEquals"])
            for r in state["Retry"]
            if any(e.startswith("Lambda.") for e in r["ErrorEquals"])
        ]
        assert lambda_retriers == [LAMBDA_TRANSIENT], f"{name} retries {lambda_retriers}"


def _ends_in_fail(asl: dict[str, Any], start: str) -> dict[str, Any]:
    state = asl["States"][start]
    seen = 0
    while state["Type"] != "Fail":
        assert state["Type"] == "Pass" and seen < 5, f"{start} does not lead to a Fail state"
        state = asl["States"][state["Next"]]
        seen += 1
    return state


@pytest.mark.parametrize("task", sorted(TASK_FUNCTIONS))
def test_every_named_error_is_caught_into_its_own_fail_state(
    asl: dict[str, Any], task: str
) -> None:
    module = load_handler(HANDLERS[TASK_FUNCTIONS[task]])
    catches = asl["States"][task]["Catch"]
    assert catches[-1]["ErrorEquals"] == ["States.ALL"], "States.ALL must come last"
    for error in named_errors(module):
        catcher = next((c for c in catches if error in c["ErrorEquals"]), None)
        assert catcher is not None, f"{task} does not catch {error}"
        fail = _ends_in_fail(asl, catcher["Next"])
        assert fail.get("Error") == error or (
            fail.get("ErrorPath") == "$.Error" and error in catcher["ErrorEquals"]
        ), f"{error} from {task} ends as {fail}"
        assert "CausePath" in fail, "the Fail state keeps the cause"


def test_low_confidence_is_recorded_for_review_then_fails(asl: dict[str, Any]) -> None:
    catcher = next(
        c
        for c in asl["States"]["FilterInferences"]["Catch"]
        if "LowConfidenceError" in c["ErrorEquals"]
    )
    review = asl["States"][catcher["Next"]]
    assert review["Type"] == "Pass"
    assert "image_data" not in json.dumps(review["Parameters"])
    assert _ends_in_fail(asl, catcher["Next"])["Error"] == "LowConfidenceError"


# ------------------------------------------------------------------------------ executions


@pytest.fixture
def bound_handlers() -> Iterator[None]:
    """The twin's Lambda binding (``scones.twin.moto_binding``, the production code path) with
    every handler module imported fresh for the test and forgotten after it."""
    from scones.twin import lambda_runtime, moto_binding

    moto_binding.install()
    lambda_runtime.unload_handlers()
    yield
    lambda_runtime.unload_handlers()


@pytest.fixture
def workflow(moto: None, bound_handlers: None) -> Any:
    """The state machine in moto's ASL interpreter; Lambda calls run our handlers in-process."""
    from scones.twin import moto_binding
    from scones.twin.lambda_runtime import HANDLER_FILE_TAG, LAYERS_TAG, layers_tag

    role = boto3.client("iam").create_role(RoleName="scones-test", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    lambda_client = boto3.client("lambda")
    values = dict(PLAUSIBLE_SUBSTITUTIONS)
    for logical_id in HANDLERS:
        spec = project_app().functions[logical_id]
        arn = lambda_client.create_function(
            FunctionName=f"scones-{logical_id}",
            Runtime="python3.13",
            Role=role,
            Handler=spec.handler,
            Code={"ZipFile": b"unused"},
            Timeout=spec.timeout,  # ClassifyImage plans its endpoint calls within it
            # what `scones deploy --local` tags (no Environment: the tests set their own)
            Tags={HANDLER_FILE_TAG: str(spec.handler_file), LAYERS_TAG: layers_tag(spec.layers)},
        )["FunctionArn"]
        if hasattr(moto_binding, "bind"):  # the binding deploy records (no longer the tags)
            binding = moto_binding.Binding(spec.handler_file, tuple(spec.layers))
            moto_binding.bind(f"scones-{logical_id}", binding)
        values[f"{logical_id}Arn"] = arn
    sfn = boto3.client("stepfunctions")
    definition = substitute(ASL.read_text(), values)
    machine = sfn.create_state_machine(name="scones-test", definition=definition, roleArn=role)[
        "stateMachineArn"
    ]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="scones-images-test")
    s3.put_object(Bucket="scones-images-test", Key="incoming/one.gif", Body=ASCII_GIF)
    s3.put_object(Bucket="scones-images-test", Key="incoming/notes.txt", Body=b"not an image")

    def run(execution_input: Any) -> dict[str, Any]:
        arn = sfn.start_execution(
            stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result: dict[str, Any] = sfn.describe_execution(executionArn=arn)
            if result["status"] != "RUNNING":
                return result
            time.sleep(0.02)
        raise AssertionError("execution did not finish in 30 s")

    return run


def test_a_confident_image_succeeds(workflow: Any) -> None:
    queue_endpoint_results("[0.97, 0.03]")
    result = workflow({"s3_bucket": "scones-images-test", "s3_key": "incoming/one.gif"})
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["inferences"] == [0.97, 0.03] and output["label"] == 0
    assert output["endpoint_name"] == "scones-image-classifier" and output["threshold"] == 0.93
    # what SerializeImage says of the image passes through ClassifyImage, FilterInferences, ASL
    assert (output["reduced"], output["original_format"], output["original_bytes"]) == (
        False,
        "GIF",
        len(ASCII_GIF),
    )


def test_a_low_confidence_image_fails_with_low_confidence_error(workflow: Any) -> None:
    queue_endpoint_results("[0.6, 0.4]")
    result = workflow({"s3_bucket": "scones-images-test", "s3_key": "incoming/one.gif"})
    assert result["status"] == "FAILED"
    assert result["error"] == "LowConfidenceError"
    assert "0.6000" in result["cause"]


@pytest.mark.parametrize(
    ("execution_input", "error", "cause"),
    [
        (
            {"s3_bucket": "scones-images-test", "s3_key": "incoming/notes.txt"},
            "NotAnImageError",
            "not a PNG",
        ),
        (
            {"s3_bucket": "scones-images-test", "s3_key": "incoming/gone.png"},
            "ImageNotFoundError",
            "does not exist",
        ),
        ({"s3_bucket": "scones-images-test"}, "InvalidEventError", "s3_key"),
        ({"s3_bucket": "scones-images-test", "s3_key": 5}, "InvalidEventError", "s3_key"),
        (["not", "an", "object"], "InvalidEventError", "JSON object"),
        # issue 14: named errors, not botocore's ParamValidationError or S3's InvalidRequest
        ({"s3_bucket": "Bad_Bucket!!", "s3_key": "incoming/a.png"}, "InvalidEventError", "bucket"),
        (
            {"s3_bucket": "scones-images-test", "s3_key": "incoming/../one.gif"},
            "InvalidEventError",
            "'..' path segment",
        ),
    ],
)
def test_bad_inputs_fail_with_their_named_error(
    workflow: Any, execution_input: Any, error: str, cause: str
) -> None:
    result = workflow(execution_input)
    assert result["status"] == "FAILED"
    assert result["error"] == error
    assert cause in result["cause"]


def test_a_malformed_endpoint_answer_fails_with_its_name(workflow: Any) -> None:
    queue_endpoint_results('{"not": "a list"}')
    result = workflow({"s3_bucket": "scones-images-test", "s3_key": "incoming/one.gif"})
    assert (result["status"], result["error"]) == ("FAILED", "MalformedInferenceError")


# ------------------------------------------------------------------------------ the rule's input


def _rule_input(key: Any, bucket: Any = "scones-images-test") -> dict[str, Any]:
    """What the EventBridge rule passes (InputPath $.detail): the S3 event's detail."""
    detail: dict[str, Any] = json.loads(json.dumps(read_event("s3_object_created.json")["detail"]))
    detail["bucket"]["name"] = bucket
    detail["object"]["key"] = key
    return detail


def test_the_rules_input_is_the_sample_events_detail() -> None:
    detail = read_event("s3_object_created.json")["detail"]
    assert read_event("statemachine_rule_input.json") == detail


def test_an_s3_event_detail_is_classified(workflow: Any) -> None:
    queue_endpoint_results("[0.97, 0.03]")
    result = workflow(_rule_input("incoming/one.gif"))
    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert (output["s3_bucket"], output["s3_key"]) == ("scones-images-test", "incoming/one.gif")
    assert "object" not in output and output["label"] == 0


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ('incoming/a "quoted" \\ key.gif', 'incoming/a "quoted" \\ key.gif'),
        ("incoming/vélo à 100% +1.gif", "incoming/vélo à 100% +1.gif"),
        # as S3 event notifications write keys (form URL encoding): read decoded
        ("incoming/vélo à 100% +1.gif", "incoming/v%C3%A9lo+%C3%A0+100%25+%2B1.gif"),
    ],
)
def test_any_key_in_an_s3_event_detail_reaches_the_image(
    workflow: Any, stored: str, sent: str
) -> None:
    boto3.client("s3").put_object(Bucket="scones-images-test", Key=stored, Body=ASCII_GIF)
    queue_endpoint_results("[0.97, 0.03]")
    result = workflow(_rule_input(sent))
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"])["s3_key"] == stored


@pytest.mark.parametrize(
    "execution_input",
    [_rule_input(7), _rule_input("incoming/one.gif", bucket=["b"]), {"object": {"key": "k"}}],
)
def test_a_malformed_s3_event_detail_is_an_invalid_event(
    workflow: Any, execution_input: Any
) -> None:
    result = workflow(execution_input)
    assert (result["status"], result["error"]) == ("FAILED", "InvalidEventError")
    assert "object.key" in result["cause"]
