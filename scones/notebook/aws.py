"""The walkthrough on AWS (``TARGET = "aws"``): the deployed SAM stack, the SageMaker path, and
the clean-up of what the notebook created.

Billed resources the notebook creates on AWS, each recorded in ``Workspace.billed``:
objects in S3 (the ETL output, the code, the model, uploaded images, Data Capture), one training
job (billed once, for its billable seconds) and one real-time endpoint (billed every hour it
exists, until ``clean_up`` deletes it). The executions, Lambda invocations and endpoint calls
are billed per use. The work is done by the same functions as ``scones sagemaker``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scones.aws import ENDPOINT_INSTANCE, TRAIN_INSTANCE
from scones.errors import CommandError
from scones.notebook import display
from scones.notebook.workspace import Workspace


def open_aws(workspace: Workspace) -> None:
    """Drop any twin endpoints from the environment, read who we are and the stack's outputs."""
    removed = [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]
    for name in removed:
        del os.environ[name]
    import boto3

    boto3.DEFAULT_SESSION = None
    identity = workspace.client("sts").get_caller_identity()
    workspace.identity = {"Account": identity["Account"], "Arn": identity["Arn"]}
    stacks = workspace.client("cloudformation").describe_stacks(StackName=workspace.stack)
    outputs = stacks["Stacks"][0].get("Outputs", [])
    workspace.stack_outputs = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    workspace.environment = {"AWS_DEFAULT_REGION": workspace.region} | {
        name: "(removed: the twin's endpoint)" for name in removed
    }


def _where(workspace: Workspace) -> Any:
    from scones.aws import S3Location

    if not workspace.bucket:
        raise CommandError("set AWS_BUCKET in the parameters cell: the bucket for data and models")
    return S3Location(workspace.bucket, workspace.prefix)


def _role(workspace: Workspace) -> str:
    if not (workspace.role or "").startswith("arn:"):
        raise CommandError(
            "set AWS_ROLE (or $SCONES_SAGEMAKER_ROLE): the SageMaker execution role ARN"
        )
    return str(workspace.role)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def sagemaker_train(
    workspace: Workspace, data: Path, out: Path, *, epochs: int = 3, seed: int = 0,
    instance_type: str = TRAIN_INSTANCE,
) -> Any:  # fmt: skip
    """BILLED: upload the ETL output and run ``ml/train.py`` as a SageMaker training job (as
    ``scones sagemaker train``); download its ``model.tar.gz`` into ``out``; the model report."""
    from scones.aws import check_instance_quota, image_uri, timestamp
    from scones.notebook.model import model_report
    from scones.training.sagemaker import start_training_job, upload_data, wait_for_training_job

    where, role = _where(workspace), _role(workspace)
    sm, s3 = workspace.client("sagemaker"), workspace.client("s3")
    image = image_uri("training", workspace.region, instance_type)
    check_instance_quota(workspace.client("service-quotas"), region=workspace.region,
                         instance_type=instance_type, usage="training", warn=_warn)  # fmt: skip
    upload_data(s3, Path(data), where, progress=False)
    workspace.note_billed(f"S3 objects under {where.uri()}/ (data, code, output, models)")
    job = f"scones-train-{timestamp()}"
    start_training_job(sm, s3, where=where, job_name=job, role_arn=role, region=workspace.region,
                       image=image, instance_type=instance_type,
                       hyperparameters={"epochs": epochs, "seed": seed})  # fmt: skip
    workspace.note_billed(f"training job {job} on {instance_type} (billed once)")
    desc = wait_for_training_job(sm, job, progress=False)
    workspace.model_data = str(desc["ModelArtifacts"]["S3ModelArtifacts"])
    billable = desc.get("BillableTimeInSeconds")
    workspace.training_seconds = float(billable) if billable is not None else None
    out.mkdir(parents=True, exist_ok=True)
    bucket, _, key = workspace.model_data[len("s3://") :].partition("/")
    s3.download_file(bucket, key, str(out / "model.tar.gz"))
    how = f"SageMaker training job {job} on {instance_type}, {billable} billable seconds"
    return model_report(out / "model.tar.gz", Path(data), trained=how)


def deploy_endpoint(workspace: Workspace, *, instance_type: str = ENDPOINT_INSTANCE) -> Any:
    """BILLED (every hour until clean-up): the model with its wheels, endpoint config with Data
    Capture and the endpoint the stack calls (as ``scones sagemaker deploy``); the deployment."""
    from scones.aws import check_instance_quota, timestamp
    from scones.endpoint.sagemaker import deploy
    from scones.notebook.workflow import Deployment
    from scones.training.wheelhouse import offline_model

    if not workspace.model_data:
        raise CommandError("no model on S3 yet: run the training cell (step 3) first")
    where, role, out = _where(workspace), _role(workspace), workspace.stack_outputs
    name = out.get("EndpointName") or "scones-image-classifier"
    sm = workspace.client("sagemaker")
    check_instance_quota(workspace.client("service-quotas"), region=workspace.region,
                         instance_type=instance_type, usage="endpoint", warn=_warn)  # fmt: skip
    suffix = timestamp()
    model_data = offline_model(workspace.client("s3"), workspace.model_data, where, suffix)
    workspace.note_billed(f"endpoint {name} on {instance_type} (billed hourly until clean-up)")
    names = deploy(sm, model_data=model_data, role_arn=role, region=workspace.region, where=where,
                   endpoint_name=name, instance_type=instance_type, suffix=suffix, progress=False)  # fmt: skip
    functions = {
        k[: -len("Arn")]: v
        for k, v in out.items()
        if k.endswith("FunctionArn") and "Guard" not in k
    }
    workspace.deployment = Deployment(
        where=f"AWS stack {workspace.stack} in {workspace.region}",
        stack_name=workspace.stack,
        bucket=out["ImageBucketName"],
        incoming_prefix=out.get("IncomingPrefix", "incoming/"),
        state_machine_arn=out["StateMachineArn"],
        endpoint_name=name,
        capture_uri=names["capture_uri"],
        functions=functions,
        model=model_data,
    )
    return workspace.deployment


@dataclass
class CleanUp:
    """What the clean-up cell removed, and what it left (with the command to remove it)."""

    removed: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # (what, how to remove it)

    def _repr_html_(self) -> str:
        removed = [[r] for r in self.removed] or [["nothing billed was created"]]
        parts = [display.table(removed, ["removed"], what="cleanup")]
        if self.left:
            parts.append(display.table(self.left, ["left in place", "to remove it"], what="left"))
        return "".join(parts)


def clean_up(workspace: Workspace, *, delete_endpoint: bool = True) -> CleanUp:
    """Delete the images this run uploaded and (on AWS) the endpoint with its config and model."""
    done = CleanUp()
    s3 = workspace.client("s3")
    for bucket, key in workspace.uploads:
        s3.delete_object(Bucket=bucket, Key=key)
    if workspace.uploads:
        done.removed.append(f"{len(workspace.uploads)} images this run uploaded")
    workspace.uploads = []
    if workspace.twin:
        done.left.append(
            ("the offline twin (free; keeps its state)", "scones down  (or make down)")
        )
        return done
    from scones.endpoint.sagemaker import delete

    deployed = workspace.deployment
    if delete_endpoint and deployed is not None:
        done.removed += delete(
            workspace.client("sagemaker"), deployed.endpoint_name, progress=False
        )
    if workspace.bucket:
        uri = f"s3://{workspace.bucket}/{workspace.prefix}/"
        done.left.append((f"S3 objects under {uri} (data, code, models, Data Capture)",
                          f"aws s3 rm --recursive {uri}"))  # fmt: skip
    done.left.append((f"the stack {workspace.stack} (no hourly charge of its own)",
                      f"sam delete --stack-name {workspace.stack}"))  # fmt: skip
    return done
