"""The SageMaker path against moto: the exact requests, names and clean-up."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from sagemaker_helpers import BUCKET, REGION, ROLE, cli

from scones.aws import S3Location, if_found, image_uri, is_not_found
from scones.endpoint import sagemaker as endpoint_sm
from scones.training import sagemaker as training_sm

ML_DIR = Path(__file__).resolve().parents[2] / "ml"


def test_image_uris() -> None:
    assert image_uri("training", "us-east-1", "ml.g4dn.xlarge") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
        "pytorch-training:2.5.1-gpu-py311-cu124-ubuntu22.04-sagemaker"
    )
    assert image_uri("inference", "eu-west-1", "ml.m5.large") == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/"
        "pytorch-inference:2.5.1-cpu-py311-ubuntu22.04-sagemaker"
    )
    assert image_uri("training", "ap-east-1", "ml.p3.2xlarge").startswith("871362719292.")
    assert ".amazonaws.com.cn/" in image_uri("inference", "cn-north-1", "ml.c5.large")
    with pytest.raises(ValueError):
        image_uri("serving", REGION, "ml.m5.large")


def test_sourcedir_is_exactly_the_ml_folder() -> None:
    files = training_sm.sourcedir_files(ML_DIR)
    assert {"train.py", "requirements.txt", "serving/inference.py"} <= set(files)
    assert "serving/requirements.txt" in files  # copied into the model's code/ by train.py
    with tarfile.open(fileobj=io.BytesIO(training_sm.build_sourcedir())) as tar:
        assert tar.getnames() == files
        for rel in files:
            member = tar.extractfile(rel)
            assert member is not None and member.read() == (ML_DIR / rel).read_bytes()
    assert b"onnxruntime" in (ML_DIR / "requirements.txt").read_bytes()


def test_sourcedir_leaves_out_caches_and_is_deterministic(tmp_path: Path) -> None:
    ml = tmp_path / "ml"
    (ml / "serving" / "__pycache__").mkdir(parents=True)
    (ml / ".ruff_cache").mkdir()
    (ml / "train.py").write_text("print('hi')\n")
    (ml / "serving" / "inference.py").write_text("x = 1\n")
    (ml / "serving" / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"\0")
    (ml / "stray.pyc").write_bytes(b"\0")
    (ml / ".ruff_cache" / "x").write_text("cache")
    (ml / ".DS_Store").write_bytes(b"\0")
    assert training_sm.sourcedir_files(ml) == ["serving/inference.py", "train.py"]
    blob = training_sm.build_sourcedir(ml)
    assert blob[4:8] == b"\0\0\0\0"  # gzip header time: 0, so the bytes do not depend on when
    assert blob == training_sm.build_sourcedir(ml)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert {(m.name, m.mode, m.mtime, m.uid) for m in tar.getmembers()} == {
            ("serving/inference.py", 0o644, 0, 0),
            ("train.py", 0o644, 0, 0),
        }


def test_train_uploads_and_starts_the_script_mode_job(
    aws: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli(
        "train",
        "--data",
        str(data_dir),
        "--bucket",
        BUCKET,
        "--prefix",
        "p",
        "--role",
        ROLE,
        "--job-name",
        "job-1",
        "--epochs",
        "7",
        "--region",
        REGION,
        "--quiet",
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "model: s3://" in out
    s3 = boto3.client("s3", region_name=REGION)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "p/code/job-1/sourcedir.tar.gz" in keys
    assert {"p/data/train.lst", "p/data/test.lst", "p/data/classes.json"} <= keys
    assert sum(k.startswith("p/data/train/") for k in keys) == 6
    job = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName="job-1"
    )
    assert job["AlgorithmSpecification"]["TrainingImage"] == image_uri(
        "training", REGION, "ml.m5.xlarge"
    )
    assert "-cpu-" in job["AlgorithmSpecification"]["TrainingImage"]
    assert job["RoleArn"] == ROLE
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"  # CPU by default
    hp = job["HyperParameters"]
    decoded = {k: json.loads(v) for k, v in hp.items()}  # JSON values, as the SDK writes them
    assert decoded["sagemaker_program"] == "train.py"
    assert decoded["sagemaker_submit_directory"] == f"s3://{BUCKET}/p/code/job-1/sourcedir.tar.gz"
    assert decoded["epochs"] == 7 and decoded["seed"] == 0 and decoded["sagemaker_region"] == REGION
    channels = {c["ChannelName"]: c for c in job["InputDataConfig"]}
    assert set(channels) == {"train", "test"}
    for channel in channels.values():
        assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/p/data/"
        assert channel["DataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/p/output"


def test_train_without_epochs_leaves_them_to_train_py(
    aws: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--data", str(data_dir), "--bucket", BUCKET, "--role", ROLE]
    assert cli(*argv, "--job-name", "job-2", "--region", REGION, "--quiet") == 0
    job = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName="job-2"
    )
    assert "epochs" not in job["HyperParameters"] and job["HyperParameters"]["seed"] == "0"


def test_second_upload_skips_unchanged_objects(
    aws: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("upload", "--data", str(data_dir), "--bucket", BUCKET, "--quiet") == 0
    assert "uploaded 13, unchanged 0" in capsys.readouterr().out
    assert cli("upload", "--data", str(data_dir), "--bucket", BUCKET, "--quiet") == 0
    assert "uploaded 0, unchanged 13" in capsys.readouterr().out


def test_deploy_creates_model_config_with_capture_and_endpoint(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    model_data = f"s3://{BUCKET}/scones/output/job/output/model.tar.gz"
    assert (
        cli(
            "deploy",
            "--model-data",
            model_data,
            "--no-wheels",  # the wheels are tested in test_wheelhouse.py
            "--bucket",
            BUCKET,
            "--role",
            ROLE,
            "--region",
            REGION,
            "--quiet",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "EndpointName=scones-image-classifier" in out
    sm = boto3.client("sagemaker", region_name=REGION)
    endpoint = sm.describe_endpoint(EndpointName="scones-image-classifier")
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic" and variant["InstanceType"] == "ml.m5.large"
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 100
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/scones/data_capture"
    modes = sorted(o["CaptureMode"] for o in capture["CaptureOptions"])
    assert modes == ["Input", "Output"]
    model = sm.describe_model(ModelName=variant["ModelName"])
    container = model["PrimaryContainer"]
    assert container["Image"] == image_uri("inference", REGION, "ml.m5.large")
    assert container["ModelDataUrl"] == model_data
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert model["ExecutionRoleArn"] == ROLE

    # a second deploy to the same name is refused with a clear error
    assert (
        cli(
            "deploy",
            "--model-data",
            model_data,
            "--bucket",
            BUCKET,
            "--role",
            ROLE,
            "--region",
            REGION,
            "--quiet",
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("scones sagemaker: EndpointExistsError: endpoint")

    assert cli("delete", "--region", REGION, "--quiet") == 0
    out = capsys.readouterr().out
    assert "deleted endpoint scones-image-classifier" in out
    assert "is gone; the name can be deployed again" in out
    assert "deleted endpoint config" in out and "deleted model" in out
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert cli("delete", "--region", REGION) == 0
    assert "nothing to delete" in capsys.readouterr().out


def test_deploy_from_training_job(aws: None, data_dir: Path) -> None:
    assert (
        cli(
            "train",
            "--data",
            str(data_dir),
            "--bucket",
            BUCKET,
            "--role",
            ROLE,
            "--job-name",
            "job-2",
            "--region",
            REGION,
            "--quiet",
        )
        == 0
    )
    assert (
        cli(
            "deploy",
            "--training-job",
            "job-2",
            "--bucket",
            BUCKET,
            "--role",
            ROLE,
            "--endpoint-name",
            "ep-2",
            "--no-wheels",
            "--instance-type",
            "ml.g4dn.xlarge",
            "--region",
            REGION,
            "--quiet",
        )
        == 0
    )
    sm = boto3.client("sagemaker", region_name=REGION)
    job = sm.describe_training_job(TrainingJobName="job-2")
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName="ep-2")["EndpointConfigName"]
    )
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == job["ModelArtifacts"]["S3ModelArtifacts"]
    assert "-gpu-" in model["PrimaryContainer"]["Image"]


def test_role_is_required(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("train", "--bucket", BUCKET, "--region", REGION, "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("scones sagemaker: MissingRoleError: ") and "SCONES_SAGEMAKER_ROLE" in err
    assert "Traceback" not in err
    assert (
        cli(
            "deploy",
            "--model-data",
            "s3://b/m.tar.gz",
            "--bucket",
            BUCKET,
            "--role",
            "not-an-arn",
            "--region",
            REGION,
        )
        == 2
    )
    assert "must be an IAM role ARN" in capsys.readouterr().err


def test_role_from_environment(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCONES_SAGEMAKER_ROLE", ROLE)
    assert (
        cli(
            "train",
            "--bucket",
            BUCKET,
            "--job-name",
            "job-env",
            "--no-wait",
            "--region",
            REGION,
            "--quiet",
        )
        == 0
    )
    job = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName="job-env"
    )
    assert job["RoleArn"] == ROLE


def test_upload_without_etl_output(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("upload", "--data", str(tmp_path), "--bucket", BUCKET, "--quiet") == 2
    assert "run `scones etl" in capsys.readouterr().err


class FakeSageMaker:
    """Answers describe_* with a scripted sequence of states."""

    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = states
        self.calls = 0

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        return self.states[min(self.calls, len(self.states)) - 1]

    describe_endpoint = None  # type: ignore[assignment]


def test_wait_reports_failure_reason() -> None:
    fake = FakeSageMaker(
        [
            {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"},
            {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
            {
                "TrainingJobStatus": "Failed",
                "SecondaryStatus": "Failed",
                "FailureReason": "AlgorithmError: TrainingDataError",
            },
        ]
    )
    sleeps: list[float] = []
    with pytest.raises(
        training_sm.TrainingJobFailedError, match="AlgorithmError: TrainingDataError"
    ):
        training_sm.wait_for_training_job(fake, "j", poll_s=5, sleep=sleeps.append, progress=False)
    assert fake.calls == 3 and sleeps == [5, 5]


def test_endpoint_failure_is_named() -> None:
    class Fake:
        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803
            return {"EndpointStatus": "Failed", "FailureReason": "image pull failed"}

    with pytest.raises(endpoint_sm.EndpointFailedError, match="image pull failed"):
        endpoint_sm.wait_for_endpoint(Fake(), "e", sleep=lambda s: None, progress=False)


def test_endpoint_wait_polls_until_in_service() -> None:
    states = iter(["Creating", "Creating", "InService"])
    sleeps: list[float] = []

    class Fake:
        def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803
            return {"EndpointStatus": next(states), "EndpointName": EndpointName}

    desc = endpoint_sm.wait_for_endpoint(Fake(), "e", poll_s=2, sleep=sleeps.append, progress=False)
    assert desc["EndpointStatus"] == "InService" and sleeps == [2, 2]


def test_delete_skips_parts_already_gone(aws: None) -> None:
    sm = boto3.client("sagemaker", region_name=REGION)
    names = endpoint_sm.deploy(
        sm,
        model_data=f"s3://{BUCKET}/m.tar.gz",
        role_arn=ROLE,
        region=REGION,
        where=S3Location(BUCKET),
        endpoint_name="ep-gone",
        suffix="x",
        progress=False,
    )
    sm.delete_endpoint_config(EndpointConfigName=names["config"])
    assert endpoint_sm.delete(sm, "ep-gone", progress=False) == [
        "endpoint ep-gone"
    ]  # config and its models unknown
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["scones-model-x"]
    assert endpoint_sm.delete(sm, "ep-gone", progress=False) == []


def test_not_found_is_told_apart_from_other_errors() -> None:
    from botocore.exceptions import ClientError

    def error(code: str, message: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeEndpoint")

    assert is_not_found(error("ValidationException", "Could not find endpoint x"))
    assert is_not_found(error("ResourceNotFound", "gone"))
    assert not is_not_found(error("AccessDeniedException", "no"))
    assert not is_not_found(ValueError("does not exist"))

    def describe(exc: ClientError) -> Any:
        def call() -> Any:
            raise exc

        return call

    with pytest.raises(ClientError):
        if_found(describe(error("ThrottlingException", "slow down")))
    assert if_found(describe(error("ValidationException", "does not exist"))) is None
    assert if_found(lambda: {"ok": 1}) == {"ok": 1}


def test_source_dir_follows_scones_project_and_a_missing_one_is_named(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scones.training.script import source_dir

    project = tmp_path / "project"
    (project / "ml").mkdir(parents=True)
    (project / "ml" / "train.py").write_text("")
    monkeypatch.setenv("SCONES_PROJECT", str(project))
    assert source_dir() == project / "ml"
    monkeypatch.setenv("SCONES_PROJECT", str(tmp_path / "elsewhere"))
    args = ("train", "--bucket", BUCKET, "--role", ROLE, "--no-wait", "--region", REGION)
    assert cli(*args, "--quiet") == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("scones sagemaker: SourceDirNotFoundError: ") and "Traceback" not in err
