"""Shared fixtures of the ML tests: a small official-format archive, a real tiny model, and moto
(S3, SageMaker) for the SageMaker path."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sagemaker_helpers import BUCKET, REGION

from scones.data.etl import extract
from scones.data.synthetic import build_cifar_archive
from scones.training.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model.tar.gz from the real ETL + training path (a few seconds, built once)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_model_tar`` extracted, as SageMaker extracts it into /opt/ml/model."""
    dest = tmp_path_factory.mktemp("tiny-model-extracted")
    with tarfile.open(tiny_model_tar) as tar:
        tar.extractall(dest, filter="data")
    return dest


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ETL output of a tiny archive: 16 bicycles and 16 motorcycles, 4 test images each."""
    root = tmp_path_factory.mktemp("tiny-data")
    archive = build_cifar_archive(root / "a.tar.gz", {"bicycle": 16, "motorcycle": 16}, n_test=4)
    extract(archive, root / "data", progress=False)
    return root / "data"


@pytest.fixture()
def small_archive(tmp_path: Path) -> Path:
    """A small archive: 24 bicycles, 24 motorcycles, 4 apples (train), 6 of each (test)."""
    return build_cifar_archive(tmp_path / "cifar-100-python.tar.gz", seed=1)


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for every AWS service, the test bucket created, no real credentials or endpoints.
    (moto has no SageMaker quotas: the quota check warns and goes on, as when it is denied.)"""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SAGEMAKER",
        "AWS_ENDPOINT_URL_SERVICE_QUOTAS",
        "AWS_PROFILE",
        "SCONES_SAGEMAKER_ROLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A small ETL output folder (3 + 3 training images, 2 + 2 test images)."""
    archive = build_cifar_archive(tmp_path / "a.tar.gz", {"bicycle": 3, "motorcycle": 3}, n_test=2)
    extract(archive, tmp_path / "data", progress=False)
    return tmp_path / "data"
