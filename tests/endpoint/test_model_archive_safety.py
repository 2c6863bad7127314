"""Hostile model archives for ``scones deploy --local --model``: each is refused with a one-line
``InvalidModelArchiveError`` naming the member, and nothing lands outside the endpoint folder.

The archives are built here, byte by byte where ``tarfile`` would not write them.
"""

from __future__ import annotations

import io
import struct
import tarfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from scones import archive
from scones.endpoint import registry as reg
from scones.settings import Settings

GOOD = {"model.onnx": b"onnx", "classes.json": b"{}", "code/inference.py": b"# ok\n"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_root=tmp_path, home=tmp_path / "home")


def build(path: Path, members: Sequence[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A tar.gz of ``members``: (name, bytes) for files, or a TarInfo written as it is."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def zero_bomb(path: Path, size: int) -> Path:
    """A valid tar.gz holding ``model.onnx`` of ``size`` zero bytes (a multiple of 1 MiB), built
    from one compressed MiB repeated, so a 1 GiB member costs a few KB and no compression time."""
    info = tarfile.TarInfo("model.onnx")
    info.size = size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    mib = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.compress(bytes(1024)) + comp.flush(zlib.Z_FINISH)  # the end-of-archive blocks
    crc = zlib.crc32(header)
    for _ in range(size >> 20):
        crc = zlib.crc32(bytes(1 << 20), crc)
    crc = zlib.crc32(bytes(1024), crc)
    total = len(header) + size + 1024
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        out.write(head + mib * (size >> 20) + tail)
        out.write(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return path


def refused(settings: Settings, tar: Path, match: str, **kwargs: object) -> str:
    with pytest.raises(reg.InvalidModelArchiveError, match=match) as info:
        reg.register_endpoint(settings, "ep", tar, capture_s3_uri=None, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert not (settings.endpoints_dir / "ep" / "endpoint.json").exists()
    assert not (settings.endpoints_dir / "ep" / "model").exists()
    leftovers = list((settings.endpoints_dir / "ep").glob(".model.*"))
    assert leftovers == []
    return message


def test_dot_dot_escape(settings: Settings, tmp_path: Path) -> None:
    tar = build(tmp_path / "a.tar.gz", [*GOOD.items(), ("code/../../../../escaped.py", b"x")])
    message = refused(settings, tar, r"'code/\.\./\.\./\.\./\.\./escaped.py'.*'\.\.'")
    assert "refused" in message
    assert not list(tmp_path.rglob("escaped.py"))


def test_absolute_path(settings: Settings, tmp_path: Path) -> None:
    target = tmp_path / "abs-target.py"
    tar = build(tmp_path / "a.tar.gz", [*GOOD.items(), (str(target), b"x")])
    refused(settings, tar, "absolute path")
    assert not target.exists()


def test_symlink_then_a_file_through_it(settings: Settings, tmp_path: Path) -> None:
    """The bypass shape: a link to a folder outside, then a member written through the link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = build(
        tmp_path / "a.tar.gz",
        [*GOOD.items(), link("code/lib", str(outside)), ("code/lib/planted.py", b"x")],
    )
    refused(settings, tar, r"'code/lib'.*symbolic link")
    assert list(outside.iterdir()) == []


def test_relative_symlink_chain_is_refused_too(settings: Settings, tmp_path: Path) -> None:
    """Even links that stay inside are refused: no chain of them can be built up."""
    members: list[tarfile.TarInfo | tuple[str, bytes]] = [
        link("a", "."),
        link("a/b", "../" * 8),
        *GOOD.items(),
    ]
    tar = build(tmp_path / "a.tar.gz", members)
    refused(settings, tar, r"member 'a'.*symbolic link")


def test_hardlink(settings: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    tar = build(
        tmp_path / "a.tar.gz", [*GOOD.items(), link("stolen", str(secret), tarfile.LNKTYPE)]
    )
    refused(settings, tar, r"'stolen'.*hard link")


@pytest.mark.parametrize(
    ("kind", "word"),
    [(tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_devices_and_fifos(settings: Settings, tmp_path: Path, kind: bytes, word: str) -> None:
    info = tarfile.TarInfo("code/dev")
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    tar = build(tmp_path / "a.tar.gz", [*GOOD.items(), info])
    refused(settings, tar, f"'code/dev'.*{word}")


@pytest.mark.parametrize("name", ["code/a\\..\\..\\x.py", "C:/x.py"])
def test_backslashes_and_drive_letters(settings: Settings, tmp_path: Path, name: str) -> None:
    tar = build(tmp_path / "a.tar.gz", [*GOOD.items(), (name, b"x")])
    refused(settings, tar, "backslash|absolute")


def test_a_name_twice(settings: Settings, tmp_path: Path) -> None:
    tar = build(tmp_path / "a.tar.gz", [*GOOD.items(), ("./model.onnx", b"other")])
    refused(settings, tar, r"'\./model.onnx'.*twice")


def test_one_gib_expansion_is_refused_before_writing(settings: Settings, tmp_path: Path) -> None:
    bomb = zero_bomb(tmp_path / "bomb.tar.gz", 1 << 30)
    assert bomb.stat().st_size < 2 << 20  # deflate tops out near 1,000:1
    started = time.perf_counter()
    refused(
        settings,
        bomb,
        r"'model.onnx'.*past 536,870,912 bytes",
    )
    assert time.perf_counter() - started < 5  # refused from the header, not after inflating
    assert archive.MAX_TOTAL_BYTES == 512 * 1024**2


def test_the_bomb_builder_makes_a_real_archive(tmp_path: Path) -> None:
    """The cheap bomb really expands: 3 MiB of zeros read back through tarfile."""
    bomb = zero_bomb(tmp_path / "small.tar.gz", 3 << 20)
    with tarfile.open(bomb, "r:gz") as tar:
        member = tar.getmember("model.onnx")
        handle = tar.extractfile(member)
        assert handle is not None
        assert handle.read() == bytes(3 << 20)


def test_expansion_past_a_small_cap(settings: Settings, tmp_path: Path) -> None:
    tar = build(tmp_path / "a.tar.gz", [*GOOD.items(), ("weights.bin", bytes(3 << 20))])
    limits = archive.Limits(max_total_bytes=2 << 20)
    refused(settings, tar, r"'weights.bin'.*past 2,097,152 bytes", limits=limits)


def test_bytes_are_counted_while_writing(tmp_path: Path) -> None:
    """The running count stops a member that yields more than the budget left, whatever the
    header said (the header check comes first in ``safe_extract``; this is the second guard)."""
    tar_path = build(tmp_path / "a.tar.gz", [("big.bin", bytes(5 << 20))])
    with tarfile.open(tar_path, "r:gz") as tar:
        member = tar.getmember("big.bin")
        with pytest.raises(archive.UnsafeArchiveError, match="expands past"):
            archive._write_file(tar, member, tmp_path / "out.bin", budget=1 << 20)
    assert (tmp_path / "out.bin").stat().st_size <= 1 << 20


def test_too_many_members(settings: Settings, tmp_path: Path) -> None:
    files = [*GOOD.items(), *((f"code/f{k}.py", b"") for k in range(10))]
    tar = build(tmp_path / "a.tar.gz", files)
    refused(settings, tar, "more than 5 members", limits=archive.Limits(max_members=5))


def test_a_good_archive_with_folders_and_dot_prefixes_still_deploys(
    settings: Settings, tmp_path: Path
) -> None:
    root = tarfile.TarInfo(".")
    root.type = tarfile.DIRTYPE
    code = tarfile.TarInfo("./code")
    code.type = tarfile.DIRTYPE
    tool = tarfile.TarInfo("./code/run.sh")
    tool.size, tool.mode = 3, 0o4777  # setuid and world-writable are dropped
    with tarfile.open(tmp_path / "m.tar.gz", "w:gz") as tar:
        tar.addfile(root)
        tar.addfile(code)
        tar.addfile(tool, io.BytesIO(b"#!\n"))
        for name, data in GOOD.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    folder = reg.register_endpoint(settings, "ep", tmp_path / "m.tar.gz", capture_s3_uri=None)
    model = folder / "model"
    assert sorted(p.relative_to(model).as_posix() for p in model.rglob("*")) == [
        "classes.json",
        "code",
        "code/inference.py",
        "code/run.sh",
        "model.onnx",
    ]
    assert (model / "code" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (model / "model.onnx").read_bytes() == b"onnx"


def test_safe_extract_never_follows_an_existing_link(tmp_path: Path) -> None:
    """A target that already holds a link to elsewhere: a member under it is refused."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "code").symlink_to(outside)
    tar = build(tmp_path / "a.tar.gz", [("code/inference.py", b"x")])
    with pytest.raises(archive.UnsafeArchiveError, match="outside"):
        archive.safe_extract(tar, target)
    assert list(outside.iterdir()) == []


def test_the_sagemaker_repack_refuses_the_same_archives(tmp_path: Path) -> None:
    """``scones sagemaker deploy`` reads and repacks model archives too (``wheelhouse``)."""
    from scones.training import wheelhouse as wh

    reqs = ("code/requirements.txt", b"numpy==2.1.0\n")
    evil = build(tmp_path / "evil.tar.gz", [*GOOD.items(), reqs, link("code/x", "/etc")])
    with pytest.raises(wh.WheelhouseError, match=r"not a safe model.tar.gz.*'code/x'.*symbolic"):
        wh.archive_requirements(evil)
    with pytest.raises(wh.WheelhouseError, match="not a safe"):
        wh.repack_with_wheels(evil, tmp_path / "out.tar.gz", tmp_path)
    assert not (tmp_path / "out.tar.gz").exists()
    huge = build(tmp_path / "huge.tar.gz", [("code/requirements.txt", b"#" * (2 << 20))])
    with pytest.raises(wh.WheelhouseError, match="over 1,048,576 bytes"):
        wh.archive_requirements(huge)
    good = build(tmp_path / "good.tar.gz", [*GOOD.items(), reqs])
    assert wh.archive_requirements(good) == (["numpy==2.1.0"], False)
