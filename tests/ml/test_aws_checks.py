"""What `scones sagemaker train/deploy` check before anything is uploaded (issue 16, items 1
and 3): the region's container account, the instance family, and the Service Quotas quota."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from sagemaker_helpers import BUCKET, QUOTA_PAGE, REGION, ROLE, cli, quota_client

from scones import aws as scones_aws
from scones import sagemaker_cli
from scones.aws import (
    DLC_ACCOUNTS,
    InsufficientQuotaError,
    UnknownRegionError,
    UnsupportedInstanceTypeError,
    check_instance_quota,
    image_uri,
    quota_console_url,
    quota_name,
    refused_kind,
)

# The regions the issue found missing; all are in the SDK's PyTorch 2.5.1 registries.
ISSUE_REGIONS = [
    "il-central-1",
    "me-central-1",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "eu-central-2",
    "eu-south-2",
    "ca-west-1",
    "mx-central-1",
    "us-gov-east-1",
]
REFUSED = {
    "ml.inf1.xlarge": "Inferentia",
    "ml.inf2.xlarge": "Inferentia",
    "ml.trn1.2xlarge": "Trainium",
    "ml.trn1n.32xlarge": "Trainium",
    "ml.trn2.48xlarge": "Trainium",
    "ml.c6g.large": "Graviton",
    "ml.c6gn.xlarge": "Graviton",
    "ml.c7g.xlarge": "Graviton",
    "ml.m6g.large": "Graviton",
    "ml.m6gd.large": "Graviton",
    "ml.m7g.large": "Graviton",
    "ml.r6g.large": "Graviton",
    "ml.r7gd.xlarge": "Graviton",
    "ml.t4g.medium": "Graviton",
}
X86 = [
    "ml.m5.xlarge",
    "ml.m5.large",
    "ml.t2.medium",
    "ml.c5n.xlarge",
    "ml.m6i.large",
    "ml.c7i.large",
    "ml.r5d.large",
    "ml.g4dn.xlarge",
    "ml.g5.xlarge",
    "ml.g6e.xlarge",
    "ml.gr6.4xlarge",
    "ml.p4d.24xlarge",
    "ml.p5en.48xlarge",
]
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/my-arm64-pytorch:1"


def test_region_map_covers_every_published_region() -> None:
    assert len(DLC_ACCOUNTS) == 38  # sagemaker-2.257.7 image_uri_config/pytorch.json, 2.5.1
    assert set(ISSUE_REGIONS) <= set(DLC_ACCOUNTS)
    assert DLC_ACCOUNTS["il-central-1"] == "780543022126"
    assert DLC_ACCOUNTS["us-gov-east-1"] == "446045086412"
    assert DLC_ACCOUNTS["ap-east-2"] == "975050140332"
    for region, account in DLC_ACCOUNTS.items():
        uri = image_uri("inference", region, "ml.m5.large")
        domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        assert uri.startswith(f"{account}.dkr.ecr.{region}.{domain}/pytorch-inference:2.5.1-cpu-")


def test_unknown_region_fails_early_with_a_suggestion() -> None:
    with pytest.raises(UnknownRegionError, match="did you mean us-east-1") as err:
        image_uri("training", "us-east1", "ml.m5.xlarge")
    assert "--image" in str(err.value)
    with pytest.raises(UnknownRegionError, match="'xx-nowhere-9'"):
        image_uri("inference", "xx-nowhere-9", "ml.m5.large")


@pytest.mark.parametrize("instance_type", sorted(REFUSED))
def test_inferentia_trainium_graviton_are_refused(instance_type: str) -> None:
    kind = REFUSED[instance_type]
    assert (refused_kind(instance_type) or "").startswith(kind)
    for job in ("training", "inference"):
        with pytest.raises(UnsupportedInstanceTypeError, match=f"{kind}.*--image"):
            image_uri(job, REGION, instance_type)


@pytest.mark.parametrize("instance_type", X86)
def test_x86_types_get_the_pytorch_image(instance_type: str) -> None:
    assert refused_kind(instance_type) is None
    gpu = instance_type.split(".")[1].startswith(("g", "p"))
    assert ("-gpu-" if gpu else "-cpu-") in image_uri("training", REGION, instance_type)


@pytest.mark.parametrize("bad", ["m5.xlarge", "ml.m5", "ml..xlarge", "ml.m5.xlarge.extra"])
def test_malformed_instance_type(bad: str) -> None:
    with pytest.raises(UnsupportedInstanceTypeError, match="not a SageMaker instance type"):
        image_uri("training", REGION, bad)


def _bucket_keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET)
    return [o["Key"] for o in listing.get("Contents", [])]


def _train(data_dir: Path, *extra: str) -> int:
    return cli(
        "train",
        "--data",
        str(data_dir),
        "--bucket",
        BUCKET,
        "--role",
        ROLE,
        "--job-name",
        "job-x",
        "--no-wait",
        "--region",
        REGION,
        "--quiet",
        *extra,
    )


def test_cli_refuses_graviton_before_uploading_and_image_overrides(
    aws: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(data_dir, "--instance-type", "ml.c7g.xlarge") == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "scones sagemaker: UnsupportedInstanceTypeError: ml.c7g.xlarge runs on Graviton"
    )
    assert _bucket_keys() == []
    assert _train(data_dir, "--instance-type", "ml.c7g.xlarge", "--image", IMAGE) == 0
    job = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName="job-x"
    )
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["ResourceConfig"]["InstanceType"] == "ml.c7g.xlarge"


def test_cli_deploy_refuses_inferentia_unless_image(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["deploy", "--model-data", f"s3://{BUCKET}/m.tar.gz", "--no-wheels", "--bucket", BUCKET]
    args += ["--role", ROLE, "--region", REGION, "--quiet", "--instance-type", "ml.inf1.xlarge"]
    assert cli(*args) == 2
    assert (
        "UnsupportedInstanceTypeError: ml.inf1.xlarge runs on Inferentia" in capsys.readouterr().err
    )
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_models()["Models"] == []
    assert cli(*args, "--image", IMAGE) == 0
    (model,) = sm.list_models()["Models"]
    container = sm.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]
    assert container["Image"] == IMAGE


def test_cli_unknown_region_is_named(
    aws: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(data_dir, "--region", "mars-east-1") == 2
    assert "UnknownRegionError: AWS publishes no PyTorch 2.5.1" in capsys.readouterr().err
    assert _bucket_keys() == []


def test_quota_names_and_console_urls() -> None:
    assert quota_name("ml.m5.xlarge", "training") == "ml.m5.xlarge for training job usage"
    assert quota_name("ml.m5.xlarge", "spot") == "ml.m5.xlarge for spot training job usage"
    assert quota_name("ml.m5.large", "endpoint") == "ml.m5.large for endpoint usage"
    assert quota_console_url("eu-west-1", "L-X") == (
        "https://eu-west-1.console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas/L-X"
    )
    assert quota_console_url("cn-north-1", "L-X").startswith("https://console.amazonaws.cn/")
    assert "amazonaws-us-gov.com" in quota_console_url("us-gov-west-1", "L-X")


def _check(client: object, instance_type: str = "ml.m5.xlarge", usage: str = "training") -> object:
    warnings: list[str] = []
    result = check_instance_quota(
        client, region=REGION, instance_type=instance_type, usage=usage, warn=warnings.append
    )
    assert not warnings, warnings
    return result


def test_quota_found_by_name_on_a_later_page_uses_the_applied_value() -> None:
    client, stub = quota_client("ml.m5.xlarge for training job usage", "L-TEST0001", 3.0)
    quota = _check(client)
    stub.assert_no_pending_responses()
    assert quota == scones_aws.Quota(
        "ml.m5.xlarge for training job usage", "L-TEST0001", 3.0, applied=True
    )


def test_quota_without_applied_value_uses_the_default() -> None:
    client, _ = quota_client("ml.m5.large for endpoint usage", "L-TEST0002", None, default=2.0)
    quota = _check(client, "ml.m5.large", "endpoint")
    assert quota == scones_aws.Quota(
        "ml.m5.large for endpoint usage", "L-TEST0002", 2.0, applied=False
    )


def test_quota_zero_says_which_quota_to_raise_and_where() -> None:
    client, _ = quota_client("ml.g4dn.xlarge for training job usage", "L-TEST0003", 0.0)
    with pytest.raises(InsufficientQuotaError) as err:
        _check(client, "ml.g4dn.xlarge")
    message = str(err.value)
    assert "'ml.g4dn.xlarge for training job usage' (L-TEST0003) is 0 in us-east-1" in message
    assert quota_console_url(REGION, "L-TEST0003") in message
    assert (
        "aws service-quotas request-service-quota-increase --service-code sagemaker "
        "--quota-code L-TEST0003 --desired-value 1 --region us-east-1"
    ) in message


def test_quota_api_denied_or_missing_is_a_warning() -> None:
    client = boto3.client(
        "service-quotas", region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "list_aws_default_service_quotas", "AccessDeniedException", "not allowed"
        )
        stub.add_response("list_aws_default_service_quotas", {"Quotas": []}, QUOTA_PAGE)
        warnings: list[str] = []
        for _ in range(2):
            assert (
                check_instance_quota(
                    client,
                    region=REGION,
                    instance_type="ml.m5.xlarge",
                    usage="training",
                    warn=warnings.append,
                )
                is None
            )
    assert "could not read the quota 'ml.m5.xlarge for training job usage'" in warnings[0]
    assert "AccessDeniedException" in warnings[0]
    assert "lists no SageMaker quota 'ml.m5.xlarge for training job usage'" in warnings[1]


def test_cli_train_stops_on_quota_zero_before_uploading(
    aws: None, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = quota_client("ml.m5.xlarge for training job usage", "L-TEST0004", 0.0)
    monkeypatch.setattr(sagemaker_cli, "_quota_client", lambda session: client)
    assert _train(data_dir) == 2
    err = capsys.readouterr().err
    assert err.startswith("scones sagemaker: InsufficientQuotaError: the SageMaker quota ")
    assert "request-service-quota-increase" in err and "Traceback" not in err
    assert _bucket_keys() == []
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    stub.assert_no_pending_responses()


def test_cli_train_spot_checks_the_spot_quota(
    aws: None, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, stub = quota_client("ml.m5.xlarge for spot training job usage", "L-TEST0005", 1.0)
    monkeypatch.setattr(sagemaker_cli, "_quota_client", lambda session: client)
    assert _train(data_dir, "--spot") == 0
    stub.assert_no_pending_responses()
    assert "warning" not in capsys.readouterr().err


def test_cli_quota_unavailable_warns_and_goes_on(
    aws: None, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(data_dir) == 0  # moto has no SageMaker quotas: NoSuchResourceException
    err = capsys.readouterr().err
    assert "scones sagemaker: warning: could not read the quota 'ml.m5.xlarge for training" in err
    assert "scones/code/job-x/sourcedir.tar.gz" in _bucket_keys()


def test_cli_deploy_stops_on_endpoint_quota_zero(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client, _ = quota_client("ml.m5.large for endpoint usage", "L-TEST0006", 0.0)
    monkeypatch.setattr(sagemaker_cli, "_quota_client", lambda session: client)
    args = ["deploy", "--model-data", f"s3://{BUCKET}/m.tar.gz", "--bucket", BUCKET]
    assert cli(*args, "--role", ROLE, "--region", REGION, "--quiet") == 2
    err = capsys.readouterr().err
    assert "InsufficientQuotaError: the SageMaker quota 'ml.m5.large for endpoint usage'" in err
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_models()["Models"] == [] and sm.list_endpoints()["Endpoints"] == []
    assert _bucket_keys() == []
