"""``scones deploy --local``: put the SAM application and the model into the offline twin.

Reads template.yaml + samconfig.toml (``scones.twin.template``), then creates or updates the
functions, the state machine and the bucket through plain boto3 calls, registers the model
behind the endpoint, tells the S3 bridge about the rule, and writes ``deployed.json``.
``restore_workflow`` re-creates the last deployment when the sfn server starts.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from scones.errors import CommandError
from scones.settings import Settings
from scones.twin.clients import twin_clients, unreachable

CAPTURE_PREFIX = "data_capture"


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def ensure_role(iam: Any, name: str) -> str:
    """The ARN of the IAM role ``name`` that Lambda and Step Functions may assume (created once)."""
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"])


def deploy_function(lam: Any, spec: Any, role_arn: str) -> str:
    """Create or update one function in the twin; return its ARN."""
    from scones.twin.lambda_runtime import (
        HANDLER_FILE_TAG,
        LAYERS_TAG,
        LOGICAL_ID_TAG,
        layers_tag,
    )

    config = {
        "Runtime": spec.runtime,
        "Role": role_arn,
        "Handler": spec.handler,
        "Timeout": spec.timeout,
        "MemorySize": spec.memory_size,
        "Environment": {"Variables": spec.environment},
    }
    # informational only: the twin never runs a file a tag names (see moto_binding)
    tags = {**spec.tags, HANDLER_FILE_TAG: str(spec.handler_file), LOGICAL_ID_TAG: spec.logical_id}
    tags[LAYERS_TAG] = layers_tag(spec.layers)
    code = _zip_folder(spec.code_uri)
    try:
        arn = lam.get_function(FunctionName=spec.name)["Configuration"]["FunctionArn"]
    except lam.exceptions.ResourceNotFoundException:
        created = lam.create_function(
            FunctionName=spec.name, Code={"ZipFile": code}, Tags=tags, **config
        )
        _bind_here(spec, str(created.get("CodeSha256") or ""))
        return str(created["FunctionArn"])
    updated = lam.update_function_code(FunctionName=spec.name, ZipFile=code)
    lam.update_function_configuration(FunctionName=spec.name, **config)
    lam.tag_resource(Resource=arn, Tags=tags)
    _bind_here(spec, str(updated.get("CodeSha256") or ""))
    return str(arn)


def binding_of(spec: Any, code_sha256: str | None) -> Any:
    """The ``moto_binding.Binding`` of a template function deployed with this code."""
    from scones.twin.moto_binding import Binding

    return Binding(Path(spec.handler_file), tuple(Path(p) for p in spec.layers), code_sha256)


def _bind_here(spec: Any, code_sha256: str) -> None:
    """Bind in this process too when moto's Lambda runs here (tests, the server's restore)."""
    import sys

    binding = sys.modules.get("scones.twin.moto_binding")
    if binding is not None and binding.installed():
        binding.bind(spec.name, binding_of(spec, code_sha256 or None))


def write_function_bindings(settings: Settings, lam: Any, app: Any) -> None:
    """Record which handler file each deployed function runs, for the twin's server to read
    (``moto_binding.write_bindings``); with the code hash deploy uploaded."""
    from scones.twin.moto_binding import write_bindings

    bindings = {}
    for spec in app.functions.values():
        sha = lam.get_function(FunctionName=spec.name)["Configuration"].get("CodeSha256")
        bindings[spec.name] = binding_of(spec, str(sha) if sha else None)
    write_bindings(settings.home, bindings)


def _existing_machine(sfn: Any, name: str) -> dict[str, Any] | None:
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                return dict(machine)
    return None


def deploy_state_machine(sfn: Any, spec: Any) -> str:
    """Create or update the state machine (type, logging and tags too); return its ARN.

    A machine's type cannot change: as CloudFormation does when ``WorkflowType`` changes, one of
    the other type is replaced (deleted, with its executions, and created again).
    """
    logging = {"loggingConfiguration": spec.logging} if spec.logging else {}
    machine = _existing_machine(sfn, spec.name)
    if machine is not None:
        arn = str(machine["stateMachineArn"])
        if machine.get("type", "STANDARD") == spec.sm_type:
            sfn.update_state_machine(
                stateMachineArn=arn, definition=spec.definition, roleArn=spec.role_arn, **logging
            )
            if spec.tags:
                sfn.tag_resource(resourceArn=arn, tags=_sfn_tags(spec.tags))
            return arn
        sfn.delete_state_machine(stateMachineArn=arn)
    created = sfn.create_state_machine(
        name=spec.name,
        definition=spec.definition,
        roleArn=spec.role_arn,
        type=spec.sm_type,
        tags=_sfn_tags(spec.tags),
        **logging,
    )
    return str(created["stateMachineArn"])


def _sfn_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)


def deploy_workflow(settings: Settings, app: Any) -> tuple[dict[str, str], str]:
    """Create or update the functions and the state machine of ``app`` in the twin's moto."""
    lam, sfn, iam = twin_clients(settings, "lambda", "stepfunctions", "iam")
    role_arn = ensure_role(iam, f"{app.stack_name}-twin-role")
    functions = {
        logical_id: deploy_function(lam, spec, role_arn)
        for logical_id, spec in app.functions.items()
    }
    write_function_bindings(settings, lam, app)
    return functions, deploy_state_machine(sfn, app.state_machine)


def overrides_file(settings: Settings) -> Path:
    """The parameter overrides of the last ``scones deploy --local`` (to restore after a restart)."""
    return settings.home / "bridge" / "parameter_overrides.json"


def deployed_overrides(settings: Settings) -> dict[str, str]:
    """The ``--parameter-overrides`` of the last ``scones deploy --local`` ({} before any)."""
    try:
        return dict(json.loads(overrides_file(settings).read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def restore_workflow(settings: Settings) -> bool:
    """Re-create the last deployment's functions and state machine (moto keeps no state on disk).

    The sfn server calls this when it starts and deployed.json exists, so ``scones down`` /
    ``scones up`` keeps the deployment. Returns False when nothing was deployed yet.
    """
    from scones.twin.template import read_app

    if not settings.deployed_file.exists():
        return False
    overrides = deployed_overrides(settings)
    app = read_app(settings.project_root, region=settings.region, parameter_overrides=overrides)
    deploy_workflow(settings, app)
    return True


def default_model(settings: Settings) -> Path:
    """Where ``scones train`` leaves the latest model by default."""
    return settings.home / "model" / "model.tar.gz"


def _model_archive(settings: Settings, model: Path | None) -> Path:
    """The model to serve, checked to be a tar archive (a ``CommandError`` says what to do)."""
    import tarfile

    path = (model or default_model(settings)).expanduser().resolve()
    if not path.is_file():
        raise CommandError(
            f"no model at {path}: train one with `scones train` or pass --model PATH"
        )
    if not tarfile.is_tarfile(path):
        raise CommandError(f"{path} is not a model.tar.gz (expected a tar archive)")
    return path


def deploy_local(
    settings: Settings, model: Path | None, parameter_overrides: dict[str, str] | None = None
) -> dict[str, Any]:
    """Deploy template.yaml + samconfig.toml + the model to the twin; return deployed.json's data."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    from scones.endpoint.registry import register_endpoint
    from scones.twin import bridge, lambda_runtime
    from scones.twin.template import read_app

    app = read_app(
        settings.project_root, region=settings.region, parameter_overrides=parameter_overrides
    )
    lambda_runtime.merge_environments({f.logical_id: f.environment for f in app.functions.values()})
    rules = [_rule_json(rule) for rule in app.state_machine.rules]
    for rule in rules:
        bridge.check_pattern(rule["pattern"])
    model_path = _model_archive(settings, model)
    (s3,) = twin_clients(settings, "s3")
    try:
        functions, machine_arn = deploy_workflow(settings, app)
        ensure_bucket(s3, app.bucket)
    except (EndpointConnectionError, ConnectionError) as exc:
        raise unreachable(exc, settings) from None
    except (ClientError, BotoCoreError) as exc:
        raise CommandError(f"deploy failed: {exc}") from None
    capture_uri = f"s3://{app.bucket}/{CAPTURE_PREFIX}"
    register_endpoint(settings, app.endpoint_name, model_path, capture_s3_uri=capture_uri)
    since = _keep_since(bridge.read_config(settings), app.bucket, app.incoming_prefix)
    config = bridge.BridgeConfig(
        bucket=app.bucket,
        prefix=app.incoming_prefix,
        state_machine_arn=machine_arn,
        region=settings.region,
        rules=rules,
        since=since,
    )
    bridge.write_config(settings, config)
    deployed = {
        "stack_name": app.stack_name,
        "bucket": app.bucket,
        "incoming_prefix": app.incoming_prefix,
        "state_machine_arn": machine_arn,
        "endpoint_name": app.endpoint_name,
        "capture_uri": capture_uri,
        "functions": functions,
    }
    _write_json(overrides_file(settings), dict(parameter_overrides or {}))
    _write_json(settings.deployed_file, deployed)
    return deployed


def _rule_json(rule: Any) -> dict[str, Any]:
    """One EventBridge rule of the template as the bridge configuration stores it."""
    return {
        "name": rule.name,
        "pattern": rule.pattern,
        "input_transformer": rule.input_transformer,
        "input_path": rule.input_path,
        "input": rule.input,
    }


def _keep_since(previous: Any, bucket: str, prefix: str) -> datetime:
    """A redeploy keeps watching from the first deploy (uploads in between are not lost)."""
    from scones.twin import bridge

    if previous is not None and (previous.bucket, previous.prefix) == (bucket, prefix):
        return previous.since  # type: ignore[no-any-return]
    return bridge.deployed_since()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_deployed(settings: Settings) -> dict[str, Any]:
    """deployed.json, or a CommandError telling the user to deploy first."""
    try:
        return dict(json.loads(settings.deployed_file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CommandError(
            f"nothing is deployed to the twin ({settings.deployed_file} is missing):"
            " run `scones deploy --local`"
        ) from None
