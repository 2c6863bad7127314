"""scones etl on archives in the official CIFAR-100 format."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import pickletools
import tarfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from scones.data import cli as etl_cli
from scones.data import etl
from scones.data.synthetic import FINE_LABEL_NAMES, dumps_py2


def read_member(archive: Path, name: str, encoding: str = "bytes") -> dict:
    with tarfile.open(archive) as tar:
        fh = tar.extractfile(f"cifar-100-python/{name}")
        assert fh is not None
        return pickle.load(fh, encoding=encoding)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    etl_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["etl", *argv])
    return int(args.func(args))


def test_archive_helper_writes_the_official_pickle_format(small_archive: Path) -> None:
    with tarfile.open(small_archive) as tar:
        assert sorted(tar.getnames()) == [
            f"cifar-100-python/{n}" for n in ("meta", "test", "train")
        ]
        raw = tar.extractfile("cifar-100-python/train").read()  # type: ignore[union-attr]
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    assert {"SHORT_BINSTRING", "BINSTRING"} <= ops  # Python 2 str, as in the official files
    as_bytes = read_member(small_archive, "train")
    assert set(as_bytes) == {
        b"filenames",
        b"batch_label",
        b"fine_labels",
        b"coarse_labels",
        b"data",
    }
    as_str = read_member(small_archive, "meta", encoding="latin1")
    assert as_str["fine_label_names"] == list(FINE_LABEL_NAMES) and len(FINE_LABEL_NAMES) == 100
    assert len(as_str["coarse_label_names"]) == 20
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (52, 3072)


def test_extract_labels_order_and_manifests(small_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = etl.extract(small_archive, out, ["motorcycle", "bicycle"], progress=False)
    assert result.counts == {
        "train": {"motorcycle": 24, "bicycle": 24},
        "test": {"motorcycle": 6, "bicycle": 6},
    }
    train = read_member(small_archive, "train")
    fine = train[b"fine_labels"]
    for split, n in (("train", 48), ("test", 12)):
        rows = [line.split("\t") for line in (out / f"{split}.lst").read_text().splitlines()]
        assert len(rows) == n
        assert [int(r[0]) for r in rows] == list(range(n))
        assert all((out / r[2]).is_file() and r[2].startswith(f"{split}/") for r in rows)
        for _index, label, rel in rows:
            assert rel.endswith(("_motorcycle.png", "_bicycle.png"))
            assert int(label) == (0 if rel.endswith("_motorcycle.png") else 1)
        assert len(list((out / split).glob("*.png"))) == n
    # the file name carries the archive position; label follows the requested order
    rows = [line.split("\t") for line in (out / "train.lst").read_text().splitlines()]
    for _, label, rel in rows:
        position = int(Path(rel).name.split("_")[0])
        assert FINE_LABEL_NAMES[fine[position]] == ["motorcycle", "bicycle"][int(label)]
    assert "apple" not in (out / "train.lst").read_text()
    meta = __import__("json").loads((out / "classes.json").read_text())
    assert meta["classes"] == ["motorcycle", "bicycle"]


def test_png_pixels_equal_the_pickle(small_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    etl.extract(small_archive, out, progress=False)
    test = read_member(small_archive, "test")
    rows = [line.split("\t") for line in (out / "test.lst").read_text().splitlines()]
    for _, _, rel in rows:
        position = int(Path(rel).name.split("_")[0])
        expected = test[b"data"][position].reshape(3, 32, 32).transpose(1, 2, 0)
        with Image.open(out / rel) as img:
            assert img.mode == "RGB" and img.size == (32, 32)
            np.testing.assert_array_equal(np.asarray(img), expected)


def test_rerun_is_deterministic(small_archive: Path, tmp_path: Path) -> None:
    def snapshot(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    etl.extract(small_archive, tmp_path / "a", progress=False)
    etl.extract(small_archive, tmp_path / "b", progress=False)
    first = snapshot(tmp_path / "a")
    assert first == snapshot(tmp_path / "b")
    etl.extract(small_archive, tmp_path / "a", ["bicycle"], progress=False)  # no stale files
    assert all("motorcycle" not in name for name in snapshot(tmp_path / "a"))


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("bicycel", "bicycle"), ("motorbike", "motorcycle"), ("Bicycle", "bicycle")],
)
def test_unknown_class_suggests_close_names(
    small_archive: Path, tmp_path: Path, name: str, suggestion: str
) -> None:
    with pytest.raises(etl.UnknownClassError, match=f"did you mean .*{suggestion}"):
        etl.extract(small_archive, tmp_path / "d", ["bicycle", name], progress=False)


def test_class_errors(small_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(etl.UnknownClassError, match="valid: apple"):
        etl.extract(small_archive, tmp_path / "d", ["zzzzzz"], progress=False)
    with pytest.raises(etl.UnknownClassError, match="twice"):
        etl.extract(small_archive, tmp_path / "d", ["bicycle", "bicycle"], progress=False)


def _tar_with(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_corrupt_archives(small_archive: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"this is not a tarball" * 10)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(small_archive.read_bytes()[:2000])
    plain_gz = tmp_path / "plain.tar.gz"
    plain_gz.write_bytes(gzip.compress(b"x" * 100))
    meta = dumps_py2({b"fine_label_names": [n.encode() for n in FINE_LABEL_NAMES]})
    cases = {
        garbage: "not a readable",
        truncated: "unreadable|not a readable",
        plain_gz: "not a readable|no cifar",
        _tar_with(tmp_path, {"other/file": b"1"}): "no cifar-100-python/meta",
        _tar_with(
            tmp_path,
            {
                "cifar-100-python/meta": b"not a pickle",
                "cifar-100-python/train": b"",
                "cifar-100-python/test": b"",
            },
        ): "unreadable",
        _tar_with(
            tmp_path,
            {
                "cifar-100-python/meta": meta,
                "cifar-100-python/train": dumps_py2([1]),
                "cifar-100-python/test": dumps_py2([1]),
            },
        ): "not a CIFAR pickle",
        _tar_with(
            tmp_path,
            {
                "cifar-100-python/meta": meta,
                "cifar-100-python/train": dumps_py2({b"data": b"x"}),
                "cifar-100-python/test": dumps_py2({b"data": b"x"}),
            },
        ): "unexpected",
    }
    for path, message in cases.items():
        snapshot = path.read_bytes()
        with pytest.raises(etl.CorruptArchiveError, match=message):
            etl.extract(path, tmp_path / "out", progress=False)
        path.write_bytes(snapshot)  # the next case may reuse bad.tar.gz


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(etl.ArchiveNotFoundError, match="not found"):
        etl.resolve_archive(str(tmp_path / "nope.tar.gz"))


class FakeResponse(io.BytesIO):
    headers = {"Content-Length": "0"}


def test_download_verifies_md5_and_caches(small_archive: Path, tmp_path: Path) -> None:
    payload = small_archive.read_bytes()
    good = hashlib.md5(payload).hexdigest()
    calls: list[str] = []

    def opener(url: str) -> FakeResponse:
        calls.append(url)
        return FakeResponse(payload)

    url = "https://example.invalid/cifar-100-python.tar.gz"
    cache = tmp_path / "cache"
    path = etl.resolve_archive(url, cache_dir=cache, expected_md5=good, opener=opener)
    assert path == cache / "cifar-100-python.tar.gz" and path.read_bytes() == payload
    again = etl.resolve_archive(url, cache_dir=cache, expected_md5=good, opener=opener)
    assert again == path and len(calls) == 1  # served from the cache
    assert list(cache.iterdir()) == [path]


def test_download_md5_mismatch_keeps_nothing(small_archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    opener = lambda url: FakeResponse(small_archive.read_bytes())  # noqa: E731
    with pytest.raises(etl.ChecksumMismatchError, match=etl.OFFICIAL_MD5):
        etl.resolve_archive(etl.OFFICIAL_URL, cache_dir=cache, opener=opener)  # known MD5
    assert list(cache.iterdir()) == []


def test_download_failure_is_named(tmp_path: Path) -> None:
    def opener(url: str) -> FakeResponse:
        raise OSError("connection refused")

    with pytest.raises(etl.ArchiveNotFoundError, match="connection refused"):
        etl.resolve_archive("https://example.invalid/a.tar.gz", cache_dir=tmp_path, opener=opener)


def test_local_md5_option(small_archive: Path) -> None:
    with pytest.raises(etl.ChecksumMismatchError):
        etl.resolve_archive(str(small_archive), expected_md5="0" * 32)


@pytest.fixture()
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
        )
        client.create_bucket(Bucket="etl-bucket")
        yield client


def test_s3_upload_is_idempotent(small_archive: Path, tmp_path: Path, s3: object) -> None:
    out = tmp_path / "data"
    result = etl.extract(small_archive, out, progress=False)
    first = etl.upload_tree(s3, out, result.files, "etl-bucket", "/cifar/", progress=False)
    assert (first.uploaded, first.skipped) == (63, 0)  # 60 PNGs, 2 manifests, classes.json
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="etl-bucket")["Contents"]}  # type: ignore[attr-defined]
    assert "cifar/train.lst" in keys and "cifar/classes.json" in keys
    assert sum(k.startswith("cifar/test/") for k in keys) == 12
    second = etl.upload_tree(s3, out, result.files, "etl-bucket", "cifar", progress=False)
    assert (second.uploaded, second.skipped) == (0, 63)
    (out / "classes.json").write_text('{"classes": ["changed"]}\n')
    third = etl.upload_tree(s3, out, result.files, "etl-bucket", "cifar", progress=False)
    assert (third.uploaded, third.skipped) == (1, 62)
    body = s3.get_object(Bucket="etl-bucket", Key="cifar/classes.json")["Body"].read()  # type: ignore[attr-defined]
    assert b"changed" in body


def test_cli_errors_are_one_line(
    small_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(
            "--archive",
            str(small_archive),
            "--output",
            str(tmp_path / "o"),
            "--classes",
            "bicycle,motorcycel",
            "--quiet",
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "motorcycle" in err
    assert err.startswith("scones etl: UnknownClassError: ")
    assert cli("--archive", str(tmp_path / "missing.tar.gz"), "--output", str(tmp_path / "o")) == 2
    assert "ArchiveNotFoundError" in capsys.readouterr().err


def test_cli_writes_and_uploads(
    small_archive: Path,
    tmp_path: Path,
    s3: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert (
        cli(
            "--archive",
            str(small_archive),
            "--output",
            str(tmp_path / "o"),
            "--bucket",
            "etl-bucket",
            "--prefix",
            "p",
            "--quiet",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "train: 48 images (bicycle 24, motorcycle 24)" in out
    assert "uploaded 63, unchanged 0 -> s3://etl-bucket/p" in out


def test_shared_vehicles_archive(shared_archive: Path, tmp_path: Path) -> None:
    result = etl.extract(shared_archive, tmp_path / "data", progress=False)
    assert result.counts == {
        "train": {"bicycle": 400, "motorcycle": 400},
        "test": {"bicycle": 100, "motorcycle": 100},
    }


def test_cli_upload_to_missing_bucket_is_one_line(
    small_archive: Path,
    tmp_path: Path,
    s3: object,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    rc = cli(
        "--archive",
        str(small_archive),
        "--output",
        str(tmp_path / "o"),
        "--bucket",
        "no-such-bucket",
        "--quiet",
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("scones etl: UploadFailedError: upload failed: ")
    assert "NoSuchBucket" in err and "Traceback" not in err
