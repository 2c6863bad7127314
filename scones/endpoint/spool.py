"""The Data Capture spool: records of answered requests on local disk until they are in S3.

Each endpoint worker appends every captured record to its own spool file under
``$SCONES_HOME/capture/`` *before* the request is answered: one ``os.write`` of one line to an
``O_APPEND`` file, so the record is in the kernel's page cache and survives a ``kill -9`` of the
worker. The worker's capture thread rotates the file every flush interval (``fsync``, then
rename ``.open`` -> ``.ready``, then ``fsync`` of the folder) and ships ready files to S3 in
order; a file is removed only after all of its records are in S3 (see ``capture``). A power
loss can lose what was written since the last rotation (at most one flush interval).

Files, per worker identity ``<wid>`` (``<pid>-<8 hex>``):

- ``<wid>.lock``: ``flock``-ed for the worker's life. A lock another worker can take belongs
  to a dead worker: that worker *adopts* the identity (keeps the lock) and ships its files.
- ``<wid>-<seq>.open`` / ``<wid>-<seq>.ready``: spooled records, one per line,
  ``<epoch ms>\\t<JSON [destination, endpoint, variant]>\\t<capture record JSON>\\n``.
- ``<wid>.counts``: ``{"shipped", "lost", "last_seq"}``; files are shipped in ``seq`` order, so
  every file with ``seq <= last_seq`` is in S3 (a crash between an upload and the removal of its
  file cannot ship or count it twice).
- ``totals.json`` (under ``flock`` of ``totals.lock``): counts of identities whose files are all
  shipped, folded in once each.

``read_counts`` (for ``scones status``) sums them: ``written = shipped + pending + lost``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scones.settings import Settings

log = logging.getLogger("scones.capture")

WID = re.compile(r"^\d+-[0-9a-f]{8}$")
FILE = re.compile(r"^(?P<wid>\d+-[0-9a-f]{8})-(?P<seq>\d{8})\.(?P<state>open|ready)$")
TOTALS = "totals.json"
TOTALS_LOCK = "totals.lock"
FOLDED_KEPT = 256  # identities remembered as folded into the totals (idempotent folding)
_write = os.write  # the request path's one system call (tests make it fail)


@dataclass
class Identity:
    """A worker's spool identity: its own, or a dead worker's it adopted (``lock_fd`` held)."""

    wid: str
    lock_fd: int
    shipped: int = 0
    lost: int = 0
    last_seq: int = 0
    saved: tuple[int, int, int] = (0, 0, 0)  # (shipped, lost, last_seq) last written to disk


@dataclass(frozen=True)
class SpoolFile:
    """A ready file waiting to be shipped."""

    ident: Identity
    path: Path
    seq: int


def spool_folder(settings: Settings) -> Path:
    """Where the endpoint workers of a state directory spool their capture records."""
    return settings.home / "capture"


def _seq_name(wid: str, seq: int, state: str) -> str:
    return f"{wid}-{seq:08d}.{state}"


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def _folded(totals: dict[str, object]) -> list[str]:
    value = totals.get("folded")
    return [w for w in value if isinstance(w, str)] if isinstance(value, list) else []


def count_records(path: Path) -> int:
    """Records in a spool file (complete lines only: a torn last line is not one)."""
    count = 0
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                count += chunk.count(b"\n")
    except OSError:
        return 0
    return count


@contextlib.contextmanager
def _totals_lock(folder: Path, mode: int) -> Iterator[None]:
    fd = os.open(folder / TOTALS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class Spool:
    """One worker's spool: appends on the request path, rotation/adoption/counts for its thread."""

    def __init__(self, folder: Path, *, max_bytes: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.max_bytes = max_bytes
        wid = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        fd = os.open(folder / f"{wid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.own = Identity(wid, fd)
        self.adopted: dict[str, Identity] = {}
        self._mutex = threading.Lock()  # the active file: request path vs rotation
        self._fd: int | None = None
        self._seq = 0
        self._active_bytes = 0
        self._active_records = 0
        self.pending_bytes = 0  # own records on disk, not yet shipped
        self.written = 0  # records this worker spooled
        self.lost_unlogged = 0  # lost since the last log line
        self.last_error = ""

    # -- the request path ------------------------------------------------------------------

    def append(self, line: bytes) -> bool:
        """Append one record line (``\\n``-terminated); False (counted as lost) if it cannot be."""
        with self._mutex:
            if self.pending_bytes + len(line) > self.max_bytes:
                return self._lose(f"spool full ({self.max_bytes} bytes waiting for S3)")
            try:
                if self._fd is None:
                    self._seq += 1
                    name = _seq_name(self.own.wid, self._seq, "open")
                    self._fd = os.open(
                        self.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
                    )
                written = _write(self._fd, line)
                if written != len(line):
                    raise OSError(f"short write ({written} of {len(line)} bytes)")
            except OSError as exc:
                if self._fd is not None:  # drop a partial line, so the next one starts clean
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, self._active_bytes)
                return self._lose(f"spool write failed: {exc}")
            self._active_bytes += written
            self._active_records += 1
            self.pending_bytes += written
            self.written += 1
            return True

    def _lose(self, why: str) -> bool:
        self.own.lost += 1
        self.lost_unlogged += 1
        self.last_error = why
        return False

    @property
    def active_bytes(self) -> int:
        """Bytes in the file being appended to."""
        return self._active_bytes

    # -- the capture thread ----------------------------------------------------------------

    def rotate(self) -> None:
        """Make the active file ready for shipping (fsync + rename); no-op when it is empty."""
        with self._mutex:
            fd, seq = self._fd, self._seq
            if fd is None or not self._active_records:
                return
            self._fd = None
            self._active_bytes = self._active_records = 0
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        wid = self.own.wid
        os.rename(
            self.folder / _seq_name(wid, seq, "open"), self.folder / _seq_name(wid, seq, "ready")
        )
        self._fsync_folder()

    def _fsync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def ready_files(self) -> list[SpoolFile]:
        """Files to ship, per identity in ``seq`` order (own first, then adopted ones)."""
        by_wid = {self.own.wid: self.own, **self.adopted}
        found: list[SpoolFile] = []
        for path in self.folder.iterdir():
            match = FILE.match(path.name)
            if not match or match["wid"] not in by_wid:
                continue
            ident = by_wid[match["wid"]]
            if match["state"] == "open" and ident is self.own:
                continue  # still being written
            found.append(SpoolFile(ident, path, int(match["seq"])))
        order = [self.own.wid, *self.adopted]
        found.sort(key=lambda f: (order.index(f.ident.wid), f.seq))
        return found

    def shipped(self, item: SpoolFile, records: int, torn: int, size: int) -> None:
        """Count ``item`` as shipped (saved before the file is removed), then remove it."""
        ident = item.ident
        with self._mutex:  # the request path counts its losses in ``own`` too
            ident.shipped += records
            ident.lost += torn
            ident.last_seq = max(ident.last_seq, item.seq)
        self.save_counts(ident)
        item.path.unlink(missing_ok=True)
        if ident is self.own:
            with self._mutex:
                self.pending_bytes = max(0, self.pending_bytes - size)

    def save_counts(self, ident: Identity) -> None:
        """Write ``<wid>.counts`` when it changed."""
        now = (ident.shipped, ident.lost, ident.last_seq)
        if now != ident.saved:
            counts = {"shipped": now[0], "lost": now[1], "last_seq": now[2]}
            _write_json(self.folder / f"{ident.wid}.counts", counts)
            ident.saved = now

    def adopt_orphans(self) -> list[Identity]:
        """Take over the identities of dead workers (their lock is free); return the new ones."""
        wids = set()
        for path in self.folder.iterdir():
            stem = FILE.match(path.name)
            wid = stem["wid"] if stem else path.name.rsplit(".", 1)[0]
            if WID.match(wid) and wid != self.own.wid and wid not in self.adopted:
                wids.add(wid)
        found = []
        for wid in sorted(wids):
            ident = self._try_adopt(wid)
            if ident is not None:
                self.adopted[wid] = ident
                found.append(ident)
        return found

    def adopt_orphans_logged(self) -> int:
        """``adopt_orphans``, logged; return the records waiting in the adopted spools."""
        found = self.adopt_orphans()
        if not found:
            return 0
        wids = {i.wid for i in found}
        waiting = sum(count_records(f.path) for f in self.ready_files() if f.ident.wid in wids)
        (log.warning if waiting else log.info)(
            "capture: shipping the spooled records of stopped or dead workers",
            extra={"workers": sorted(wids), "records": waiting},
        )
        return waiting

    def log_lost(self) -> None:
        """Log the records lost since the last call (with the last reason), if any."""
        if self.lost_unlogged:
            log.error(
                "capture records lost",
                extra={
                    "records": self.lost_unlogged,
                    "lost_total": self.own.lost,
                    "reason": self.last_error,
                },
            )
            self.lost_unlogged = 0

    def _try_adopt(self, wid: str) -> Identity | None:
        lock_path = self.folder / f"{wid}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(lock_path).st_ino:
                raise OSError("lock file replaced")  # finished by another worker meanwhile
        except OSError:
            os.close(fd)
            return None
        saved = _read_json(self.folder / f"{wid}.counts")
        ident = Identity(wid, fd, _int(saved.get("shipped")), _int(saved.get("lost")))
        ident.last_seq = _int(saved.get("last_seq"))
        ident.saved = (ident.shipped, ident.lost, ident.last_seq)
        for path in list(self.folder.iterdir()):
            match = FILE.match(path.name)
            if not match or match["wid"] != wid:
                continue
            if int(match["seq"]) <= ident.last_seq:  # shipped and counted; removal was cut off
                path.unlink(missing_ok=True)
            elif match["state"] == "open":  # its writer is dead: ship it as it is
                os.rename(path, path.with_suffix(".ready"))
        return ident

    def finish(self, ident: Identity) -> None:
        """Fold a fully shipped identity into the totals and remove its files and lock."""
        with _totals_lock(self.folder, fcntl.LOCK_EX):
            totals = _read_json(self.folder / TOTALS)
            folded = _folded(totals)
            if ident.wid not in folded:
                _write_json(
                    self.folder / TOTALS,
                    {
                        "shipped": _int(totals.get("shipped")) + ident.shipped,
                        "lost": _int(totals.get("lost")) + ident.lost,
                        "folded": (folded + [ident.wid])[-FOLDED_KEPT:],
                    },
                )
            (self.folder / f"{ident.wid}.counts").unlink(missing_ok=True)
            (self.folder / f"{ident.wid}.lock").unlink(missing_ok=True)
        os.close(ident.lock_fd)
        self.adopted.pop(ident.wid, None)

    def close(self, *, finish_own: bool) -> None:
        """Close the active file; fold the own identity in when nothing of it is left."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self.save_counts(self.own)
        for ident in list(self.adopted.values()):  # unfinished: the next worker adopts them
            os.close(ident.lock_fd)
        self.adopted.clear()
        if finish_own:
            self.finish(self.own)
        else:
            os.close(self.own.lock_fd)


def read_counts(folder: Path) -> dict[str, int]:
    """``{"written", "shipped", "pending", "lost"}`` of the spool in ``folder`` (all workers,
    alive or dead, over the life of the state directory); ``pending`` = records on disk."""
    counts = {"written": 0, "shipped": 0, "pending": 0, "lost": 0}
    if not folder.is_dir():
        return counts
    with _totals_lock(folder, fcntl.LOCK_SH):
        pending: dict[str, list[tuple[int, int]]] = {}
        for path in folder.iterdir():  # the files first: a file shipped meanwhile is seen below
            match = FILE.match(path.name)
            if match:
                entry = (int(match["seq"]), count_records(path))
                pending.setdefault(match["wid"], []).append(entry)
        totals = _read_json(folder / TOTALS)
        folded = set(_folded(totals))
        counts["shipped"] = _int(totals.get("shipped"))
        counts["lost"] = _int(totals.get("lost"))
        last_seq: dict[str, int] = {}
        for path in folder.glob("*.counts"):
            wid = path.stem
            if wid in folded or not WID.match(wid):
                continue
            saved = _read_json(path)
            counts["shipped"] += _int(saved.get("shipped"))
            counts["lost"] += _int(saved.get("lost"))
            last_seq[wid] = _int(saved.get("last_seq"))
    for wid, files in pending.items():
        counts["pending"] += sum(n for seq, n in files if seq > last_seq.get(wid, 0))
    counts["written"] = counts["shipped"] + counts["pending"] + counts["lost"]
    return counts
