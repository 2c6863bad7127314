"""template.yaml: parameters, globals, least-privilege policies, state machine wiring, event rule."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from sam_helpers import (
    ALL_HANDLERS,
    ASL,
    EVENTS,
    HANDLERS,
    PROJECT,
    TASK_FUNCTIONS,
    full_app,
    load_handler,
    policy_statements,
    read_event,
    read_template,
    wildcard_grants,
)

from scones.twin.template import placeholders

COMMON = PROJECT / "functions" / "common"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return read_template()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


# ------------------------------------------------------------------------------ parameters


def test_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("EndpointName", "scones-image-classifier"),
        ("ConfidenceThreshold", "0.93"),
        ("ImageBucketName", ""),
        ("IncomingPrefix", "incoming/"),
        ("LogLevel", "INFO"),
    ],
)
def test_parameter_defaults(template: dict[str, Any], name: str, default: str) -> None:
    parameter = template["Parameters"][name]
    assert str(parameter["Default"]) == default
    if "AllowedPattern" in parameter:
        assert re.fullmatch(parameter["AllowedPattern"], default)
    if "AllowedValues" in parameter:
        assert default in parameter["AllowedValues"]


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("EndpointName", ["ep", "scones-image-classifier-v2"], ["", "Caps", "under_score", "-x"]),
        (
            "ConfidenceThreshold",
            ["0.93", "1", "0.5", "1.0", "0.05"],
            ["0", "0.0", "1.5", "abc", "-0.1", ".9", "1."],
        ),
        ("ImageBucketName", ["", "my-bucket"], ["My_Bucket", "a"]),
        (
            "IncomingPrefix",
            ["incoming/", "a/b/", "in_coming-2.0/"],
            ["incoming", "/incoming/", "", "a b/", "in(1)/", "a+b/", "é/"],
        ),
    ],
)
def test_parameter_patterns(
    template: dict[str, Any], name: str, good: list[str], bad: list[str]
) -> None:
    pattern = template["Parameters"][name]["AllowedPattern"]
    assert all(re.fullmatch(pattern, value) for value in good)
    assert not any(re.fullmatch(pattern, value) for value in bad)


def test_max_image_bytes_ceiling_matches_the_handler(
    template: dict[str, Any], serialize: Any
) -> None:
    parameter = template["Parameters"]["MaxImageBytes"]
    assert parameter["MaxValue"] == parameter["Default"] == serialize.HARD_MAX_IMAGE_BYTES


def test_empty_bucket_name_lets_cloudformation_name_the_bucket(template: dict[str, Any]) -> None:
    condition = template["Conditions"]["HasImageBucketName"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ImageBucketName"}, ""]}]}
    name = template["Resources"]["ImageBucket"]["Properties"]["BucketName"]
    assert name == {
        "Fn::If": ["HasImageBucketName", {"Ref": "ImageBucketName"}, {"Ref": "AWS::NoValue"}]
    }


# ------------------------------------------------------------------------------ globals and functions


def test_globals(template: dict[str, Any]) -> None:
    function = template["Globals"]["Function"]
    assert function["Runtime"] in ("python3.12", "python3.13")
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "app.lambda_handler"
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["LoggingConfig"]["ApplicationLogLevel"] == {"Ref": "LogLevel"}
    assert 3 <= function["Timeout"] <= 900 and 128 <= function["MemorySize"] <= 1024
    assert function["Tracing"] == "Active"


def test_one_folder_per_function(template: dict[str, Any]) -> None:
    functions = resources_of(template, "AWS::Serverless::Function")
    assert set(functions) == set(ALL_HANDLERS)
    for logical_id, folder in ALL_HANDLERS.items():
        code_uri = functions[logical_id]["Properties"]["CodeUri"]
        assert code_uri.rstrip("/") == f"functions/{folder}"
        app = PROJECT / code_uri / "app.py"
        tree = ast.parse(app.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "lambda_handler" for n in tree.body)


def imported_modules(path: Path) -> set[str]:
    """The top-level modules a Python file imports (absolute imports only)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


#: The import name of each distribution a function's requirements.txt may name.
IMPORT_NAMES = {"pillow": "PIL", "pillow-heif": "pillow_heif"}


def requirement_pins(folder: Path) -> dict[str, str]:
    """``functions/<folder>/requirements.txt`` as {distribution (lower case): version}."""
    path = folder / "requirements.txt"
    lines = path.read_text().splitlines() if path.is_file() else []
    pins = [line.split("#")[0].strip() for line in lines]
    return {name.lower(): version for name, _, version in (p.partition("==") for p in pins if p)}


@pytest.mark.parametrize("folder", sorted(ALL_HANDLERS.values()))
def test_handlers_need_only_the_standard_library_boto3_their_layer_and_requirements(
    folder: str,
) -> None:
    spec = next(f for f in full_app().functions.values() if f.code_uri.name == folder)
    layer_modules = {p.stem for layer in spec.layers for p in layer.glob("*.py")}
    required = {IMPORT_NAMES[name] for name in requirement_pins(spec.code_uri)}
    outside = imported_modules(spec.handler_file) - set(sys.stdlib_module_names)
    outside -= {"boto3", "botocore"} | layer_modules | required
    assert not outside, f"{folder} imports {outside}: not in its requirements.txt"
    assert "scones_common" in imported_modules(spec.handler_file)


def test_serialize_pins_the_pillow_the_twin_runs() -> None:
    """sam build packages these exact versions; the twin runs the handler with the venv's."""
    from importlib.metadata import version

    pins = requirement_pins(PROJECT / "functions" / "serialize_image")
    assert set(pins) == {"pillow", "pillow-heif"}
    assert all(pin == version(name) for name, pin in pins.items()), pins


# ------------------------------------------------------------------------------ the common layer


def test_every_function_gets_the_common_layer_from_globals(template: dict[str, Any]) -> None:
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "CommonLayer"}]
    for function in full_app().functions.values():
        assert function.layers == (COMMON,), function.logical_id


def test_the_common_layer_is_built_for_the_functions_runtime_and_architecture(
    template: dict[str, Any],
) -> None:
    layer = template["Resources"]["CommonLayer"]
    function = template["Globals"]["Function"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert (PROJECT / layer["Properties"]["ContentUri"]).resolve() == COMMON
    assert layer["Metadata"]["BuildMethod"] == function["Runtime"]  # built into python/
    assert layer["Properties"]["CompatibleRuntimes"] == [function["Runtime"]]
    assert layer["Metadata"]["BuildArchitecture"] == function["Architectures"][0]
    assert layer["Properties"]["CompatibleArchitectures"] == function["Architectures"]
    assert not (COMMON / "requirements.txt").exists(), "the layer has no dependencies"


def test_the_layer_needs_only_the_standard_library() -> None:
    for path in COMMON.glob("*.py"):
        outside = imported_modules(path) - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {outside}"


def test_shared_errors_are_defined_once_in_the_layer(
    serialize: Any, classify: Any, filter_fn: Any
) -> None:
    import scones_common  # importable: loading the handlers put the layer on sys.path

    shared = {
        name
        for name, obj in vars(scones_common).items()
        if isinstance(obj, type) and issubclass(obj, Exception)
    }
    assert shared == {
        "InvalidEventError",
        "ConfigurationError",
        "MalformedInferenceError",
        "S3UnavailableError",
    }
    for module in (serialize, classify, filter_fn):
        tree = ast.parse(Path(module.__file__).read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        assert not defined & shared, f"{module.__file__} redefines {defined & shared}"
    for name in ("InvalidEventError", "ConfigurationError"):
        for module in (serialize, classify, filter_fn):
            assert getattr(module, name) is getattr(scones_common, name)
    assert classify.MalformedInferenceError is filter_fn.MalformedInferenceError


@pytest.mark.parametrize(("task", "logical_id"), sorted(TASK_FUNCTIONS.items()))
def test_the_layers_errors_are_still_caught_by_name(task: str, logical_id: str) -> None:
    """The ASL catches errors by class name: a class moved to the layer keeps its name."""
    import scones_common

    module = load_handler(HANDLERS[logical_id])
    raised = {
        name
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and obj.__module__ == scones_common.__name__
        and issubclass(obj, Exception)
    }
    assert raised, f"{logical_id} imports no error from the layer"
    caught = {
        error
        for catcher in json.loads(ASL.read_text())["States"][task]["Catch"]
        for error in catcher["ErrorEquals"]
    }
    assert raised <= caught, f"{task} does not catch {raised - caught}"


def test_each_function_has_a_log_group_with_retention(template: dict[str, Any]) -> None:
    for logical_id in ALL_HANDLERS:
        function = template["Resources"][logical_id]["Properties"]
        group = function["LoggingConfig"]["LogGroup"]["Ref"]
        assert template["Resources"][group]["Properties"]["RetentionInDays"] == {
            "Ref": "LogRetentionDays"
        }


def test_environment_variables_do_not_clash_between_functions(template: dict[str, Any]) -> None:
    """The twin runs all functions in one process with the union of their variables."""
    seen: dict[str, Any] = {}
    for logical_id in ALL_HANDLERS:
        variables = (
            template["Resources"][logical_id]["Properties"]
            .get("Environment", {})
            .get("Variables", {})
        )
        for name, value in variables.items():
            assert seen.setdefault(name, value) == value, f"{name} set differently by two functions"
    assert seen == {
        "MAX_IMAGE_BYTES": {"Ref": "MaxImageBytes"},
        "ENDPOINT_NAME": {"Ref": "EndpointName"},
        "CONFIDENCE_THRESHOLD": {"Ref": "ConfidenceThreshold"},
        "IDLE_HOURS": {"Ref": "IdleHours"},
    }


# ------------------------------------------------------------------------------ least privilege


def test_no_wildcard_resources_for_s3_or_sagemaker(template: dict[str, Any]) -> None:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            grants = wildcard_grants(policy_statements(resource), ("s3", "sagemaker"))
            assert not grants, f"{logical_id} grants {grants} on Resource *"


def test_the_wildcard_check_can_fail() -> None:
    function = {
        "Properties": {
            "Policies": [
                {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
            ]
        }
    }
    assert wildcard_grants(policy_statements(function), ("s3",)) == ["s3:GetObject"]


def test_serialize_reads_only_the_incoming_prefix(template: dict[str, Any]) -> None:
    statements = policy_statements(template["Resources"]["SerializeImageFunction"])
    actions = {s["Action"] for s in statements}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    get = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert get["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${ImageBucket}/${IncomingPrefix}*"
    }
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ImageBucket}"}


def test_classify_may_invoke_only_the_named_endpoint(template: dict[str, Any]) -> None:
    statements = policy_statements(template["Resources"]["ClassifyImageFunction"])
    assert len(statements) == 1
    assert statements[0]["Action"] == "sagemaker:InvokeEndpoint"
    resource = statements[0]["Resource"]["Fn::Sub"]
    assert resource.endswith(":endpoint/${EndpointName}") and "*" not in resource


def test_filter_has_no_extra_permissions(template: dict[str, Any]) -> None:
    assert "Policies" not in template["Resources"]["FilterInferencesFunction"]["Properties"]


# ------------------------------------------------------------------------------ bucket


def test_bucket_is_private_encrypted_tls_only_and_sends_events(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["ImageBucket"]["Properties"]
    assert (
        bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"]
        is True
    )
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    policy = template["Resources"]["ImageBucketPolicy"]["Properties"]["PolicyDocument"]
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ------------------------------------------------------------------------------ state machine


def test_state_machine_definition_and_substitutions(template: dict[str, Any]) -> None:
    machines = resources_of(template, "AWS::Serverless::StateMachine")
    assert len(machines) == 1
    properties = next(iter(machines.values()))["Properties"]
    assert (PROJECT / properties["DefinitionUri"]).is_file()
    assert properties["DefinitionUri"] == str(ASL.relative_to(PROJECT))
    substitutions = properties["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders(ASL.read_text()), (
        "every ${...} needs a substitution and back"
    )
    for logical_id in HANDLERS:
        assert substitutions[f"{logical_id}Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    assert substitutions["EndpointName"] == {"Ref": "EndpointName"}
    assert substitutions["ConfidenceThreshold"] == {"Ref": "ConfidenceThreshold"}


def test_state_machine_may_invoke_exactly_the_three_functions(template: dict[str, Any]) -> None:
    machine = template["Resources"]["ImageClassificationStateMachine"]["Properties"]
    invoked = {
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for p in machine["Policies"]
        if "LambdaInvokePolicy" in p
    }
    assert invoked == set(HANDLERS)


def test_asl_holds_no_account_region_or_names() -> None:
    text = ASL.read_text()
    assert not re.search(r"\b\d{12}\b", text), "account id in the ASL"
    assert not re.search(r"\b(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b", text), "region in the ASL"
    assert "arn:aws:lambda" not in text and "scones-" not in text
    for resource in re.findall(r'"Resource":\s*"([^"]+)"', text):
        assert resource.startswith("arn:aws:states:::"), resource


def _matches(pattern: Any, value: Any) -> bool:
    """Enough of EventBridge's pattern matching for our rule: nested keys, lists, prefix, and
    numeric with one comparison (the twin's bridge checks the rule with moto's own matcher)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and _matches(sub, value[key]) for key, sub in pattern.items()
        )
    assert isinstance(pattern, list)
    for option in pattern:
        if isinstance(option, dict) and "prefix" in option:
            if isinstance(value, str) and value.startswith(option["prefix"]):
                return True
        elif isinstance(option, dict) and "numeric" in option:
            operator, bound = option["numeric"]
            assert operator == ">", option
            if isinstance(value, int | float) and value > bound:
                return True
        elif option == value:
            return True
    return False


def _resolve(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict) and set(node) == {"Ref"}:
        return values[node["Ref"]]
    if isinstance(node, dict):
        return {k: _resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, values) for v in node]
    return node


def _input_path(path: str, event: dict[str, Any]) -> Any:
    value: Any = event
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def test_an_upload_under_the_prefix_starts_an_execution_with_the_events_detail(
    template: dict[str, Any],
) -> None:
    machine = template["Resources"]["ImageClassificationStateMachine"]["Properties"]
    rules = [e for e in machine["Events"].values() if e["Type"] == "EventBridgeRule"]
    assert len(rules) == 1
    rule = rules[0]["Properties"]
    s3_event = read_event("s3_object_created.json")
    values = {"ImageBucket": s3_event["detail"]["bucket"]["name"], "IncomingPrefix": "incoming/"}
    pattern = _resolve(rule["Pattern"], values)

    assert _matches(pattern, s3_event)
    # no InputTransformer: its template would insert the key unescaped (docs/sam.md)
    assert "InputTransformer" not in rule and "Input" not in rule
    assert _input_path(rule["InputPath"], s3_event) == read_event("statemachine_rule_input.json")

    elsewhere = json.loads(json.dumps(s3_event))
    elsewhere["detail"]["object"]["key"] = "data_capture/x.jsonl"
    assert not _matches(pattern, elsewhere)
    other_bucket = json.loads(json.dumps(s3_event))
    other_bucket["detail"]["bucket"]["name"] = "someone-else"
    assert not _matches(pattern, other_bucket)
    deleted = {**s3_event, "detail-type": "Object Deleted"}
    assert not _matches(pattern, deleted)
    folder = json.loads(json.dumps(s3_event))  # the console's "Create folder"
    folder["detail"]["object"] |= {"key": "incoming/some-folder/", "size": 0}
    assert not _matches(pattern, folder)


def test_state_machine_logging_follows_execution_logs(template: dict[str, Any]) -> None:
    logging = template["Resources"]["ImageClassificationStateMachine"]["Properties"]["Logging"]
    assert logging["Level"] == {"Fn::If": ["FullExecutionLogs", "ALL", "ERROR"]}
    # states carry image bytes: execution data only when full logs are asked for (or EXPRESS)
    assert logging["IncludeExecutionData"] == {"Fn::If": ["FullExecutionLogs", True, False]}
    group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert group == {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["StateMachineArn"]["Value"] == {"Ref": "ImageClassificationStateMachine"}
    for logical_id in HANDLERS:
        assert outputs[f"{logical_id}Arn"]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    assert outputs["ImageBucketName"]["Value"] == {"Ref": "ImageBucket"}


def test_every_event_file_is_valid_json() -> None:
    files = sorted(EVENTS.glob("*.json"))
    assert len(files) >= 6
    for path in files:
        json.loads(path.read_text())
        assert path.stat().st_size < 4096, f"{path.name}: keep sample events small"


def test_allowed_thresholds_are_json_numbers_for_the_asl(template: dict[str, Any]) -> None:
    """The ASL turns the substituted threshold into a number with States.StringToJson."""
    pattern = template["Parameters"]["ConfidenceThreshold"]["AllowedPattern"]
    assert "States.StringToJson('${ConfidenceThreshold}')" in ASL.read_text()
    for value in ("0.93", "1", "1.00", "0.5", "0.05", ".9", "1.", "01"):
        if re.fullmatch(pattern, value):
            assert 0 < json.loads(value) <= 1, value


@pytest.mark.parametrize("folder", sorted(ALL_HANDLERS.values()))
def test_handlers_never_print(folder: str) -> None:
    """Handlers log structured lines through `logging`; print() could leak events or image data."""
    tree = ast.parse((PROJECT / "functions" / folder / "app.py").read_text())
    prints = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert not prints, f"print() in functions/{folder}/app.py at lines {prints}"
