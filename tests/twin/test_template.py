"""The template reader on the real template.yaml and on broken ones."""

from __future__ import annotations

import json
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
