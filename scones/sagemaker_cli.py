"""``scones sagemaker upload|train|deploy|delete``: the real SageMaker path, as a thin CLI.

It spans three stages (the ETL upload, the training job, the endpoint), so it lives beside
``scones/cli.py`` instead of inside one of them; the work is done by ``scones.training.sagemaker``
and ``scones.endpoint.sagemaker``.

* ``upload``: the ETL output folder -> ``s3://BUCKET/PREFIX/data/`` (idempotent).
* ``train``: upload ``sourcedir.tar.gz`` (the ``ml/`` folder) and run ``train.py`` as a training
  job in AWS's PyTorch training container; wait with progress; print the model's S3 URI.
* ``deploy``: repack the model with its wheels (offline install, ``scones.training.wheelhouse``),
  then model, endpoint config with Data Capture and endpoint; wait; print the endpoint name for
  ``sam deploy --parameter-overrides EndpointName=...``.
* ``delete``: remove the endpoint, its endpoint config and its model; wait until it is gone.

``train`` and ``deploy`` check first, before anything is uploaded or created: the region has AWS's
PyTorch containers and the instance type runs them (else ``--image``), and the account's Service
Quotas quota for the instance type is not 0 (a quota that cannot be read is a warning).

The role ARN comes from ``--role`` or ``$SCONES_SAGEMAKER_ROLE``; nothing account-specific is
hard-coded.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scones.aws import (
    DEFAULT_PREFIX,
    ENDPOINT_INSTANCE,
    FRAMEWORK_VERSION,
    TRAIN_INSTANCE,
    S3Location,
    SageMakerError,
    check_instance_quota,
    image_uri,
    timestamp,
)
from scones.endpoint.sagemaker import DEFAULT_ENDPOINT, delete, deploy, ensure_absent
from scones.errors import EXIT_USAGE, ErrorTable, user_errors
from scones.training.sagemaker import (
    model_data_of,
    start_training_job,
    upload_data,
    wait_for_training_job,
)

ROLE_ENV = "SCONES_SAGEMAKER_ROLE"


class MissingRoleError(SageMakerError):
    """No execution role ARN was given."""


@dataclass(frozen=True)
class AwsClients:
    """The session, its region and the clients one command uses."""

    session: Any
    region: str
    sm: Any
    s3: Any


def _errors() -> ErrorTable:
    from scones.data.etl import EtlError
    from scones.training.script import SourceDirNotFoundError

    return [((SageMakerError, EtlError, SourceDirNotFoundError), EXIT_USAGE)]


def _role(args: argparse.Namespace) -> str:
    role = args.role or os.environ.get(ROLE_ENV, "")
    if not role:
        raise MissingRoleError(
            f"no SageMaker execution role: pass --role arn:aws:iam::ACCOUNT:role/NAME or set {ROLE_ENV}"
        )
    if not role.startswith("arn:"):
        raise MissingRoleError(f"--role must be an IAM role ARN (arn:aws:iam::...), got {role!r}")
    return role


def _session(args: argparse.Namespace) -> AwsClients:
    import boto3

    session = (
        boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
    )
    region = session.region_name
    if not region:
        raise SageMakerError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return AwsClients(session, region, session.client("sagemaker"), session.client("s3"))


def _quota_client(session: Any) -> Any:
    """The Service Quotas client (a seam for tests)."""
    return session.client("service-quotas")


def _warn(message: str) -> None:
    print(f"scones sagemaker: warning: {message}", file=sys.stderr)


def _check_quota(aws: AwsClients, instance_type: str, usage: str) -> None:
    """Stop before anything is uploaded or created when the instance quota is 0."""
    check_instance_quota(
        _quota_client(aws.session),
        region=aws.region,
        instance_type=instance_type,
        usage=usage,
        warn=_warn,
    )


def _upload(s3: Any, args: argparse.Namespace, where: S3Location) -> str:
    uri, result = upload_data(s3, args.data, where, progress=not args.quiet)
    print(f"uploaded {result.uploaded}, unchanged {result.skipped} -> {where.uri('data')}")
    return uri


@user_errors(_errors)
def cmd_upload(args: argparse.Namespace) -> int:
    """``scones sagemaker upload``."""
    _upload(_session(args).s3, args, S3Location(args.bucket, args.prefix))
    return 0


@user_errors(_errors)
def cmd_train(args: argparse.Namespace) -> int:
    """``scones sagemaker train``."""
    role = _role(args)
    aws = _session(args)
    image = args.image or image_uri("training", aws.region, args.instance_type)
    _check_quota(aws, args.instance_type, "spot" if args.spot else "training")
    where = S3Location(args.bucket, args.prefix)
    if args.data:
        _upload(aws.s3, args, where)
    job_name = args.job_name or f"scones-train-{timestamp()}"
    start_training_job(
        aws.sm,
        aws.s3,
        where=where,
        job_name=job_name,
        role_arn=role,
        region=aws.region,
        image=image,
        instance_type=args.instance_type,
        hyperparameters={
            "seed": args.seed,
            **({"epochs": args.epochs} if args.epochs is not None else {}),
        },
        max_runtime_s=args.max_runtime,
        spot=args.spot,
    )
    print(f"started training job {job_name} on {args.instance_type}")
    if args.no_wait:
        return 0
    desc = wait_for_training_job(aws.sm, job_name, progress=not args.quiet)
    billable = desc.get("BillableTimeInSeconds")
    print(f"model: {desc['ModelArtifacts']['S3ModelArtifacts']}")
    if billable is not None:
        print(f"billable seconds: {billable}")
    return 0


@user_errors(_errors)
def cmd_deploy(args: argparse.Namespace) -> int:
    """``scones sagemaker deploy``."""
    from scones.training.wheelhouse import offline_model

    role = _role(args)
    aws = _session(args)
    image = args.image or image_uri("inference", aws.region, args.instance_type)
    ensure_absent(aws.sm, args.endpoint_name)
    _check_quota(aws, args.instance_type, "endpoint")
    model_data = model_data_of(aws.sm, args.training_job) if args.training_job else args.model_data
    if not model_data:
        raise SageMakerError("pass --model-data s3://.../model.tar.gz or --training-job NAME")
    where = S3Location(args.bucket, args.prefix)
    suffix = timestamp()
    if not args.no_wheels:
        model_data = offline_model(aws.s3, model_data, where, suffix, wheels=args.wheels)
        print(f"model with its wheels (installs offline): {model_data}")
    names = deploy(
        aws.sm,
        model_data=model_data,
        role_arn=role,
        region=aws.region,
        where=where,
        endpoint_name=args.endpoint_name,
        instance_type=args.instance_type,
        image=image,
        suffix=suffix,
        wait=not args.no_wait,
        progress=not args.quiet,
    )
    print(f"model {names['model']}, endpoint config {names['config']}")
    print(f"Data Capture -> {names['capture_uri']}")
    print(f"endpoint: {names['endpoint']}")
    print(f"next: sam deploy --parameter-overrides EndpointName={names['endpoint']}")
    return 0


@user_errors(_errors)
def cmd_delete(args: argparse.Namespace) -> int:
    """``scones sagemaker delete``."""
    deleted = delete(
        _session(args).sm,
        args.endpoint_name,
        wait=not args.no_wait,
        timeout_s=args.wait_timeout,
        progress=not args.quiet,
    )
    if not deleted:
        print(f"no endpoint {args.endpoint_name}; nothing to delete")
    for item in deleted:
        print(f"deleted {item}")
    if deleted and not args.no_wait:
        print(f"endpoint {args.endpoint_name} is gone; the name can be deployed again")
    return 0


def _common(p: argparse.ArgumentParser, bucket: bool = True) -> None:
    if bucket:
        p.add_argument("--bucket", required=True, help="S3 bucket for data, code, models")
        p.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix (default %(default)s)")
    p.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


_IMAGE_HELP = (
    "{kind} image URI (default: AWS's PyTorch container for the region; required for "
    "Inferentia, Trainium and Graviton instances, and regions without that container)"
)


def _add_train(sub: Any) -> None:
    tr = sub.add_parser(
        "train",
        help="run ml/train.py as a SageMaker training job",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Upload the data (with --data) and sourcedir.tar.gz, start a training job in AWS's\n"
            f"PyTorch {FRAMEWORK_VERSION} training container and wait for it (Ctrl-C stops\n"
            "waiting, not the job). Prints the model.tar.gz URI for `scones sagemaker deploy`.\n\n"
            "Before uploading anything it checks the Service Quotas quota\n"
            "'<instance type> for training job usage' ('... for spot training job usage' with\n"
            "--spot): 0 stops with the quota's code, console link and CLI command to raise it;\n"
            "an unreadable quota is a warning."
        ),
    )
    tr.add_argument("--data", type=Path, help="ETL output to upload first (else PREFIX/data)")
    tr.add_argument("--role", help=f"execution role ARN (default ${ROLE_ENV})")
    tr.add_argument("--instance-type", default=TRAIN_INSTANCE, help="default %(default)s (CPU)")
    tr.add_argument("--image", help=_IMAGE_HELP.format(kind="training"))
    tr.add_argument(
        "--epochs", type=int, help="train.py --epochs (default: train.py's default, 200)"
    )
    tr.add_argument("--seed", type=int, default=0, help="train.py --seed (default 0)")
    tr.add_argument("--job-name", help="default scones-train-<timestamp>")
    tr.add_argument("--max-runtime", type=int, default=3600, help="seconds (default %(default)s)")
    tr.add_argument("--spot", action="store_true", help="managed spot training")
    tr.add_argument("--no-wait", action="store_true", help="return after starting the job")
    _common(tr)
    tr.set_defaults(func=cmd_train)


def _add_deploy(sub: Any) -> None:
    de = sub.add_parser(
        "deploy",
        help="create model, endpoint config (Data Capture) and endpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Host model.tar.gz in AWS's PyTorch inference container (code/inference.py) with\n"
            "Data Capture of 100% of inputs and outputs to s3://BUCKET/PREFIX/data_capture.\n\n"
            "The model is first repacked with the wheels of its code/requirements.txt (fetched\n"
            "once into the cache with pip download, for the container's CPython 3.11 x86_64)\n"
            "and an offline requirements file, and uploaded to PREFIX/models/<timestamp>/: the\n"
            "container installs them without a network. Checks the quota\n"
            "'<instance type> for endpoint usage' first, as train does."
        ),
    )
    src = de.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-data", help="s3://.../model.tar.gz")
    src.add_argument("--training-job", help="take model.tar.gz from this training job")
    de.add_argument("--role", help=f"execution role ARN (default ${ROLE_ENV})")
    de.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT, help="default %(default)s")
    de.add_argument("--instance-type", default=ENDPOINT_INSTANCE, help="default %(default)s")
    de.add_argument("--image", help=_IMAGE_HELP.format(kind="inference"))
    wheels = de.add_mutually_exclusive_group()
    wheels.add_argument(
        "--wheels", type=Path, help="ship the wheels of this folder instead of fetching them"
    )
    wheels.add_argument(
        "--no-wheels",
        action="store_true",
        help="deploy the archive as it is (the container installs its requirements from PyPI)",
    )
    de.add_argument("--no-wait", action="store_true", help="return before InService")
    _common(de)
    de.set_defaults(func=cmd_deploy)


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
            f"  scones sagemaker train  --data data --bucket B --role ARN   # {TRAIN_INSTANCE}\n"
            "  scones sagemaker deploy --training-job NAME --bucket B --role ARN\n"
            "  sam deploy --parameter-overrides EndpointName=scones-image-classifier\n"
            "  scones sagemaker delete   # waits until the endpoint is gone\n\n"
            "Objects go to s3://BUCKET/PREFIX/{data,code,output,models,data_capture}.\n"
            "A first deployment, step by step: docs/first-deployment.md."
        ),
    )
    sub = parser.add_subparsers(dest="sagemaker_command", metavar="STEP", required=True)

    up = sub.add_parser("upload", help="upload the ETL output to S3 (idempotent)")
    up.add_argument("--data", required=True, type=Path, help="folder written by scones etl")
    _common(up)
    up.set_defaults(func=cmd_upload)

    _add_train(sub)
    _add_deploy(sub)

    rm = sub.add_parser(
        "delete",
        help="delete the endpoint, its config and its model; wait until it is gone",
    )
    rm.add_argument("--endpoint-name", default=DEFAULT_ENDPOINT, help="default %(default)s")
    rm.add_argument("--no-wait", action="store_true", help="return once deletion has started")
    rm.add_argument(
        "--wait-timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the endpoint to go (default %(default)g)",
    )
    _common(rm, bucket=False)
    rm.set_defaults(func=cmd_delete)
