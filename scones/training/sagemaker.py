"""``scones sagemaker ...``: train and host the model on Amazon SageMaker with plain boto3.

Subcommands (each a thin wrapper over the typed functions below, which take injected clients):

* ``upload``: the ETL output folder -> ``s3://BUCKET/PREFIX/data/`` (idempotent, see ``scones.data.etl``).
* ``train``: upload ``sourcedir.tar.gz`` (``ml/train.py`` + ``serving/``) and run it as a training
  job in AWS's PyTorch training container (script mode: ``sagemaker_program`` and
  ``sagemaker_submit_directory`` hyperparameters); wait with progress; print the model's S3 URI.
* ``deploy``: model (PyTorch inference container, ``code/inference.py`` from ``model.tar.gz``),
  endpoint config with Data Capture (100 % of input and output to
  ``s3://BUCKET/PREFIX/data_capture``) and endpoint; wait; print the endpoint name for
  ``sam deploy --parameter-overrides EndpointName=...``.
* ``delete``: remove the endpoint, its endpoint config and its model.

Both training channels (``train``, ``test``) point at the uploaded ETL folder, which holds
``train.lst``, ``test.lst``, ``classes.json`` and the PNGs; ``train.py`` reads the manifest it needs.
The role ARN comes from ``--role`` or ``$SCONES_SAGEMAKER_ROLE``; nothing account-specific is
hard-coded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROLE_ENV = "SCONES_SAGEMAKER_ROLE"
DEFAULT_ENDPOINT = "scones-image-classifier"
DEFAULT_VARIANT = "AllTraffic"
DEFAULT_PREFIX = "scones"
CAPTURE_PREFIX = "data_capture"
FRAMEWORK_VERSION = "2.5.1"
PY_VERSION = "py311"
CUDA_VERSION = "cu124"
OS_VERSION = "ubuntu22.04"
DLC_ACCOUNT = "763104351884"
# Regions whose Deep Learning Containers live in another account (the rest use DLC_ACCOUNT).
DLC_ACCOUNTS = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-3": "364406365360",
    "eu-south-1": "692866216735",
    "me-south-1": "217643126080",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "us-gov-west-1": "442386744353",
}
SOURCEDIR_FILES = ("train.py", "serving/inference.py")
# Installed by the training container before train.py runs: parity check and latency in the report.
TRAINING_REQUIREMENTS = "onnxruntime>=1.18\n"
TERMINAL_TRAINING = {"Completed", "Failed", "Stopped"}


class SageMakerError(Exception):
    """Base class of the SageMaker path's errors (one-line messages)."""


class MissingRoleError(SageMakerError):
    """No execution role ARN was given."""


class TrainingJobFailedError(SageMakerError):
    """The training job ended in Failed or Stopped."""


class EndpointFailedError(SageMakerError):
    """The endpoint did not reach InService."""


class EndpointExistsError(SageMakerError):
    """An endpoint of that name already exists."""


@dataclass(frozen=True)
class S3Location:
    """Where the project's objects live: ``s3://bucket/prefix/...``."""

    bucket: str
    prefix: str = DEFAULT_PREFIX

    def uri(self, *parts: str) -> str:
        """``s3://bucket/prefix/part/part``."""
        key = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return f"s3://{self.bucket}/{key}"

    def key(self, *parts: str) -> str:
        """The key under the prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


def _is_gpu(instance_type: str) -> bool:
    family = instance_type.removeprefix("ml.").split(".", 1)[0]
    return family.startswith(("p", "g"))


def image_uri(
    kind: str,
    region: str,
    instance_type: str,
    *,
    framework_version: str = FRAMEWORK_VERSION,
    py_version: str = PY_VERSION,
) -> str:
    """URI of AWS's PyTorch ``training`` or ``inference`` container for the region and instance."""
    if kind not in ("training", "inference"):
        raise ValueError(f"kind must be training or inference, got {kind!r}")
    account = DLC_ACCOUNTS.get(region, DLC_ACCOUNT)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    if _is_gpu(instance_type):
        tag = f"{framework_version}-gpu-{py_version}-{CUDA_VERSION}-{OS_VERSION}-sagemaker"
    else:
        tag = f"{framework_version}-cpu-{py_version}-{OS_VERSION}-sagemaker"
    return f"{account}.dkr.ecr.{region}.{domain}/pytorch-{kind}:{tag}"


def build_sourcedir(ml_dir: Path | None = None) -> bytes:
    """``sourcedir.tar.gz`` for script mode: train.py, serving/, requirements.txt (deterministic)."""
    from scones.training.script import source_dir

    ml_dir = ml_dir or source_dir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))

        for rel in SOURCEDIR_FILES:
            add(rel, (ml_dir / rel).read_bytes())
        add("requirements.txt", TRAINING_REQUIREMENTS.encode())
    return buf.getvalue()


def upload_sourcedir(s3: Any, where: S3Location, job_name: str) -> str:
    """Upload the sourcedir tarball for ``job_name``; return its S3 URI."""
    key = where.key("code", job_name, "sourcedir.tar.gz")
    s3.put_object(Bucket=where.bucket, Key=key, Body=build_sourcedir())
    return f"s3://{where.bucket}/{key}"


def upload_data(s3: Any, data_dir: Path, where: S3Location, *, progress: bool = True) -> str:
    """Upload the ETL output folder to ``s3://bucket/prefix/data/`` (idempotent); return its URI."""
    from scones.data.etl import upload_tree

    if not (data_dir / "train.lst").is_file():
        raise SageMakerError(f"{data_dir} has no train.lst; run `scones etl --output {data_dir}`")
    files = [p for p in data_dir.rglob("*") if p.is_file() and not p.name.endswith(".part")]
    result = upload_tree(s3, data_dir, files, where.bucket, where.key("data"), progress=progress)
    print(f"uploaded {result.uploaded}, unchanged {result.skipped} -> {where.uri('data')}")
    return where.uri("data") + "/"


def timestamp(now: datetime | None = None) -> str:
    """A name suffix such as ``20261127-184405``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def training_job_request(
    *,
    job_name: str,
    role_arn: str,
    image: str,
    data_uri: str,
    sourcedir_uri: str,
    output_uri: str,
    region: str,
    instance_type: str,
    hyperparameters: dict[str, int | float | str],
    max_runtime_s: int = 3600,
    volume_gb: int = 10,
    spot: bool = False,
) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request that runs ``train.py`` in script mode."""

    def channel(name: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": data_uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "InputMode": "File",
        }

    # Values are JSON, as the SageMaker Python SDK writes them: the training toolkit json-decodes
    # each one (so "50" becomes 50 and '"train.py"' becomes train.py).
    hp = {str(k): json.dumps(v) for k, v in hyperparameters.items()}
    hp.update(
        {
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(sourcedir_uri),
            "sagemaker_region": json.dumps(region),
            "sagemaker_container_log_level": "20",
        }
    )
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        "HyperParameters": hp,
        "InputDataConfig": [channel("train"), channel("test")],
        "OutputDataConfig": {"S3OutputPath": output_uri},
        "ResourceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
        "Tags": [{"Key": "project", "Value": "scones"}],
    }
    if spot:
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = max_runtime_s * 2
    return request


def wait_for_training_job(
    sm: Any,
    job_name: str,
    *,
    poll_s: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> dict[str, Any]:
    """Poll until the job ends; return its description or raise ``TrainingJobFailedError``."""
    from tqdm import tqdm

    last = ""
    with tqdm(desc=f"training {job_name}", unit="poll", disable=not progress) as bar:
        while True:
            desc = sm.describe_training_job(TrainingJobName=job_name)
            status = desc["TrainingJobStatus"]
            state = f"{status}/{desc.get('SecondaryStatus', '')}"
            if state != last:
                bar.set_postfix_str(state)
                last = state
            bar.update(1)
            if status in TERMINAL_TRAINING:
                break
            sleep(poll_s)
    if status != "Completed":
        reason = desc.get("FailureReason", "no reason given")
        raise TrainingJobFailedError(f"training job {job_name} {status}: {reason}")
    return dict(desc)


def model_request(
    *, model_name: str, role_arn: str, image: str, model_data: str, region: str
) -> dict[str, Any]:
    """``CreateModel``: the PyTorch inference container loading ``code/inference.py``."""
    return {
        "ModelName": model_name,
        "ExecutionRoleArn": role_arn,
        "PrimaryContainer": {
            "Image": image,
            "ModelDataUrl": model_data,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": region,
                "SCONES_ORT_THREADS": "1",
            },
        },
        "Tags": [{"Key": "project", "Value": "scones"}],
    }


def endpoint_config_request(
    *,
    config_name: str,
    model_name: str,
    instance_type: str,
    capture_uri: str,
    variant: str = DEFAULT_VARIANT,
    sampling_percentage: int = 100,
) -> dict[str, Any]:
    """``CreateEndpointConfig`` with Data Capture of every request's input and output."""
    return {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": variant,
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": sampling_percentage,
            "DestinationS3Uri": capture_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
        "Tags": [{"Key": "project", "Value": "scones"}],
    }


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
    except Exception as exc:
        if _not_found(exc):
            return False
        raise
    return True


def wait_for_endpoint(
    sm: Any,
    endpoint_name: str,
    *,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> dict[str, Any]:
    """Poll until the endpoint is InService; raise ``EndpointFailedError`` if it fails."""
    from tqdm import tqdm

    with tqdm(desc=f"endpoint {endpoint_name}", unit="poll", disable=not progress) as bar:
        while True:
            desc = sm.describe_endpoint(EndpointName=endpoint_name)
            status = desc["EndpointStatus"]
            bar.set_postfix_str(status)
            bar.update(1)
            if status == "InService":
                return dict(desc)
            if status in ("Failed", "OutOfService", "RollingBack"):
                reason = desc.get("FailureReason", "no reason given")
                raise EndpointFailedError(f"endpoint {endpoint_name} {status}: {reason}")
            sleep(poll_s)


def deploy(
    sm: Any,
    *,
    model_data: str,
    role_arn: str,
    region: str,
    where: S3Location,
    endpoint_name: str = DEFAULT_ENDPOINT,
    instance_type: str = "ml.m5.large",
    image: str | None = None,
    suffix: str | None = None,
    wait: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> dict[str, str]:
    """Create model, endpoint config (Data Capture on) and endpoint; return their names."""
    if _exists(lambda: sm.describe_endpoint(EndpointName=endpoint_name)):
        raise EndpointExistsError(
            f"endpoint {endpoint_name} exists; remove it with "
            f"`scones sagemaker delete --endpoint-name {endpoint_name}` or pick another name"
        )
    suffix = suffix or timestamp()
    names = {
        "model": f"scones-model-{suffix}",
        "config": f"scones-config-{suffix}",
        "endpoint": endpoint_name,
        "capture_uri": where.uri(CAPTURE_PREFIX),
    }
    image = image or image_uri("inference", region, instance_type)
    sm.create_model(
        **model_request(
            model_name=names["model"],
            role_arn=role_arn,
            image=image,
            model_data=model_data,
            region=region,
        )
    )
    sm.create_endpoint_config(
        **endpoint_config_request(
            config_name=names["config"],
            model_name=names["model"],
            instance_type=instance_type,
            capture_uri=names["capture_uri"],
        )
    )
    sm.create_endpoint(
        EndpointName=endpoint_name,
        EndpointConfigName=names["config"],
        Tags=[{"Key": "project", "Value": "scones"}],
    )
    if wait:
        wait_for_endpoint(sm, endpoint_name, sleep=sleep, progress=progress)
    return names


def delete(sm: Any, endpoint_name: str = DEFAULT_ENDPOINT) -> list[str]:
    """Delete the endpoint, its endpoint config and its models; return what was deleted."""
    deleted: list[str] = []
    config_name = None
    try:
        config_name = sm.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    except Exception as exc:
        if _not_found(exc):
            return deleted
        raise
    models: list[str] = []
    try:
        config = sm.describe_endpoint_config(EndpointConfigName=config_name)
        models = [v["ModelName"] for v in config.get("ProductionVariants", [])]
    except Exception as exc:
        if not _not_found(exc):
            raise
    sm.delete_endpoint(EndpointName=endpoint_name)
    deleted.append(f"endpoint {endpoint_name}")
    try:
        sm.delete_endpoint_config(EndpointConfigName=config_name)
        deleted.append(f"endpoint config {config_name}")
    except Exception as exc:
        if not _not_found(exc):
            raise
    for model in models:
        try:
            sm.delete_model(ModelName=model)
            deleted.append(f"model {model}")
        except Exception as exc:
            if not _not_found(exc):
                raise
    return deleted


def _not_found(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    text = f"{error.get('Code', '')} {error.get('Message', '')}".lower()
    return "not find" in text or "does not exist" in text or "notfound" in text


# ---------------------------------------------------------------- CLI


def _role(args: argparse.Namespace) -> str:
    role = args.role or os.environ.get(ROLE_ENV, "")
    if not role:
        raise MissingRoleError(
            f"no SageMaker execution role: pass --role arn:aws:iam::ACCOUNT:role/NAME or set {ROLE_ENV}"
        )
    if not role.startswith("arn:"):
        raise MissingRoleError(f"--role must be an IAM role ARN (arn:aws:iam::...), got {role!r}")
    return role


def _session(args: argparse.Namespace) -> tuple[Any, Any, str]:
    import boto3

    session = (
        boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
    )
    region = session.region_name
    if not region:
        raise SageMakerError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return session.client("sagemaker"), session.client("s3"), region


def cmd_upload(args: argparse.Namespace) -> int:
    """``scones sagemaker upload``."""
    _, s3, _ = _session(args)
    upload_data(s3, args.data, S3Location(args.bucket, args.prefix), progress=not args.quiet)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``scones sagemaker train``."""
    role = _role(args)
    sm, s3, region = _session(args)
    where = S3Location(args.bucket, args.prefix)
    data_uri = (
        upload_data(s3, args.data, where, progress=not args.quiet)
        if args.data
        else where.uri("data") + "/"
    )
    job_name = args.job_name or f"scones-train-{timestamp()}"
    sourcedir = upload_sourcedir(s3, where, job_name)
    hyper: dict[str, int | float | str] = {"epochs": args.epochs, "seed": args.seed}
    request = training_job_request(
        job_name=job_name,
        role_arn=role,
        image=args.image or image_uri("training", region, args.instance_type),
        data_uri=data_uri,
        sourcedir_uri=sourcedir,
        output_uri=where.uri("output"),
        region=region,
        instance_type=args.instance_type,
        hyperparameters=hyper,
        max_runtime_s=args.max_runtime,
        spot=args.spot,
    )
    sm.create_training_job(**request)
    print(f"started training job {job_name} on {args.instance_type}")
    if args.no_wait:
        return 0
    desc = wait_for_training_job(sm, job_name, progress=not args.quiet)
    billable = desc.get("BillableTimeInSeconds")
    print(f"model: {desc['ModelArtifacts']['S3ModelArtifacts']}")
    if billable is not None:
        print(f"billable seconds: {billable}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """``scones sagemaker deploy``."""
    role = _role(args)
    sm, _, region = _session(args)
    model_data = args.model_data
    if args.training_job:
        desc = sm.describe_training_job(TrainingJobName=args.training_job)
        if desc["TrainingJobStatus"] != "Completed":
            raise SageMakerError(f"training job {args.training_job} is {desc['TrainingJobStatus']}")
        model_data = desc["ModelArtifacts"]["S3ModelArtifacts"]
    if not model_data:
        raise SageMakerError("pass --model-data s3://.../model.tar.gz or --training-job NAME")
    names = deploy(
        sm,
        model_data=model_data,
        role_arn=role,
        region=region,
        where=S3Location(args.bucket, args.prefix),
        endpoint_name=args.endpoint_name,
        instance_type=args.instance_type,
        image=args.image,
        wait=not args.no_wait,
        progress=not args.quiet,
    )
    print(f"model {names['model']}, endpoint config {names['config']}")
    print(f"Data Capture -> {names['capture_uri']}")
    print(f"endpoint: {names['endpoint']}")
    print(f"next: sam deploy --parameter-overrides EndpointName={names['endpoint']}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``scones sagemaker delete``."""
    sm, _, _ = _session(args)
    deleted = delete(sm, args.endpoint_name)
    if not deleted:
        print(f"no endpoint {args.endpoint_name}; nothing to delete")
    for item in deleted:
        print(f"deleted {item}")
    return 0


def _handle(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        from scones.data.etl import EtlError

        try:
            return func(args)
        except (SageMakerError, EtlError) as exc:
            print(f"scones sagemaker: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        except NoCredentialsError:
            print(
                "scones sagemaker: no AWS credentials (configure a profile or AWS_* variables)",
                file=sys.stderr,
            )
            return 2
        except (ClientError, BotoCoreError) as exc:
            print(f"scones sagemaker: AWS error: {exc}", file=sys.stderr)
            return 1

    return handler


def register(subparsers: Any) -> None:
    """Add ``scones sagemaker upload|train|deploy|delete`` to the CLI."""
    parser = subparsers.add_parser(
        "sagemaker",
        help="train and host the model on Amazon SageMaker (real AWS)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the real SageMaker path with plain boto3 (needs AWS credentials and a\n"
            f"SageMaker execution role: --role or ${ROLE_ENV}).\n\n"
            "  scones sagemaker upload --data data --bucket B\n"
            "  scones sagemaker train  --data data --bucket B --role ARN   # ml.g4dn.xlarge\n"
            "  scones sagemaker deploy --training-job NAME --bucket B --role ARN\n"
            "  sam deploy --parameter-overrides EndpointName=scones-image-classifier\n"
            "  scones sagemaker delete\n\n"
            "Objects go to s3://BUCKET/PREFIX/{data,code,output,data_capture}."
        ),
    )
    sub = parser.add_subparsers(dest="sagemaker_command", metavar="STEP", required=True)

    def common(p: argparse.ArgumentParser, bucket: bool = True) -> None:
        if bucket:
            p.add_argument("--bucket", required=True, help="S3 bucket for data, code, models")
            p.add_argument(
                "--prefix", default=DEFAULT_PREFIX, help="key prefix (default %(default)s)"
            )
        p.add_argument("--region", help="AWS region (default: from the AWS configuration)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    up = sub.add_parser("upload", help="upload the ETL output to S3 (idempotent)")
    up.add_argument("--data", required=True, type=Path, help="folder written by scones etl")
    common(up)
    up.set_defaults(func=_handle(cmd_upload))

    tr = sub.add_parser(
        "train",
        help="run ml/train.py as a SageMaker training job",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Upload the data (with --data) and sourcedir.tar.gz, start a training job in AWS's\n"
            f"PyTorch {FRAMEWORK_VERSION} training container and wait for it (Ctrl-C stops\n"
            "waiting, not the job). Prints the model.tar.gz URI for `scones sagemaker deploy`."
        ),
    )
    tr.add_argument("--data", type=Path, help="ETL output to upload first (else PREFIX/data)")
    tr.add_argument("--role", help=f"execution role ARN (default ${ROLE_ENV})")
    tr.add_argument("--instance-type", default="ml.g4dn.xlarge", help="default %(default)s")
    tr.add_argument("--image", help="training image URI (default: AWS PyTorch container)")
    tr.add_argument("--epochs", type=int, default=50, help="train.py --epochs (default 50)")
    tr.add_argument("--seed", type=int, default=0, help="train.py --seed (default 0)")
    tr.add_argument("--job-name", help="default scones-train-<timestamp>")
    tr.add_argument("--max-runtime", type=int, default=3600, help="seconds (default %(default)s)")
    tr.add_argument("--spot", action="store_true", help="managed spot training")
    tr.add_argument("--no-wait", action="store_true", help="return after starting the job")
    common(tr)
    tr.set_defaults(func=_handle(cmd_train))

    de = sub.add_parser(
        "deploy",
        help="create model, endpoint config (Data Capture) and endpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Host model.tar.gz in AWS's PyTorch inference container (code/inference.py) with\n"
            "Data Capture of 100% of inputs and outputs to s3://BUCKET/PREFIX/data_capture."
        ),
    )
    src = de.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-data", help="s3://.../model.tar.gz")
    src.add_argument("--training-job", help="take model.tar.gz from this training job")
    de.add_argument("--role", help=f"execution role ARN (default ${ROLE_ENV})")
    de.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT, help="default %(default)s")
    de.add_argument("--instance-type", default="ml.m5.large", help="default %(default)s")
    de.add_argument("--image", help="inference image URI (default: AWS PyTorch container)")
    de.add_argument("--no-wait", action="store_true", help="return before InService")
    common(de)
    de.set_defaults(func=_handle(cmd_deploy))

    rm = sub.add_parser("delete", help="delete the endpoint, its config and its model")
    rm.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT, help="default %(default)s")
    common(rm, bucket=False)
    rm.set_defaults(func=_handle(cmd_delete))
