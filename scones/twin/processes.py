"""Plain process and port facts read from ``/proc`` and sockets (Linux), for the twin's services."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path


def cmdline(pid: int) -> str:
    """The command line of ``pid`` (arguments joined by spaces; empty when it is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = ""
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kid = int(stat.parent.name)
            kids += [kid, *_children(kid)]
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    return [pid, *_children(pid)]


def rss_bytes(pids: list[int]) -> int:
    """Sum of the resident set sizes of ``pids`` (0 for those gone)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def reap(pid: int, wait: float = 0.0) -> None:
    """Collect the exit status when ``pid`` is our own child (in tests, ``up`` ran in-process)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except (ChildProcessError, OSError):
            return  # not our child, or already collected
        if time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def bindable(host: str, port: int) -> bool:
    """True when a server could bind ``host:port`` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections on ``host:port`` or it cannot be bound."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            return True
    return not bindable(host, port)  # as servers do: SO_REUSEADDR, so TIME_WAIT is fine


def tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` lines of a log file on one line (empty when it cannot be read)."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:200] for line in text[-lines:])
