"""``scones.endpoint.registry``: register, replace, list, unregister, and bad input."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from scones.endpoint import registry as reg
from scones.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")


def make_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def model_tar(tmp_path: Path) -> Path:
    return make_tar(
        tmp_path / "model.tar.gz",
        {"model.onnx": b"v1", "classes.json": b"{}", "code/inference.py": b"# v1\n"},
    )


def test_register_writes_endpoint_json_and_extracts_model(
    settings: Settings, model_tar: Path
) -> None:
    folder = reg.register_endpoint(
        settings,
        "scones-image-classifier",
        model_tar,
        capture_s3_uri="s3://b/data_capture",
        sampling_percentage=50,
    )
    assert folder == settings.endpoints_dir / "scones-image-classifier"
    data = json.loads((folder / "endpoint.json").read_text())
    assert set(data) == {"name", "variant", "model_data", "capture", "created"}
    assert data["name"] == "scones-image-classifier"
    assert data["variant"] == "AllTraffic"
    assert data["model_data"] == str(model_tar.resolve())
    assert data["capture"] == {
        "enabled": True,
        "destination_s3_uri": "s3://b/data_capture",
        "sampling_percentage": 50,
    }
    assert (folder / "model" / "model.onnx").read_bytes() == b"v1"
    assert (folder / "model" / "code" / "inference.py").is_file()
    assert {p.name for p in folder.iterdir()} == {"endpoint.json", "model"}


def test_capture_off(settings: Settings, model_tar: Path) -> None:
    reg.register_endpoint(settings, "e1", model_tar, capture_s3_uri=None)
    assert reg.read_endpoint(settings, "e1")["capture"]["enabled"] is False


def test_register_again_replaces_the_model(
    settings: Settings, model_tar: Path, tmp_path: Path
) -> None:
    reg.register_endpoint(settings, "e1", model_tar, capture_s3_uri=None)
    v2 = make_tar(tmp_path / "v2.tar.gz", {"model.onnx": b"v2", "code/inference.py": b"# v2\n"})
    folder = reg.register_endpoint(settings, "e1", v2, capture_s3_uri=None, variant="Blue")
    assert (folder / "model" / "model.onnx").read_bytes() == b"v2"
    assert not (folder / "model" / "classes.json").exists()
    assert reg.read_endpoint(settings, "e1")["variant"] == "Blue"
    assert {p.name for p in folder.iterdir()} == {"endpoint.json", "model"}


def test_list_and_unregister(settings: Settings, model_tar: Path) -> None:
    assert reg.list_endpoints(settings) == []
    reg.register_endpoint(settings, "b-endpoint", model_tar, capture_s3_uri=None)
    reg.register_endpoint(settings, "a-endpoint", model_tar, capture_s3_uri=None)
    assert [e["name"] for e in reg.list_endpoints(settings)] == ["a-endpoint", "b-endpoint"]
    reg.unregister_endpoint(settings, "a-endpoint")
    assert [e["name"] for e in reg.list_endpoints(settings)] == ["b-endpoint"]
    with pytest.raises(reg.EndpointNotFoundError, match="a-endpoint"):
        reg.unregister_endpoint(settings, "a-endpoint")
    reg.unregister_endpoint(settings, "a-endpoint", missing_ok=True)
    with pytest.raises(reg.EndpointNotFoundError):
        reg.read_endpoint(settings, "a-endpoint")


@pytest.mark.parametrize(
    "name", ["", "-lead", "trail-", "under_score", "a" * 64, "dot.ted", "../up"]
)
def test_bad_names_are_refused(settings: Settings, model_tar: Path, name: str) -> None:
    with pytest.raises(reg.InvalidEndpointNameError):
        reg.register_endpoint(settings, name, model_tar, capture_s3_uri=None)


def test_bad_variant_is_refused(settings: Settings, model_tar: Path) -> None:
    with pytest.raises(reg.InvalidEndpointNameError, match="variant"):
        reg.register_endpoint(settings, "ok", model_tar, capture_s3_uri=None, variant="All Traffic")


@pytest.mark.parametrize(
    ("uri", "pct"),
    [("http://b/x", 100), ("s3://", 100), ("s3:///x", 100), ("s3://b/x", 101), ("s3://b/x", -1)],
)
def test_bad_capture_settings_are_refused(
    settings: Settings, model_tar: Path, uri: str, pct: int
) -> None:
    with pytest.raises(reg.InvalidCaptureConfigError):
        reg.register_endpoint(
            settings, "ok", model_tar, capture_s3_uri=uri, sampling_percentage=pct
        )
    assert reg.list_endpoints(settings) == []


def test_missing_archive(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(reg.InvalidModelArchiveError, match="not found"):
        reg.register_endpoint(settings, "ok", tmp_path / "nope.tar.gz", capture_s3_uri=None)


def test_not_a_tar(settings: Settings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not gzip")
    with pytest.raises(reg.InvalidModelArchiveError, match="cannot extract"):
        reg.register_endpoint(settings, "ok", junk, capture_s3_uri=None)
    assert reg.list_endpoints(settings) == []


def test_archive_without_inference_code(settings: Settings, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "m.tar.gz", {"model.onnx": b"x"})
    with pytest.raises(reg.InvalidModelArchiveError, match="code/inference.py"):
        reg.register_endpoint(settings, "ok", tar, capture_s3_uri=None)
    assert not (settings.endpoints_dir / "ok" / "endpoint.json").exists()


def test_archive_escaping_its_folder_is_refused(settings: Settings, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "evil.tar.gz", {"../../evil.py": b"x", "code/inference.py": b""})
    with pytest.raises(reg.InvalidModelArchiveError):
        reg.register_endpoint(settings, "ok", tar, capture_s3_uri=None)
    assert not (settings.home / "evil.py").exists()
    assert not (settings.endpoints_dir / "evil.py").exists()


def test_a_failed_replacement_keeps_the_old_model(
    settings: Settings, model_tar: Path, tmp_path: Path
) -> None:
    reg.register_endpoint(settings, "e1", model_tar, capture_s3_uri=None)
    before = reg.read_endpoint(settings, "e1")
    bad = make_tar(tmp_path / "bad.tar.gz", {"model.onnx": b"v2"})
    with pytest.raises(reg.InvalidModelArchiveError):
        reg.register_endpoint(settings, "e1", bad, capture_s3_uri=None)
    assert reg.read_endpoint(settings, "e1") == before
    assert (settings.endpoints_dir / "e1" / "model" / "model.onnx").read_bytes() == b"v1"
