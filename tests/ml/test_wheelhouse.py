"""The endpoint's dependencies travel inside model.tar.gz and install offline (issue 16, item 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import pytest
from sagemaker_helpers import BUCKET, REGION, ROLE, cli

from scones.aws import S3Location
from scones.training import wheelhouse as wh

ML_DIR = Path(__file__).resolve().parents[2] / "ml"
PINS = ["onnxruntime==1.32.0", "numpy>=1.26", "Pillow>=10"]


def test_the_pins_are_the_versions_the_tests_use() -> None:
    serving = wh.requirement_lines((ML_DIR / "serving" / "requirements.txt").read_text())
    training = wh.requirement_lines((ML_DIR / "requirements.txt").read_text())
    assert serving == PINS
    assert training == [PINS[0]]
    assert PINS[0] == f"onnxruntime=={version('onnxruntime')}"


def test_offline_requirements_and_pip_download_command(tmp_path: Path) -> None:
    text = wh.offline_requirements(PINS)
    assert wh.requirement_lines(text) == PINS
    assert "--no-index\n--find-links wheels\n" in text
    tags = wh.dlc_platforms()
    assert tags[0] == "manylinux_2_35_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64"} <= set(tags)
    assert not any(t.startswith("manylinux_2_36") for t in tags)  # Ubuntu 22.04: glibc 2.35
    command = wh.pip_download_command(tmp_path / "r.in", tmp_path)
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    for option in (["--python-version", "3.11"], ["--abi", "cp311"], ["--implementation", "cp"]):
        i = command.index(option[0])
        assert command[i : i + 2] == option
    assert "--only-binary=:all:" in command and command.count("--platform") == len(tags)


class FakePip:
    """Stands in for `pip download`: writes one wheel per requirement (or fails)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls += 1
        if self.fail:
            return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")
        dest = Path(command[command.index("--dest") + 1])
        reqs = Path(command[command.index("--requirement") + 1]).read_text().split()
        for req in reqs:
            (dest / f"{req.split('=')[0].split('>')[0]}-1.0-py3-none-any.whl").write_bytes(b"w")
        return subprocess.CompletedProcess(command, 0, "", "")


def test_ensure_wheels_fetches_once_into_the_cache(tmp_path: Path) -> None:
    pip = FakePip()
    folder = wh.ensure_wheels(PINS, tmp_path, run=pip)
    assert folder == wh.wheel_cache_dir(PINS, tmp_path) and folder.parent == tmp_path / "wheels"
    assert [p.name for p in wh.wheel_files(folder)] == [
        "Pillow-1.0-py3-none-any.whl",
        "numpy-1.0-py3-none-any.whl",
        "onnxruntime-1.0-py3-none-any.whl",
    ]
    assert wh.ensure_wheels(PINS, tmp_path, run=pip) == folder and pip.calls == 1
    assert wh.wheel_cache_dir(PINS[:1], tmp_path) != folder  # other pins, other folder


def test_ensure_wheels_failure_is_named_and_leaves_no_cache(tmp_path: Path) -> None:
    with pytest.raises(wh.WheelhouseError, match="No matching distribution.*--wheels DIR"):
        wh.ensure_wheels(PINS, tmp_path, run=FakePip(fail=True))
    assert not wh.wheel_cache_dir(PINS, tmp_path).exists()


def _fake_wheels(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a-1.0-py3-none-any.whl").write_bytes(b"wheel a")
    (folder / "b-2.0-py3-none-any.whl").write_bytes(b"wheel b")
    return folder


def _members(tar_path: Path) -> dict[str, bytes]:
    members = {}
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member) if member.isfile() else None
            if data is not None:
                members[member.name] = data.read()
    return members


def test_repack_adds_wheels_and_offline_requirements(tiny_model_tar: Path, tmp_path: Path) -> None:
    dest = wh.repack_with_wheels(
        tiny_model_tar, tmp_path / "model.tar.gz", _fake_wheels(tmp_path / "w")
    )
    before, after = _members(tiny_model_tar), _members(dest)
    assert set(after) == set(before) | {
        "code/wheels/a-1.0-py3-none-any.whl",
        "code/wheels/b-2.0-py3-none-any.whl",
    }
    for name in set(before) - {wh.REQUIREMENTS}:
        assert after[name] == before[name]
    assert after[wh.REQUIREMENTS].decode() == wh.offline_requirements(PINS)
    assert wh.archive_requirements(dest) == (PINS, True)
    with tarfile.open(dest) as tar:
        assert {(m.mtime, m.uid) for m in tar.getmembers()} == {(0, 0)}


def test_repack_refuses_an_archive_without_requirements(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(__file__, arcname="model.onnx")
    with pytest.raises(wh.WheelhouseError, match="has no code/requirements.txt"):
        wh.repack_with_wheels(bad, tmp_path / "out.tar.gz", _fake_wheels(tmp_path / "w"))
    (tmp_path / "plain.txt").write_text("not a tar")
    with pytest.raises(wh.WheelhouseError, match="not a readable model.tar.gz"):
        wh.archive_requirements(tmp_path / "plain.txt")


def test_offline_model_on_s3_once(aws: None, tiny_model_tar: Path, tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(tiny_model_tar), BUCKET, "scones/output/job/model.tar.gz")
    where = S3Location(BUCKET)
    uri = wh.offline_model(
        s3,
        f"s3://{BUCKET}/scones/output/job/model.tar.gz",
        where,
        "20261128-000000",
        wheels=_fake_wheels(tmp_path / "w"),
    )
    assert uri == f"s3://{BUCKET}/scones/models/20261128-000000/model.tar.gz"
    s3.download_file(BUCKET, "scones/models/20261128-000000/model.tar.gz", str(tmp_path / "m"))
    assert "code/wheels/a-1.0-py3-none-any.whl" in _members(tmp_path / "m")
    # an archive that already ships its wheels is deployed as it is
    assert wh.offline_model(s3, uri, where, "again", run=FakePip(fail=True)) == uri
    with pytest.raises(wh.WheelhouseError, match="not an S3 object URI"):
        wh.offline_model(s3, "model.tar.gz", where, "x")


def test_cli_deploy_ships_the_wheels(aws: None, tiny_model_tar: Path, tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(tiny_model_tar), BUCKET, "in/model.tar.gz")
    wheels = _fake_wheels(tmp_path / "w")
    args = ["deploy", "--model-data", f"s3://{BUCKET}/in/model.tar.gz", "--wheels", str(wheels)]
    assert cli(*args, "--bucket", BUCKET, "--role", ROLE, "--region", REGION, "--quiet") == 0
    sm = boto3.client("sagemaker", region_name=REGION)
    (model,) = sm.list_models()["Models"]
    url = sm.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]["ModelDataUrl"]
    suffix = model["ModelName"].removeprefix("scones-model-")
    assert url == f"s3://{BUCKET}/scones/models/{suffix}/model.tar.gz"


def test_cli_deploy_with_an_empty_wheels_folder_is_one_line(
    aws: None, tiny_model_tar: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(tiny_model_tar), BUCKET, "in/model.tar.gz")
    (tmp_path / "empty").mkdir()
    args = ["deploy", "--model-data", f"s3://{BUCKET}/in/model.tar.gz"]
    args += ["--wheels", str(tmp_path / "empty"), "--bucket", BUCKET, "--role", ROLE]
    assert cli(*args, "--region", REGION, "--quiet") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("scones sagemaker: WheelhouseError: no wheels (*.whl) in ")
    assert not boto3.client("sagemaker", region_name=REGION).list_models()["Models"]


def _no_network_prefix() -> list[str]:
    """``unshare -rn`` (a new, empty network namespace) when this machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


@pytest.mark.slow
def test_archive_requirements_install_with_the_network_off(
    tiny_model_tar: Path, tmp_path: Path
) -> None:
    """The real wheels for the container (CPython 3.11, manylinux x86_64), fetched once into the
    cache (`SCONES_CACHE_DIR`), installed into a bare venv from the archive's code/ alone."""
    if sys.version_info[:2] != (3, 11) or os.uname().machine != "x86_64":
        pytest.skip("installs the container's cp311 x86_64 wheels: needs CPython 3.11 on x86_64")
    try:
        wheels = wh.ensure_wheels(PINS)
    except wh.WheelhouseError as exc:
        pytest.skip(f"no cached wheels and none fetched: {exc}")
    model = tmp_path / "opt" / "ml" / "model"
    model.mkdir(parents=True)
    with tarfile.open(wh.repack_with_wheels(tiny_model_tar, tmp_path / "m.tar.gz", wheels)) as tar:
        tar.extractall(model, filter="data")  # as SageMaker extracts it into /opt/ml/model
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    dead = "http://127.0.0.1:9"  # nothing listens: any attempt to reach an index fails at once
    env = {**os.environ, "PIP_INDEX_URL": dead, "HTTPS_PROXY": dead, "HTTP_PROXY": dead}
    env.pop("PIP_FIND_LINKS", None)
    install = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    install += ["-r", str(model / "code" / "requirements.txt")]  # what the container runs
    done = subprocess.run(
        _no_network_prefix() + install, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check = (
        "import sys, onnxruntime, numpy as np, PIL;"
        f"sys.path.insert(0, {str(model / 'code')!r}); import inference;"
        f"m = inference.model_fn({str(model)!r});"
        "p = inference.predict_fn(np.zeros((3, 32, 32), np.float32), m);"
        "print(onnxruntime.__version__, round(float(p.sum()), 4))"
    )
    out = subprocess.run([python, "-c", check], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [version("onnxruntime"), "1.0"]
