"""Read and extract model archives (``model.tar.gz``) without trusting them.

Python's own guard, ``extractall(filter="data")``, had several bypasses through symlink and
hardlink path resolution (CVE-2025-4517, -4330, -4138, 2024-12718, fixed in 3.11.13 / 3.12.11,
and more reported since). So nothing here relies on it: every member is checked first (regular
file or directory only; a relative, normalised name without ``..``, backslash or NUL; no name
twice), the member count and the declared sizes are capped before anything is written, and each
file is then written by our own code, counting the bytes really read, into folders this module
made itself. A model archive never needs a link, a device or more than 512 MiB.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_TOTAL_BYTES = 512 * 1024**2  # a model with its wheels is ~100 MB expanded
MAX_MEMBERS = 10_000
_CHUNK = 1024 * 1024


class UnsafeArchiveError(ValueError):
    """A member of an archive that is not extracted or read: which one and why."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"member {member!r}: {reason}")
        self.member = member
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """How much an archive may hold: members, and bytes once expanded."""

    max_total_bytes: int = MAX_TOTAL_BYTES
    max_members: int = MAX_MEMBERS


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    return f"of tar type {member.type!r}"


def member_name(member: tarfile.TarInfo) -> str:
    """The member's name normalised to ``a/b/c`` ("" for the archive's root folder); raise
    ``UnsafeArchiveError`` for anything but a plain relative path to a file or folder."""
    raw = member.name
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchiveError(raw, f"is {_kind(member)}; only files and folders are allowed")
    if "\x00" in raw or "\\" in raw:
        raise UnsafeArchiveError(raw, "name holds a NUL or a backslash")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise UnsafeArchiveError(raw, "absolute path")
    parts = [part for part in PurePosixPath(raw).parts if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(raw, "name holds '..' (it would leave the folder)")
    if not parts and member.isreg():
        raise UnsafeArchiveError(raw, "a file without a name")
    return "/".join(parts)


def checked_members(
    tar: tarfile.TarFile, limits: Limits = Limits()
) -> Iterator[tuple[str, tarfile.TarInfo]]:
    """Yield ``(normalised name, member)`` for every member, refusing (``UnsafeArchiveError``)
    an unsafe member, a name seen twice, more than ``limits.max_members`` members, or declared
    file sizes adding up past ``limits.max_total_bytes`` -- each as soon as it is met, before
    the rest of the archive is decompressed."""
    seen: set[str] = set()
    declared = 0
    for count, member in enumerate(tar, 1):
        if count > limits.max_members:
            raise UnsafeArchiveError(member.name, f"more than {limits.max_members:,} members")
        name = member_name(member)
        if name in seen:
            raise UnsafeArchiveError(member.name, "appears twice")
        seen.add(name)
        if member.isreg():
            declared += member.size
            if declared > limits.max_total_bytes:
                raise UnsafeArchiveError(
                    member.name,
                    f"files would expand past {limits.max_total_bytes:,} bytes in all",
                )
        yield name, member


def read_member(path: Path, wanted: str, limit: int = 1024 * 1024) -> bytes | None:
    """The bytes of file ``wanted`` (``a/b``) in archive ``path``, or None if it has no such
    file; ``UnsafeArchiveError`` if the archive is unsafe or the file is over ``limit`` bytes."""
    with tarfile.open(path, "r:*") as tar:
        for name, member in checked_members(tar):
            if name == wanted and member.isreg():
                if member.size > limit:
                    raise UnsafeArchiveError(member.name, f"over {limit:,} bytes")
                handle = tar.extractfile(member)
                return handle.read(limit + 1)[:limit] if handle is not None else None
    return None


def _inside(root: Path, path: Path) -> Path:
    """``path`` resolved (its existing parents included); refuse it unless it is in ``root``."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafeArchiveError(str(path.relative_to(root)), f"resolves outside {root}")
    return resolved


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, budget: int) -> int:
    """Copy one member to ``dest`` (a new file, links not followed); return the bytes written.
    Stops with ``UnsafeArchiveError`` once more than ``budget`` bytes come out of it."""
    source = tar.extractfile(member)
    if source is None:  # pragma: no cover - checked_members passed only regular files
        raise UnsafeArchiveError(member.name, "cannot be read as a file")
    mode = 0o755 if member.mode & 0o100 else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    written = 0
    with source, os.fdopen(os.open(dest, flags, mode), "wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > budget or written > member.size:
                raise UnsafeArchiveError(member.name, "expands past the size limit")
            out.write(chunk)
    return written


def safe_extract(archive: Path, target: Path, limits: Limits = Limits()) -> list[str]:
    """Extract ``archive`` into ``target`` (created if missing) after checking every member;
    return the names of the files written. Raises ``UnsafeArchiveError`` (and leaves whatever
    was written so far for the caller to remove) or ``tarfile.TarError`` / ``OSError``."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with tarfile.open(archive, "r:*") as tar:
        members = list(checked_members(tar, limits))
        budget = limits.max_total_bytes
        files: list[str] = []
        for name, member in members:
            if not name:
                continue
            dest = root.joinpath(*name.split("/"))
            _inside(root, dest.parent)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                _inside(root, dest)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            _inside(root, dest.parent)
            budget -= _write_file(tar, member, dest, budget)
            files.append(name)
    return files
