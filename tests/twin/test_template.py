"""The template reader on the real template.yaml and on broken ones."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from workflow_sample_app import ASL, TEMPLATE, write_app

from scones.twin import lambda_runtime
from scones.twin import template as t

PROJECT = Path(__file__).resolve().parents[2]
EXTERNAL_LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:elsewhere:1"


def test_real_template_reads_as_sam_would() -> None:
    app = t.read_app(PROJECT)
    assert set(app.functions) == {
        "SerializeImageFunction",
        "ClassifyImageFunction",
        "FilterInferencesFunction",
    }
    classify = app.function("ClassifyImageFunction")
    assert classify.environment["ENDPOINT_NAME"] == app.endpoint_name
    assert classify.handler == "app.lambda_handler"  # from Globals
    assert classify.handler_file == PROJECT / "functions/classify_image/app.py"
    assert classify.timeout == 80  # the function's own value wins over Globals
    machine = app.state_machine
    assert "${" not in machine.definition
    definition = json.loads(machine.definition)
    resources = {s.get("Parameters", {}).get("FunctionName") for s in definition["States"].values()}
    assert {f.arn for f in app.functions.values()} <= resources
    assert app.bucket == f"{app.stack_name}-images-local"  # ImageBucketName empty
    assert app.incoming_prefix == "incoming/"
    rule = machine.rules[0]
    assert rule.pattern["detail"]["bucket"]["name"] == [app.bucket]
    for function in app.functions.values():  # CommonLayer, from Globals
        assert function.layers == (PROJECT / "functions" / "common",)


def test_yaml_short_tags(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n  X:\n    Type: T\n    Properties:\n"
        "      A: !GetAtt Fn.Arn\n      B: !Sub '${AWS::Region}-x'\n      C: !If [Cond, 1, 2]\n"
    )
    props = t.load_template(path)["Resources"]["X"]["Properties"]
    assert props == {
        "A": {"Fn::GetAtt": ["Fn", "Arn"]},
        "B": {"Fn::Sub": "${AWS::Region}-x"},
        "C": {"Fn::If": ["Cond", 1, 2]},
    }


def test_parameters_conditions_globals_and_overrides(app_root: Path) -> None:
    (app_root / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\nstack_name = "demo"\n'
        'parameter_overrides = "Greeting=\\"hi there\\" BucketName=my-bucket"\n'
    )
    app = t.read_app(app_root)
    assert app.stack_name == "demo"
    ok = app.function("OkFunction")
    assert ok.name == "demo-Ok"
    assert ok.environment == {"SHARED": "same", "GREETING": "hi there"}
    flaky = app.function("FlakyFunction")
    assert flaky.name == "demo-FlakyFunction"
    assert flaky.environment == {"SHARED": "same"}
    assert app.bucket == "my-bucket"
    assert app.state_machine.substitutions["OkArn"] == ok.arn
    assert app.state_machine.name == "demo-Machine"
    assert app.incoming_prefix == "in/"


def test_default_bucket_name_without_parameter(app_root: Path) -> None:
    assert t.read_app(app_root).bucket == "scones-images-local"


@pytest.mark.parametrize(
    ("edit", "error", "words"),
    [
        (
            lambda s, a: (s.replace("      CodeUri: fn_flaky/\n", ""), a),
            t.MissingPropertyError,
            "CodeUri",
        ),
        (
            lambda s, a: (s.replace("!Ref Greeting", "!Ref Nope"), a),
            t.UnknownReferenceError,
            "Nope",
        ),
        (
            lambda s, a: (s.replace("OkFunction.Arn", "Missing.Arn"), a),
            t.UnknownReferenceError,
            "Missing",
        ),
        (
            lambda s, a: (s, a.replace("${OkArn}", "${Unknown}")),
            t.UnresolvedPlaceholderError,
            "${Unknown}",
        ),
        (
            lambda s, a: (s.replace("fn_ok/", "fn_missing/"), a),
            t.TemplateNotFoundError,
            "fn_missing",
        ),
        (
            lambda s, a: (s.replace("machine.asl.json", "nope.json"), a),
            t.TemplateNotFoundError,
            "nope.json",
        ),
        (lambda s, a: (s, a.replace('"StartAt"', "StartAt")), t.TemplateError, "not valid JSON"),
        (
            lambda s, a: (s.replace("!Ref Greeting", "!ImportValue x"), a),
            t.UnsupportedIntrinsicError,
            "ImportValue",
        ),
        (lambda s, a: (s.replace("Resources:", "Resources: [\n"), a), t.TemplateError, "YAML"),
        (
            lambda s, a: (s.replace("[!Ref SampleLayer]", f"[{EXTERNAL_LAYER}]"), a),
            t.UnsupportedLayerError,
            "not a !Ref to a LayerVersion",
        ),
        (
            lambda s, a: (s.replace("ContentUri: layer/", "ContentUri: no_layer/"), a),
            t.TemplateNotFoundError,
            "no_layer",
        ),
    ],
)
def test_broken_templates_get_named_errors(
    tmp_path: Path, edit: object, error: type[Exception], words: str
) -> None:
    template, asl = edit(TEMPLATE, ASL)  # type: ignore[operator]
    root = write_app(tmp_path, template, asl)
    with pytest.raises(error, match=None) as info:
        t.read_app(root)
    assert words in str(info.value)


def test_missing_template(tmp_path: Path) -> None:
    with pytest.raises(t.TemplateNotFoundError):
        t.read_app(tmp_path)


def test_bad_overrides(app_root: Path) -> None:
    (app_root / "samconfig.toml").write_text(
        '[default.deploy.parameters]\nparameter_overrides = "Nope=1"\n'
    )
    with pytest.raises(t.UnknownReferenceError, match="Nope"):
        t.read_app(app_root)
    (app_root / "samconfig.toml").write_text(
        '[default.deploy.parameters]\nparameter_overrides = "Greeting"\n'
    )
    with pytest.raises(t.SamConfigError, match="Key=Value"):
        t.read_app(app_root)


def test_parse_parameter_overrides_forms() -> None:
    assert t.parse_parameter_overrides('A=1 B="two words" C=') == {
        "A": "1",
        "B": "two words",
        "C": "",
    }
    assert t.parse_parameter_overrides(["A=1", "B=2"]) == {"A": "1", "B": "2"}


def test_layers_come_from_the_template(app_root: Path) -> None:
    app = t.read_app(app_root)
    assert app.function("OkFunction").layers == ((app_root / "layer").resolve(),)
    assert app.function("FlakyFunction").layers == ()


def test_a_layer_without_a_python_build_method_brings_its_own_python_folder(
    tmp_path: Path,
) -> None:
    template = TEMPLATE.replace("    Metadata:\n      BuildMethod: python3.11\n", "")
    assert template != TEMPLATE
    root = write_app(tmp_path, template)
    with pytest.raises(t.TemplateNotFoundError, match="python"):
        t.read_app(root)
    (root / "layer" / "python").mkdir()
    assert t.read_app(root).function("OkFunction").layers == (
        (root / "layer" / "python").resolve(),
    )


def test_the_handler_loader_puts_the_layers_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler importing its layer's module loads only with the layer folders given."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after the test
    monkeypatch.setenv("GREETING", "hi")
    module = f"layer_{uuid.uuid4().hex}"  # a name no earlier test imported
    root = write_app(
        tmp_path,
        TEMPLATE.replace(
            "CodeUri: fn_flaky/", "CodeUri: fn_layered/\n      Layers: [!Ref SampleLayer]"
        ),
    )
    (root / "layer" / f"{module}.py").write_text("VALUE = 'from the layer'\n")
    (root / "fn_layered").mkdir()
    (root / "fn_layered" / "app.py").write_text(
        f"from {module} import VALUE\n\ndef lambda_handler(event, context):\n    return VALUE\n"
    )
    spec = t.read_app(root).function("FlakyFunction")
    with pytest.raises(lambda_runtime.HandlerLoadError, match="ModuleNotFoundError"):
        lambda_runtime.load_handler(spec.handler_file, spec.handler_name)
    handler = lambda_runtime.load_handler(spec.handler_file, spec.handler_name, spec.layers)
    assert handler({}, lambda_runtime.LambdaContext(function_name="f")) == "from the layer"
    assert sys.path[0] == str(spec.layers[0])


def test_layer_folders_travel_in_one_function_tag(tmp_path: Path) -> None:
    folders = (tmp_path / "a", tmp_path / "b c")
    value = lambda_runtime.layers_tag(folders)
    assert lambda_runtime.layers_from_tag(value) == folders
    assert lambda_runtime.layers_from_tag(None) == lambda_runtime.layers_from_tag("") == ()


# ------------------------------------------------------------------------------ cost parameters

COMBINATIONS = [
    (workflow, guard) for workflow in ("STANDARD", "EXPRESS") for guard in ("disabled", "enabled")
]
GUARD = "IdleEndpointGuardFunction"


@pytest.mark.parametrize(("workflow", "guard"), COMBINATIONS)
def test_the_cost_conditions_as_the_twin_reads_them(workflow: str, guard: str) -> None:
    """WorkflowType x IdleEndpointGuard: what each of the four combinations deploys."""
    app = t.read_app(
        PROJECT, parameter_overrides={"WorkflowType": workflow, "IdleEndpointGuard": guard}
    )
    machine = app.state_machine
    assert machine.sm_type == workflow
    express = workflow == "EXPRESS"
    # ExecutionLogs=auto: everything, with data, for EXPRESS (its only record); errors otherwise
    assert machine.logging["level"] == ("ALL" if express else "ERROR")
    assert machine.logging["includeExecutionData"] is express
    (destination,) = machine.logging["destinations"]
    group = destination["cloudWatchLogsLogGroup"]["logGroupArn"]
    assert group == (
        f"arn:aws:logs:{app.region}:123456789012:log-group:"
        f"/aws/vendedlogs/states/{app.stack_name}-ImageClassification:*"
    )
    assert (GUARD in app.functions) is (guard == "enabled")
    if guard == "enabled":
        spec = app.function(GUARD)
        assert spec.environment == {"ENDPOINT_NAME": app.endpoint_name, "IDLE_HOURS": "24"}
        assert spec.handler_file == PROJECT / "functions/idle_endpoint_guard/app.py"
        assert spec.layers == (PROJECT / "functions" / "common",)
    for spec in [*app.functions.values()]:
        assert spec.tags == {"project": "scones"}, spec.logical_id
    assert machine.tags == {"project": "scones"}


@pytest.mark.parametrize(
    ("workflow", "logs", "level", "data"),
    [
        ("STANDARD", "full", "ALL", True),
        ("STANDARD", "errors", "ERROR", False),
        ("EXPRESS", "errors", "ERROR", False),
        ("EXPRESS", "full", "ALL", True),
    ],
)
def test_execution_logs_can_be_chosen(workflow: str, logs: str, level: str, data: bool) -> None:
    overrides = {"WorkflowType": workflow, "ExecutionLogs": logs}
    logging = t.read_app(PROJECT, parameter_overrides=overrides).state_machine.logging
    assert (logging["level"], logging["includeExecutionData"]) == (level, data)


def test_cost_parameters_are_checked() -> None:
    for bad in ({"WorkflowType": "express"}, {"IdleEndpointGuard": "on"}, {"ExecutionLogs": "all"}):
        with pytest.raises(t.TemplateError, match="not one of"):
            t.read_app(PROJECT, parameter_overrides=bad)


def test_samconfig_stack_tags_reach_every_resource_the_twin_creates(app_root: Path) -> None:
    (app_root / "samconfig.toml").write_text(
        '[default.deploy.parameters]\ntags = "project=scones team=\\"image review\\""\n'
    )
    app = t.read_app(app_root)
    assert app.state_machine.tags == {"project": "scones", "team": "image review"}
    for spec in app.functions.values():
        assert spec.tags == {"project": "scones", "team": "image review"}


def test_express_and_back_replaces_the_state_machine_in_moto(
    app_root: Path, settings_for: object, tmp_path: Path
) -> None:
    """moto keeps an Express machine and runs it as it runs a Standard one (DescribeExecution,
    history); the type of a machine cannot change, so a changed WorkflowType replaces it."""
    from sample_deploy import deploy_sample, run

    from scones.twin import deploy
    from scones.twin.clients import twin_clients

    settings = settings_for(app_root)  # type: ignore[operator]
    text = (app_root / "template.yaml").read_text()
    express = text.replace(
        'Name: !Sub "${AWS::StackName}-Machine"\n',
        'Name: !Sub "${AWS::StackName}-Machine"\n      Type: EXPRESS\n'
        "      Tags: { project: scones }\n",
    )
    assert express != text
    (app_root / "template.yaml").write_text(express)
    _, sfn, _, machine = deploy_sample(settings)
    described = sfn.describe_state_machine(stateMachineArn=machine)
    assert described["type"] == "EXPRESS"
    assert sfn.list_tags_for_resource(resourceArn=machine)["tags"] == [
        {"key": "project", "value": "scones"}
    ]
    name = f"express-{uuid.uuid4().hex[:8]}"
    done = run(sfn, machine, {"counter": str(tmp_path / "calls"), "fail_times": 1}, name)
    assert done["status"] == "SUCCEEDED", done
    history = sfn.get_execution_history(executionArn=done["executionArn"])["events"]
    assert history[0]["type"] == "ExecutionStarted"
    assert history[-1]["type"] == "ExecutionSucceeded"

    (app_root / "template.yaml").write_text(text)  # back to STANDARD: replaced
    standard = t.read_app(app_root).state_machine
    (sfn2,) = twin_clients(settings, "stepfunctions")
    assert deploy.deploy_state_machine(sfn2, standard) == machine
    assert sfn2.describe_state_machine(stateMachineArn=machine)["type"] == "STANDARD"
    executions = sfn2.list_executions(stateMachineArn=machine)["executions"]
    assert executions == []  # the replaced machine's executions went with it


def test_a_redeploy_updates_logging_and_tags_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from scones.twin.deploy import deploy_state_machine

    for name, value in (("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # moto intercepts AWS's own endpoints only
    with mock_aws():
        sfn = boto3.client("stepfunctions")
        arn = deploy_state_machine(sfn, t.read_app(PROJECT).state_machine)
        assert (
            sfn.describe_state_machine(stateMachineArn=arn)["loggingConfiguration"]["level"]
            == "ERROR"
        )
        full = t.read_app(PROJECT, parameter_overrides={"ExecutionLogs": "full"}).state_machine
        assert deploy_state_machine(sfn, full) == arn  # same type: updated, not replaced
        logging = sfn.describe_state_machine(stateMachineArn=arn)["loggingConfiguration"]
        assert (logging["level"], logging["includeExecutionData"]) == ("ALL", True)
        assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [
            {"key": "project", "value": "scones"}
        ]
