"""Shared fixtures of the ML tests: a small official-format archive and a real tiny model."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

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


@pytest.fixture()
def small_archive(tmp_path: Path) -> Path:
    """A small archive: 24 bicycles, 24 motorcycles, 4 apples (train), 6 of each (test)."""
    return build_cifar_archive(tmp_path / "cifar-100-python.tar.gz", seed=1)
