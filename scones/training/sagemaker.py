"""The SageMaker training job, with plain boto3 and injected clients.

``sourcedir.tar.gz`` is the ``ml/`` folder exactly (``train.py``, ``requirements.txt``,
``serving/``; caches left out); the job runs ``train.py`` in AWS's PyTorch training container in
script mode (``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters). Both
channels (``train``, ``test``) point at the uploaded ETL folder, which holds ``train.lst``,
``test.lst``, ``classes.json`` and the PNGs; ``train.py`` reads the manifest it needs.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scones.aws import TAGS, S3Location, SageMakerError, poll

if TYPE_CHECKING:
    from scones.data.etl import UploadResult

TERMINAL_TRAINING = {"Completed", "Failed", "Stopped"}
CACHE_DIRS = {"__pycache__"}  # and every folder or file whose name starts with "."
CACHE_SUFFIXES = (".pyc", ".pyo")


class TrainingJobFailedError(SageMakerError):
    """The training job ended in Failed or Stopped."""


def _is_cache(rel: Path) -> bool:
    return rel.suffix in CACHE_SUFFIXES or any(
        part in CACHE_DIRS or part.startswith(".") for part in rel.parts
    )


def sourcedir_files(ml_dir: Path) -> list[str]:
    """The paths (relative, POSIX, sorted) of the files of ``ml_dir`` that SageMaker receives:
    all of them except caches and hidden files."""
    return sorted(
        rel.as_posix()
        for rel in (p.relative_to(ml_dir) for p in ml_dir.rglob("*") if p.is_file())
        if not _is_cache(rel)
    )


def build_sourcedir(ml_dir: Path | None = None) -> bytes:
    """``sourcedir.tar.gz`` for script mode: the ``ml/`` folder's files (deterministic bytes)."""
    from scones.training.script import source_dir

    ml_dir = ml_dir or source_dir()
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for rel in sourcedir_files(ml_dir):
            data = (ml_dir / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload_sourcedir(s3: Any, where: S3Location, job_name: str) -> str:
    """Upload the sourcedir tarball for ``job_name``; return its S3 URI."""
    key = where.key("code", job_name, "sourcedir.tar.gz")
    s3.put_object(Bucket=where.bucket, Key=key, Body=build_sourcedir())
    return f"s3://{where.bucket}/{key}"


def upload_data(
    s3: Any, data_dir: Path, where: S3Location, *, progress: bool = True
) -> tuple[str, UploadResult]:
    """Upload the ETL output folder to ``s3://bucket/prefix/data/`` (idempotent); return the
    channel URI and what was uploaded."""
    from scones.data.etl import upload_tree

    if not (data_dir / "train.lst").is_file():
        raise SageMakerError(f"{data_dir} has no train.lst; run `scones etl --output {data_dir}`")
    files = [p for p in data_dir.rglob("*") if p.is_file() and not p.name.endswith(".part")]
    result = upload_tree(s3, data_dir, files, where.bucket, where.key("data"), progress=progress)
    return data_uri(where), result


def data_uri(where: S3Location) -> str:
    """The S3 prefix both training channels read (``s3://bucket/prefix/data/``)."""
    return where.uri("data") + "/"


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
        "Tags": list(TAGS),
    }
    if spot:
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = max_runtime_s * 2
    return request


def start_training_job(
    sm: Any,
    s3: Any,
    *,
    where: S3Location,
    job_name: str,
    role_arn: str,
    region: str,
    image: str,
    instance_type: str,
    hyperparameters: dict[str, int | float | str],
    max_runtime_s: int = 3600,
    spot: bool = False,
) -> dict[str, Any]:
    """Upload ``sourcedir.tar.gz`` and start the job on the data under ``where``; return the
    request that was sent."""
    request = training_job_request(
        job_name=job_name,
        role_arn=role_arn,
        image=image,
        data_uri=data_uri(where),
        sourcedir_uri=upload_sourcedir(s3, where, job_name),
        output_uri=where.uri("output"),
        region=region,
        instance_type=instance_type,
        hyperparameters=hyperparameters,
        max_runtime_s=max_runtime_s,
        spot=spot,
    )
    sm.create_training_job(**request)
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
    desc = poll(
        lambda: sm.describe_training_job(TrainingJobName=job_name),
        state=lambda d: f"{d['TrainingJobStatus']}/{d.get('SecondaryStatus', '')}",
        done=lambda d: d["TrainingJobStatus"] in TERMINAL_TRAINING,
        label=f"training {job_name}",
        poll_s=poll_s,
        sleep=sleep,
        progress=progress,
    )
    status = desc["TrainingJobStatus"]
    if status != "Completed":
        reason = desc.get("FailureReason", "no reason given")
        raise TrainingJobFailedError(f"training job {job_name} {status}: {reason}")
    return desc


def model_data_of(sm: Any, job_name: str) -> str:
    """The ``model.tar.gz`` URI a completed training job wrote."""
    desc = sm.describe_training_job(TrainingJobName=job_name)
    if desc["TrainingJobStatus"] != "Completed":
        raise SageMakerError(f"training job {job_name} is {desc['TrainingJobStatus']}")
    return str(desc["ModelArtifacts"]["S3ModelArtifacts"])
