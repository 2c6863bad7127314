"""Headless Chromium for the browser checks (the monitor report, the console, the notebook)."""

from __future__ import annotations

from pathlib import Path

import pytest


def chromium_binary() -> str:
    """Headless Chromium on PATH, or a skip that says how to install it (a failure in CI, which
    sets SCONES_REQUIRE_CHROMIUM=1)."""
    import os
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("SCONES_REQUIRE_CHROMIUM") == "1":
        pytest.fail(
            "SCONES_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install -y chromium)"
        )
    pytest.skip(
        "chromium is not installed (apt-get install -y chromium); the browser check needs it"
    )


def chromium_dom(
    target: str, profile: Path, *extra: str, budget_ms: int = 10000, timeout_s: float = 120
) -> tuple[str, str, int]:
    """Load ``target`` (a URL) in headless Chromium and return (DOM after scripts, stderr, exit).

    The browser runs in its own session and is killed (with its helpers) when it overruns."""
    import os
    import signal
    import subprocess

    command = [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}", *extra, "--dump-dom", target,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        dom, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish loading {target} within {timeout_s:.0f} s")
    return dom, err, proc.returncode
