"""``scones deploy --local``, ``scones invoke``, ``scones run``, ``scones classify``.

Thin command handlers over small functions in this module; every AWS call goes through plain
boto3 clients pointed at the twin (``Settings.aws_env()``), the same calls that work on AWS.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scones.settings import Settings

LOG = logging.getLogger("scones.twin.commands")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})
REVIEW_ERROR = "LowConfidenceError"
CAPTURE_PREFIX = "data_capture"


class CommandError(Exception):
    """A problem the user can act on; the CLI prints its message on one line."""


# --------------------------------------------------------------------------- clients


def twin_clients(settings: Settings, *services: str) -> list[Any]:
    """boto3 clients for ``services`` pointed at the twin (explicit endpoints and credentials)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
    )
    urls = {"s3": settings.s3_url, "sagemaker-runtime": settings.endpoint_url}
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=64,
        s3={"addressing_style": "path"},
    )
    return [
        session.client(name, endpoint_url=urls.get(name, settings.moto_url), config=config)
        for name in services
    ]


def _unreachable(exc: Exception, settings: Settings) -> CommandError:
    return CommandError(
        f"the offline twin is not reachable ({type(exc).__name__}); start it with `scones up`"
        f" (S3 {settings.s3_url}, Step Functions {settings.moto_url})"
    )


# --------------------------------------------------------------------------- deploy


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _ensure_role(iam: Any, name: str) -> str:
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
    from scones.twin.moto_patches import HANDLER_FILE_TAG, LOGICAL_ID_TAG

    config = {
        "Runtime": spec.runtime,
        "Role": role_arn,
        "Handler": spec.handler,
        "Timeout": spec.timeout,
        "MemorySize": spec.memory_size,
        "Environment": {"Variables": spec.environment},
    }
    tags = {HANDLER_FILE_TAG: str(spec.handler_file), LOGICAL_ID_TAG: spec.logical_id}
    code = _zip_folder(spec.code_uri)
    try:
        arn = lam.get_function(FunctionName=spec.name)["Configuration"]["FunctionArn"]
    except lam.exceptions.ResourceNotFoundException:
        created = lam.create_function(
            FunctionName=spec.name, Code={"ZipFile": code}, Tags=tags, **config
        )
        return str(created["FunctionArn"])
    lam.update_function_code(FunctionName=spec.name, ZipFile=code)
    lam.update_function_configuration(FunctionName=spec.name, **config)
    lam.tag_resource(Resource=arn, Tags=tags)
    return str(arn)


def deploy_state_machine(sfn: Any, spec: Any) -> str:
    """Create or update the state machine; return its ARN."""
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == spec.name:
                sfn.update_state_machine(
                    stateMachineArn=machine["stateMachineArn"],
                    definition=spec.definition,
                    roleArn=spec.role_arn,
                )
                return str(machine["stateMachineArn"])
    created = sfn.create_state_machine(
        name=spec.name, definition=spec.definition, roleArn=spec.role_arn, type=spec.sm_type
    )
    return str(created["stateMachineArn"])


def ensure_bucket(s3: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)


def deploy_workflow(settings: Settings, app: Any) -> tuple[dict[str, str], str]:
    """Create or update the functions and the state machine of ``app`` in the twin's moto."""
    lam, sfn, iam = twin_clients(settings, "lambda", "stepfunctions", "iam")
    role_arn = _ensure_role(iam, f"{app.stack_name}-twin-role")
    functions = {
        logical_id: deploy_function(lam, spec, role_arn)
        for logical_id, spec in app.functions.items()
    }
    return functions, deploy_state_machine(sfn, app.state_machine)


def overrides_file(settings: Settings) -> Path:
    """The parameter overrides of the last ``scones deploy --local`` (to restore after a restart)."""
    return settings.home / "bridge" / "parameter_overrides.json"


def restore_workflow(settings: Settings) -> bool:
    """Re-create the last deployment's functions and state machine (moto keeps no state on disk).

    The sfn server calls this when it starts and deployed.json exists, so ``scones down`` /
    ``scones up`` keeps the deployment. Returns False when nothing was deployed yet.
    """
    from scones.twin.template import read_app

    if not settings.deployed_file.exists():
        return False
    try:
        overrides = json.loads(overrides_file(settings).read_text(encoding="utf-8"))
    except FileNotFoundError:
        overrides = {}
    app = read_app(settings.project_root, region=settings.region, parameter_overrides=overrides)
    deploy_workflow(settings, app)
    return True


def default_model(settings: Settings) -> Path:
    """Where ``scones train`` leaves the latest model by default."""
    return settings.home / "model" / "model.tar.gz"


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
    model_path = (model or default_model(settings)).expanduser().resolve()
    if not model_path.is_file():
        raise CommandError(
            f"no model at {model_path}: train one with `scones train` or pass --model PATH"
        )
    import tarfile

    if not tarfile.is_tarfile(model_path):
        raise CommandError(f"{model_path} is not a model.tar.gz (expected a tar archive)")
    (s3,) = twin_clients(settings, "s3")
    try:
        functions, machine_arn = deploy_workflow(settings, app)
        ensure_bucket(s3, app.bucket)
    except (EndpointConnectionError, ConnectionError) as exc:
        raise _unreachable(exc, settings) from None
    except (ClientError, BotoCoreError) as exc:
        raise CommandError(f"deploy failed: {exc}") from None
    capture_uri = f"s3://{app.bucket}/{CAPTURE_PREFIX}"
    register_endpoint(settings, app.endpoint_name, model_path, capture_s3_uri=capture_uri)
    deployed = {
        "stack_name": app.stack_name,
        "bucket": app.bucket,
        "incoming_prefix": app.incoming_prefix,
        "state_machine_arn": machine_arn,
        "endpoint_name": app.endpoint_name,
        "capture_uri": capture_uri,
        "functions": functions,
    }
    rules = [
        {
            "name": rule.name,
            "pattern": rule.pattern,
            "input_transformer": rule.input_transformer,
            "input_path": rule.input_path,
            "input": rule.input,
        }
        for rule in app.state_machine.rules
    ]
    bridge.write_config(
        settings,
        bridge.BridgeConfig(
            bucket=app.bucket,
            prefix=app.incoming_prefix,
            state_machine_arn=machine_arn,
            region=settings.region,
            rules=rules,
            since=_keep_since(bridge.read_config(settings), app.bucket, app.incoming_prefix),
        ),
    )
    _write_json(overrides_file(settings), dict(parameter_overrides or {}))
    _write_json(settings.deployed_file, deployed)
    return deployed


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


# --------------------------------------------------------------------------- invoke


def invoke_local(settings: Settings, logical_id: str, event: Any) -> tuple[Any, bool]:
    """Run one function's handler in-process as ``sam local invoke`` would; (payload, is_error)."""
    from scones.twin import lambda_runtime
    from scones.twin.template import read_app

    app = read_app(settings.project_root, region=settings.region)
    spec = app.function(logical_id)
    os.environ.update(settings.aws_env())
    lambda_runtime.apply_environment(spec.environment)
    handler = lambda_runtime.load_handler(spec.handler_file, spec.handler_name)
    context = lambda_runtime.LambdaContext(
        function_name=spec.name,
        memory_limit_in_mb=spec.memory_size,
        timeout_s=spec.timeout,
        region=settings.region,
    )
    result = lambda_runtime.invoke(handler, event, context)
    return result.payload, result.is_error


def _read_json_arg(value: str) -> Any:
    """JSON given inline, as a file path, or ``-`` for standard input."""
    if value == "-":
        text = sys.stdin.read()
    elif value.lstrip().startswith(("{", "[", '"')) or not Path(value).exists():
        text = value
    else:
        text = Path(value).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"not valid JSON (inline or a file path): {value!r}: {exc.msg}"
        ) from None


# --------------------------------------------------------------------------- run


@dataclass
class ExecutionOutcome:
    """How one execution ended."""

    arn: str
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


def describe_outcome(sfn: Any, arn: str) -> ExecutionOutcome:
    """Describe one execution (RUNNING included)."""
    info = sfn.describe_execution(executionArn=arn)
    output = json.loads(info["output"]) if info.get("output") else None
    return ExecutionOutcome(arn, info["status"], output, info.get("error"), info.get("cause"))


def wait_execution(sfn: Any, arn: str, timeout_s: float, poll_s: float = 0.02) -> ExecutionOutcome:
    """Poll until the execution ends or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = describe_outcome(sfn, arn)
        if outcome.status != "RUNNING":
            return outcome
        if time.monotonic() > deadline:
            raise CommandError(f"execution still running after {timeout_s:.0f}s: {arn}")
        time.sleep(poll_s)
        poll_s = min(0.25, poll_s * 1.5)


def run_execution(settings: Settings, payload: Any, timeout_s: float) -> ExecutionOutcome:
    """Start one execution of the deployed state machine with a unique name and wait for it."""
    from botocore.exceptions import EndpointConnectionError

    deployed = read_deployed(settings)
    (sfn,) = twin_clients(settings, "stepfunctions")
    name = f"run-{datetime.now(tz=UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    try:
        arn = sfn.start_execution(
            stateMachineArn=deployed["state_machine_arn"], name=name, input=json.dumps(payload)
        )["executionArn"]
        return wait_execution(sfn, arn, timeout_s)
    except EndpointConnectionError as exc:
        raise _unreachable(exc, settings) from None


# --------------------------------------------------------------------------- classify


@dataclass
class ImageResult:
    """The fate of one image: classified (label), review, or failed (error)."""

    key: str
    outcome: str  # "classified" | "review" | "failed"
    label: int | None = None
    class_name: str | None = None
    confidence: float | None = None
    error: str | None = None
    cause: str | None = None
    execution_arn: str | None = None


@dataclass
class ClassifyReport:
    """Everything ``scones classify`` found, with the per-outcome counts."""

    source: str
    bucket: str
    prefix: str
    results: list[ImageResult] = field(default_factory=list)
    skipped_files: int = 0
    seconds: float = 0.0
    describe_calls: int = 0

    def counts(self) -> dict[str, Any]:
        classified = Counter(
            r.class_name or str(r.label) for r in self.results if r.outcome == "classified"
        )
        failed = Counter(r.error or "unknown" for r in self.results if r.outcome == "failed")
        review = sum(1 for r in self.results if r.outcome == "review")
        return {
            "classified": dict(sorted(classified.items())),
            "review": review,
            "failed": dict(sorted(failed.items())),
            "total": len(self.results),
        }

    def to_json(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "source": self.source,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "seconds": round(self.seconds, 3),
            "executions_per_s": round(len(self.results) / self.seconds, 2)
            if self.seconds
            else None,
            "skipped_files": self.skipped_files,
            "describe_calls": self.describe_calls,
            **counts,
            "items": [r.__dict__ for r in self.results],
        }


def _interpret(key: str, outcome: ExecutionOutcome, classes: list[str]) -> ImageResult:
    result = ImageResult(key=key, outcome="failed", execution_arn=outcome.arn)
    if outcome.status == "SUCCEEDED":
        out = outcome.output if isinstance(outcome.output, dict) else {}
        error = out.get("error") or out.get("Error")
        if error == REVIEW_ERROR or out.get("review") or out.get("status") == "review":
            result.outcome, result.error = "review", REVIEW_ERROR
            result.cause = out.get("cause") or out.get("Cause")
        elif "label" in out:
            result.outcome = "classified"
            result.label = int(out["label"])
            result.class_name = classes[result.label] if 0 <= result.label < len(classes) else None
            result.confidence = float(out.get("confidence", 0.0))
        else:
            result.error, result.cause = "UnexpectedOutput", json.dumps(out)[:200]
    elif outcome.error == REVIEW_ERROR:
        result.outcome, result.error, result.cause = "review", REVIEW_ERROR, outcome.cause
    else:
        result.error = outcome.error or outcome.status
        result.cause = outcome.cause
    if result.outcome == "review" and result.cause is None:
        result.cause = outcome.cause
    result.cause = error_message(result.cause)
    return result


def error_message(cause: str | None) -> str | None:
    """The ``errorMessage`` of a Lambda error payload passed on as a Cause, else the cause."""
    if cause and cause.startswith("{"):
        try:
            data = json.loads(cause)
        except json.JSONDecodeError:
            return cause
        if isinstance(data, dict) and isinstance(data.get("errorMessage"), str):
            return data["errorMessage"]
    return cause


def load_classes(settings: Settings, endpoint_name: str) -> list[str]:
    """Class names of the model registered under ``endpoint_name`` (empty if unknown)."""
    path = settings.endpoints_dir / endpoint_name / "model" / "classes.json"
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["classes"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return []


def _local_images(folder: Path) -> tuple[list[Path], int]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, len(files) - len(images)


def _upload(
    s3: Any, bucket: str, prefix: str, folder: Path, files: list[Path], progress: bool
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def put(path: Path) -> None:
        s3.put_object(
            Bucket=bucket, Key=prefix + path.relative_to(folder).as_posix(), Body=path.read_bytes()
        )

    with (
        ThreadPoolExecutor(max_workers=8) as pool,
        tqdm(
            total=len(files), desc="upload", unit="img", disable=not progress, file=sys.stderr
        ) as bar,
    ):
        for _ in pool.map(put, files):
            bar.update(1)


def classify(
    settings: Settings,
    source: str,
    *,
    concurrency: int = 32,
    timeout_s: float = 600.0,
    progress: bool = True,
    rerun: bool = False,
    on_result: Callable[[ImageResult], None] | None = None,
) -> ClassifyReport:
    """Run one execution per image under ``source`` (s3://bucket/prefix or a local folder).

    Each object version runs once: an execution that already exists for it (started by the
    bridge or an earlier classify) is reported, not repeated, unless ``rerun`` is set.
    """
    from botocore.exceptions import EndpointConnectionError
    from tqdm import tqdm

    from scones.twin import bridge

    deployed = read_deployed(settings)
    config = bridge.read_config(settings)
    if config is None:
        raise CommandError("the bridge configuration is missing: run `scones deploy --local` again")
    s3, sfn = twin_clients(settings, "s3", "stepfunctions")
    skipped = 0
    started_at = time.perf_counter()
    try:
        if source.startswith("s3://"):
            bucket, _, prefix = source[5:].partition("/")
            if not bucket:
                raise CommandError(f"not an S3 URI: {source!r} (expected s3://bucket/prefix)")
        else:
            folder = Path(source).expanduser()
            if not folder.is_dir():
                raise CommandError(f"not a folder or s3:// URI: {source}")
            files, skipped = _local_images(folder)
            if not files:
                raise CommandError(
                    f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}"
                )
            bucket = deployed["bucket"]
            run_id = f"{datetime.now(tz=UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
            prefix = f"{deployed['incoming_prefix']}{run_id}/"
            _upload(s3, bucket, prefix, folder, files, progress)
        objects = [o for o in bridge.list_objects(s3, bucket, prefix) if not o.key.endswith("/")]
        if not objects:
            raise CommandError(f"no objects under s3://{bucket}/{prefix}")
        report = ClassifyReport(source=source, bucket=bucket, prefix=prefix, skipped_files=skipped)
        classes = load_classes(settings, deployed["endpoint_name"])
        # Classify may name another bucket or prefix: start with the deployed rule's input anyway.
        run_config = bridge.BridgeConfig(
            bucket=bucket,
            prefix=prefix,
            state_machine_arn=deployed["state_machine_arn"],
            region=config.region,
            rules=[dict(r, pattern={}) for r in config.rules[:1]]
            or [{"name": "classify", "pattern": {}}],
            since=config.since,
        )
        suffix = uuid.uuid4().hex[:8] if rerun else ""
        pending = list(objects)
        in_flight: dict[str, tuple[str, float]] = {}
        with tqdm(
            total=len(objects), desc="classify", unit="img", disable=not progress, file=sys.stderr
        ) as bar:
            while pending or in_flight:
                while pending and len(in_flight) < concurrency:
                    obj = pending.pop(0)
                    arn, _ = bridge.start_for_object(sfn, run_config, obj, suffix)
                    if arn is None:  # cannot happen: the pattern is empty
                        raise CommandError(f"no rule matches s3://{bucket}/{obj.key}")
                    in_flight[arn] = (obj.key, time.monotonic())
                time.sleep(0.005)
                # Executions end roughly in start order: describe the oldest first and stop at
                # the first one still running (about one DescribeExecution per image).
                for arn, (key, since) in list(in_flight.items()):
                    outcome = describe_outcome(sfn, arn)
                    report.describe_calls += 1
                    if outcome.status == "RUNNING":
                        if time.monotonic() - since <= timeout_s:
                            break
                        outcome = ExecutionOutcome(
                            arn,
                            "TIMED_OUT",
                            error="ClassifyTimeout",
                            cause=f"still running after {timeout_s:.0f}s",
                        )
                    del in_flight[arn]
                    result = _interpret(key, outcome, classes)
                    report.results.append(result)
                    if on_result:
                        on_result(result)
                    bar.update(1)
    except EndpointConnectionError as exc:
        raise _unreachable(exc, settings) from None
    report.seconds = time.perf_counter() - started_at
    counts = report.counts()
    ended = sum(counts["classified"].values()) + counts["review"] + sum(counts["failed"].values())
    if ended != len(objects) or len(report.results) != len(objects):
        raise CommandError(f"count check failed: {len(objects)} images, {ended} outcomes")
    return report


def format_report(report: ClassifyReport) -> str:
    """The summary table ``scones classify`` prints."""
    counts = report.counts()
    total = counts["total"] or 1
    rows: list[tuple[str, int]] = [(f"classified: {k}", v) for k, v in counts["classified"].items()]
    rows.append((f"sent to review ({REVIEW_ERROR})", counts["review"]))
    rows.extend((f"failed: {k}", v) for k, v in counts["failed"].items())
    width = max(len(r[0]) for r in rows + [("outcome", 0)])
    lines = [f"{'outcome':<{width}}  {'images':>7}  {'share':>6}", "-" * (width + 17)]
    lines += [f"{name:<{width}}  {n:>7}  {n / total:>6.1%}" for name, n in rows]
    lines.append("-" * (width + 17))
    lines.append(f"{'total':<{width}}  {counts['total']:>7}  {'':>6}")
    rate = counts["total"] / report.seconds if report.seconds else 0.0
    lines.append(
        f"source s3://{report.bucket}/{report.prefix}  ({report.seconds:.1f}s, {rate:.1f} images/s)"
    )
    if report.skipped_files:
        lines.append(f"skipped {report.skipped_files} non-image file(s)")
    failed = [r for r in report.results if r.outcome == "failed"][:5]
    for r in failed:
        lines.append(f"  failed {r.key}: {r.error}: {(r.cause or '')[:120]}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


BYTES_FIELDS = frozenset({"image_data"})


def redact(value: Any) -> Any:
    """``value`` with image bytes (``image_data``) replaced by a short note, for printing."""
    if isinstance(value, dict):
        return {
            k: f"<{len(v)} base64 characters>"
            if k in BYTES_FIELDS and isinstance(v, str)
            else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _error_message(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, CommandError) else str(exc)


def _user_errors() -> tuple[type[Exception], ...]:
    from scones.endpoint.registry import (
        InvalidCaptureConfigError,
        InvalidEndpointNameError,
        InvalidModelArchiveError,
    )
    from scones.twin import bridge, lambda_runtime, template

    return (
        CommandError,
        template.TemplateError,
        lambda_runtime.HandlerLoadError,
        lambda_runtime.ConflictingEnvironmentError,
        bridge.UnsupportedPatternError,
        bridge.InvalidInputTransformError,
        InvalidModelArchiveError,
        InvalidEndpointNameError,
        InvalidCaptureConfigError,
    )


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        errors = _user_errors()
        try:
            return func(args)
        except errors as exc:
            print(f"scones {args.command}: {_error_message(exc)}", file=sys.stderr)
            return 2 if isinstance(exc, CommandError) else 1

    return handler


def _cmd_deploy(args: argparse.Namespace) -> int:
    if not args.local:
        print(
            "To deploy to AWS use the SAM CLI (needs AWS credentials):\n"
            "  sam build && sam deploy --guided\n"
            "To deploy to the offline twin on this machine:\n"
            "  scones up && scones deploy --local [--model PATH]"
        )
        return 0
    settings = Settings.from_env()
    from scones.twin.template import parse_parameter_overrides

    overrides = parse_parameter_overrides(args.parameter_overrides)
    deployed = deploy_local(settings, Path(args.model) if args.model else None, overrides)
    print(f"deployed stack {deployed['stack_name']} to the offline twin ({settings.deployed_file})")
    for logical_id, arn in deployed["functions"].items():
        print(f"  function       {logical_id:<28} {arn}")
    print(f"  state machine  {deployed['state_machine_arn']}")
    print(
        f"  bucket         s3://{deployed['bucket']}  (uploads under {deployed['incoming_prefix']} start executions)"
    )
    print(f"  endpoint       {deployed['endpoint_name']}  (capture to {deployed['capture_uri']})")
    return 0


def _cmd_invoke(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    event = _read_json_arg(args.event) if args.event else {}
    payload, is_error = invoke_local(settings, args.function, event)
    if is_error:
        shown = {"errorType": payload["errorType"], "errorMessage": payload["errorMessage"]}
        print(json.dumps(shown))
        return 1
    shown = payload if args.raw else redact(payload)
    print(json.dumps(shown, indent=2) if args.pretty else json.dumps(shown))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    payload = _read_json_arg(args.input)
    outcome = run_execution(settings, payload, args.timeout)
    if outcome.status == "SUCCEEDED":
        print(json.dumps(outcome.output if args.raw else redact(outcome.output), indent=2))
        return 0
    print(
        json.dumps(
            {
                "status": outcome.status,
                "error": outcome.error,
                "cause": outcome.cause,
                "executionArn": outcome.arn,
            },
            indent=2,
        )
    )
    print(
        f"execution {outcome.status}: {outcome.error}: {error_message(outcome.cause)}",
        file=sys.stderr,
    )
    return 1


def _cmd_classify(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    report = classify(
        settings,
        args.source,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        progress=not args.json and sys.stderr.isatty() or args.progress,
        rerun=args.rerun,
    )
    if args.json:
        _print_json(report.to_json())
    else:
        print(format_report(report))
    return 0


DEPLOY_HELP = """\
Deploy the SAM application to the offline twin (--local), exactly as template.yaml and
samconfig.toml describe it: the Lambda functions (bound to the handlers in functions/), the
state machine (statemachine/*.asl.json with its DefinitionSubstitutions), the image bucket,
and the model behind the SageMaker endpoint, with Data Capture to s3://<bucket>/data_capture.
Re-running updates everything in place. Writes $SCONES_HOME/deployed.json.

Without --local it prints how to deploy to AWS with the SAM CLI.
"""

INVOKE_HELP = """\
Invoke one Lambda function of template.yaml in this process, like `sam local invoke` but
without Docker: the function's Environment from the template and the twin's AWS settings
(local S3 and endpoint) are in effect. Prints the result JSON, or the error as AWS reports
it ({"errorType", "errorMessage"}) and exits 1.

example: scones invoke SerializeImageFunction -e events/serialize_image.json
"""

RUN_HELP = """\
Start one execution of the deployed state machine (unique name), wait for it, and print its
output; a failed execution prints its error name and cause and exits 1.

example: scones run --input '{"s3_bucket": "scones-images-local", "s3_key": "incoming/a.png"}'
"""

CLASSIFY_HELP = """\
Classify every image under an S3 prefix (s3://bucket/prefix) or a local folder through the
deployed workflow: one execution per image, many in flight, then a summary of how each
image ended: classified (per class name from the model's classes.json), sent to review
(LowConfidenceError) or failed (with the error name). Every image ends in exactly one row.

A local folder's images (.png .jpg .jpeg .gif .bmp .webp) are uploaded first under
<incoming prefix><run-id>/ in the deployed bucket. The S3 bridge sees those uploads too; both
start the execution under the same deterministic name, so each image runs exactly once.
For an s3:// source, images that already ran (same key and ETag) report that execution's
result; --rerun runs them again (e.g. after deploying a new model).
"""


def register(subparsers: Any) -> None:
    """Add deploy / invoke / run / classify to the ``scones`` CLI."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "deploy",
        help="deploy the SAM app (--local: to the offline twin)",
        description=DEPLOY_HELP,
        formatter_class=fmt,
    )
    p.add_argument(
        "--local", action="store_true", help="deploy to the offline twin (scones up first)"
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="model.tar.gz to serve (default: $SCONES_HOME/model/model.tar.gz)",
    )
    p.add_argument(
        "--parameter-overrides",
        nargs="+",
        metavar="KEY=VALUE",
        help="template parameters, as for `sam deploy` (win over samconfig.toml)",
    )
    p.set_defaults(func=_guarded(_cmd_deploy))

    p = subparsers.add_parser(
        "invoke",
        help="invoke one Lambda function locally (no Docker)",
        description=INVOKE_HELP,
        formatter_class=fmt,
    )
    p.add_argument("function", metavar="FunctionLogicalId", help="logical id in template.yaml")
    p.add_argument(
        "-e",
        "--event",
        metavar="FILE|JSON",
        help="event JSON, a file holding it, or - for stdin (default: {})",
    )
    p.add_argument("--pretty", action="store_true", help="indent the result JSON")
    p.add_argument("--raw", action="store_true", help="print image_data too (default: its size)")
    p.set_defaults(func=_guarded(_cmd_invoke))

    p = subparsers.add_parser(
        "run",
        help="run one execution of the deployed state machine",
        description=RUN_HELP,
        formatter_class=fmt,
    )
    p.add_argument(
        "--input", required=True, metavar="JSON|FILE", help="execution input: JSON, a file, or -"
    )
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait (default: %(default)s)"
    )
    p.add_argument("--raw", action="store_true", help="print image_data too (default: its size)")
    p.set_defaults(func=_guarded(_cmd_run))

    p = subparsers.add_parser(
        "classify",
        help="classify a folder or S3 prefix of images through the workflow",
        description=CLASSIFY_HELP,
        formatter_class=fmt,
    )
    p.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix or a local folder")
    p.add_argument(
        "--concurrency", type=int, default=32, help="executions in flight (default: %(default)s)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds one execution may run (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print a machine-readable JSON report")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="run images again that already ran (default: report their earlier execution)",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="show progress bars even when stderr is not a terminal",
    )
    p.set_defaults(func=_guarded(_cmd_classify))
