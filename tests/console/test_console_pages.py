"""The console's pages against moto: executions (filter, paging), one execution (graph, states,
events, thumbnails, escaping, refresh while running), and the read-only guards."""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any
from urllib.parse import quote

import pytest
from console_helpers import HOST, XSS, asgi_get, create_machine, png_b64, start, wait_all, work_item
from PIL import Image

ROW = re.compile(r'<tr data-status="(\w+)">\s*<td><a href="/execution\?arn=[^"]+">([^<]+)</a>')
THUMB = re.compile(r'<img class="thumb" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def rows(page: str) -> list[tuple[str, str]]:
    """(status, name) of each row of the executions table."""
    return ROW.findall(page)


def test_executions_page_lists_runs_with_label_confidence_or_error(app: Any) -> None:
    status, headers, page = asgi_get(app, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert sorted(rows(page)) == [
        ("FAILED", "broken"),
        ("FAILED", "low-moto"),
        ("SUCCEEDED", "ok-bike"),
    ]
    ok = page[page.index(">ok-bike<") :].split("</tr>")[0]
    assert "0 (bicycle)" in ok and "0.990" in ok and " UTC" in ok and " ms<" in ok
    low = page[page.index(">low-moto<") :].split("</tr>")[0]
    assert "LowConfidenceError" in low and "confidence below 0.93" in low


def test_filter_by_status(app: Any) -> None:
    _, _, failed = asgi_get(app, "/?status=FAILED")
    assert {s for s, _ in rows(failed)} == {"FAILED"} and len(rows(failed)) == 2
    _, _, succeeded = asgi_get(app, "/?status=SUCCEEDED")
    assert rows(succeeded) == [("SUCCEEDED", "ok-bike")]
    status, _, bad = asgi_get(app, "/?status=%3Cb%3E")
    assert status == 400 and "<b>" not in bad and "&lt;b&gt;" in bad


def test_paging_follows_next_token_through_every_execution(app: Any, world: Any) -> None:
    arns = [start(world.sfn, world.machine, f"many-{i:02d}", work_item(1, 0.95)) for i in range(22)]
    wait_all(world.sfn, arns)
    seen: list[str] = []
    path = "/?size=10"
    pages = 0
    while path:
        status, _, page = asgi_get(app, path)
        assert status == 200
        pages += 1
        found = rows(page)
        assert len(found) <= 10
        seen += [name for _, name in found]
        assert f"Page {pages} " in page
        link = re.search(r'<a id="next" href="([^"]+)"', page)
        path = html.unescape(link.group(1)) if link else ""
    assert pages == 3 and len(seen) == 25 and len(set(seen)) == 25


def test_execution_page_shows_graph_states_events_and_thumbnails(app: Any, world: Any) -> None:
    arn = world.executions["ok-bike"]
    status, _, page = asgi_get(app, f"/execution?arn={quote(arn)}")
    assert status == 200
    graph = page[page.index('<div class="graph"') :]
    assert re.search(r"<svg[^>]*>", graph)
    states = dict(re.findall(r'data-state="([^"]+)" data-status="([^"]+)"', graph))
    assert states["SerializeImage"] == "succeeded" and states["Done"] == "succeeded"
    assert states["LowConfidence"] == "not-run"
    table = page[page.index('<table id="states">') : page.index('<table id="events">')]
    assert re.findall(r'<tr data-state="([^"]+)">', table) == [
        "SerializeImage",
        "CheckImage",
        "ClassifyImage",
        "FilterInferences",
        "Done",
    ]
    events = page[page.index('<table id="events">') :]
    for kind in ("ExecutionStarted", "PassStateEntered", "ChoiceStateExited", "ExecutionSucceeded"):
        assert kind in events
    # image_data is a thumbnail (a PNG Pillow decoded and re-encoded), never the base64 itself
    thumbs = THUMB.findall(page)
    assert thumbs
    with Image.open(io.BytesIO(base64.b64decode(thumbs[0]))) as image:
        assert image.format == "PNG" and image.size == (32, 32)
    assert png_b64() not in page
    assert "&lt;image: 32x32 PNG" in page
    assert "refresh" not in page.split("</head>")[0]


def test_an_image_that_does_not_decode_is_a_placeholder(app: Any, world: Any) -> None:
    arn = world.executions["broken"]
    _, _, page = asgi_get(app, f"/execution?arn={quote(arn)}")
    assert not THUMB.search(page)
    assert "no preview: not an image" in page
    states = dict(re.findall(r'data-state="([^"]+)" data-status="([^"]+)"', page))
    assert states["NotAnImage"] == "failed" and states["ClassifyImage"] == "not-run"


def test_values_from_aws_are_escaped(app: Any, world: Any) -> None:
    payload = work_item(1, 0.5, s3_key=XSS)
    arn = start(world.sfn, world.machine, "xss", payload)
    wait_all(world.sfn, [arn])
    for path in ("/", f"/execution?arn={quote(arn)}"):
        _, _, page = asgi_get(app, path)
        assert "<script>" not in page
        assert "&lt;script&gt;" in page


def test_running_execution_refreshes_until_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from scones.console.app import close_app, create_app
    from scones.console.source import Source

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():  # the interpreter off: executions stay RUNNING until stopped
        sfn = boto3.client("stepfunctions")
        machine = create_machine(sfn)
        arn = start(sfn, machine, "slow", work_item(0, 0.99))
        app = create_app(Source("twin", sfn, None, state_machine_arn=machine), 8090)
        try:
            _, _, page = asgi_get(app, f"/execution?arn={quote(arn)}")
            assert '<meta http-equiv="refresh" content="2">' in page
            assert 'id="refreshing"' in page and ">RUNNING<" in page
            sfn.stop_execution(executionArn=arn)
            _, _, page = asgi_get(app, f"/execution?arn={quote(arn)}")
            assert 'http-equiv="refresh"' not in page and ">ABORTED<" in page
        finally:
            close_app(app)


@pytest.mark.parametrize(
    "host", ["evil.example:8090", "127.0.0.1:9999", "127.0.0.1", "localhost.evil:8090", ""]
)
def test_other_host_headers_are_refused(app: Any, host: str) -> None:
    status, _, body = asgi_get(app, "/", host=host)
    assert status == 421 and "127.0.0.1" in body


def test_localhost_with_our_port_is_served(app: Any) -> None:
    assert asgi_get(app, "/", host="localhost:8090")[0] == 200
    assert asgi_get(app, "/", host=HOST)[0] == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get(app: Any, method: str) -> None:
    status, headers, _ = asgi_get(app, "/", method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_every_page_forbids_loading_from_elsewhere(app: Any, world: Any) -> None:
    arn = world.executions["low-moto"]
    for path in ("/", f"/execution?arn={quote(arn)}", "/endpoint", "/nope"):
        _, headers, page = asgi_get(app, path)
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "http" not in csp
        assert not re.search(r'(src|href)="(?!data:|/|#)', page), path


def test_unknown_execution_is_a_404_page(app: Any, world: Any) -> None:
    missing = world.executions["ok-bike"].replace("ok-bike", "nope")
    status, _, page = asgi_get(app, f"/execution?arn={quote(missing)}")
    assert status == 404 and 'id="error"' in page


def test_on_aws_every_state_machine_can_be_chosen(world: Any) -> None:
    from scones.console.app import close_app, create_app

    other = create_machine(world.sfn, name="another-machine")
    arn = start(world.sfn, other, "elsewhere", work_item(0, 0.99))
    wait_all(world.sfn, [arn])
    world.source.mode = "aws"
    app = create_app(world.source, 8090)
    try:
        _, _, page = asgi_get(app, "/")
        assert f'href="/?sm={quote(other, safe="/")}"' in page and ">another-machine<" in page
        assert {n for _, n in rows(page)} == {"ok-bike", "low-moto", "broken"}
        _, _, chosen = asgi_get(app, f"/?sm={quote(other)}")
        assert rows(chosen) == [("SUCCEEDED", "elsewhere")]
    finally:
        close_app(app)
