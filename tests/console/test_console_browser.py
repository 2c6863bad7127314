"""The console in headless Chromium, served for real by uvicorn on a free loopback port.

Chromium resolves no host name but 127.0.0.1 (``--host-resolver-rules``) and writes a net log;
every request made for the pages must have gone to the console itself. Skips without Chromium
unless ``SCONES_REQUIRE_CHROMIUM=1`` (CI), as ``tests/monitor/test_monitor_report.py`` does.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from chromium_helpers import chromium_dom


@pytest.fixture
def served(world: Any) -> Iterator[str]:
    """The console over ``world``, served by uvicorn in this process; yields its base URL."""
    import uvicorn

    from scones.console.app import close_app, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(world.source, port)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        close_app(app)


class Dom(HTMLParser):
    """What the test needs from the DOM Chromium built: element paths and attributes."""

    VOID = {"meta", "link", "img", "br", "input", "hr", "source"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.elements: list[tuple[tuple[str, ...], dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(((*self.stack, tag), dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(((*self.stack, tag), dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack.pop() != tag:
                pass

    def select(self, ancestor: str, attribute: str) -> list[dict[str, str | None]]:
        """Elements with ``attribute`` inside an ``ancestor`` element (CSS ``ancestor [attr]``)."""
        return [a for path, a in self.elements if attribute in a and ancestor in path[:-1]]


def load(url: str, tmp_path: Path, name: str) -> tuple[Dom, list[str]]:
    """Load ``url`` in headless Chromium; the DOM it built and the URLs the page requested."""
    netlog = tmp_path / f"{name}.netlog.json"
    dom, err, code = chromium_dom(
        url,
        tmp_path / "chromium-profile",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={netlog}",
        "--net-log-capture-mode=Default",
        budget_ms=5000,
        timeout_s=90,
    )
    assert code == 0 and "</html>" in dom, f"chromium failed: {err[-800:]}"
    parsed = Dom()
    parsed.feed(dom)
    return parsed, page_requests(json.loads(netlog.read_text()), "http://127.0.0.1")


def page_requests(netlog: dict[str, Any], site: str) -> list[str]:
    """URLs of every request made on behalf of pages of ``site`` (not Chromium's own traffic)."""
    kinds = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
    urls = []
    for event in netlog["events"]:
        params = event.get("params") or {}
        if kinds.get(event["type"]) == "URL_REQUEST_START_JOB" and str(
            params.get("network_isolation_key", "")
        ).startswith(site):
            urls.append(str(params["url"]))
    return urls


def test_console_in_chromium_lists_runs_and_draws_the_graph_offline(
    served: str, world: Any, tmp_path: Path
) -> None:
    dom, requests = load(f"{served}/", tmp_path, "executions")
    names = {a.get("href") for path, a in dom.elements if path[-1] == "a" and "table" in path}
    for name, arn in world.executions.items():
        assert f"/execution?arn={quote(arn, safe='')}" in names, name
    statuses = [str(a["data-status"]) for path, a in dom.elements if "data-status" in a]
    assert sorted(statuses) == ["FAILED", "FAILED", "SUCCEEDED"]

    arn = world.executions["low-moto"]
    page, more = load(f"{served}/execution?arn={quote(arn, safe='')}", tmp_path, "execution")
    nodes = {a["data-state"]: a.get("data-status") for a in page.select("svg", "data-state")}
    assert nodes["ClassifyImage"] == "succeeded" and nodes["LowConfidence"] == "failed"
    assert nodes["Done"] == "not-run"
    images = [a["src"] for path, a in page.elements if path[-1] == "img"]
    assert images and all(str(src).startswith("data:image/png;base64,") for src in images)

    endpoint, last = load(f"{served}/endpoint", tmp_path, "endpoint")
    assert any(a.get("id") == "captures" for _, a in endpoint.elements)

    everything = requests + more + last
    assert f"{served}/" in everything and f"{served}/endpoint" in everything
    outside = [url for url in everything if not url.startswith(served + "/")]
    assert not outside, f"the pages loaded from elsewhere: {outside}"
