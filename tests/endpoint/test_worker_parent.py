"""A worker started by a supervisor that is already gone exits instead of serving forever."""

from __future__ import annotations

import os
import subprocess
import sys

from scones.endpoint.supervisor import SUPERVISOR_PID_ENV

PROBE = (
    "from scones.endpoint.supervisor import _die_with_parent\n"
    "_die_with_parent()\n"
    "print('still running')\n"
)


def _probe(supervisor_pid: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, SUPERVISOR_PID_ENV: supervisor_pid}
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_worker_whose_supervisor_died_before_it_started_exits() -> None:
    # The probe's parent is this test process, not pid 1: as if its supervisor had died and
    # the worker had been re-parented before it could arm PR_SET_PDEATHSIG.
    result = _probe("1")
    assert result.returncode == 0, result.stderr
    assert "still running" not in result.stdout


def test_a_worker_whose_supervisor_is_alive_keeps_running() -> None:
    result = _probe(str(os.getpid()))
    assert result.returncode == 0, result.stderr
    assert "still running" in result.stdout
