"""The endpoint page (newest Data Capture records from S3, thumbnails) and the monitor report."""

from __future__ import annotations

import re
from typing import Any

from console_helpers import asgi_get, capture_line, png_bytes

PREFIX = "data_capture/scones-image-classifier/AllTraffic"


def put_capture(s3: Any, hour: str, name: str, lines: list[str]) -> None:
    """One capture file under the SageMaker key layout."""
    key = f"{PREFIX}/{hour}/{name}.jsonl"
    s3.put_object(Bucket="images", Key=key, Body=("\n".join(lines) + "\n").encode())


def test_newest_records_first_with_thumbnails(app: Any, world: Any) -> None:
    put_capture(
        world.s3,
        "2026/11/26/09",
        "10-00-000-old",
        [capture_line("old", "2026-11-26T09:10:00Z", [0.9, 0.1], png_bytes())],
    )
    put_capture(
        world.s3,
        "2026/11/27/10",
        "15-00-000-new",
        [
            capture_line("new-1", "2026-11-27T10:15:00Z", [0.2, 0.8], png_bytes((0, 0, 255))),
            capture_line("new-2", "2026-11-27T10:15:01Z", [0.97, 0.03], None),
            "not json",
        ],
    )
    status, _, page = asgi_get(app, "/endpoint")
    assert status == 200
    table = page[page.index('<table id="captures">') :]
    ids = re.findall(r"<td>(old|new-\d)</td>", table)
    assert ids == ["new-2", "new-1", "old"]
    assert "1 (motorcycle)" in table and "0.800" in table and "0 (bicycle)" in table
    assert len(re.findall(r'<img class="thumb" src="data:image/png;base64,', table)) == 2
    assert "input not captured" in table
    assert "unreadable record: not valid JSON" in table
    assert "<script>" not in page and "&lt;script&gt;" in page  # the inferenceId is escaped


def test_only_the_newest_files_are_read(world: Any) -> None:
    from scones.console.captures import newest_keys, recent_captures

    for hour in range(10):
        put_capture(
            world.s3,
            f"2026/11/27/{hour:02d}",
            "00-00-000-x",
            [capture_line(f"h{hour}", f"2026-11-27T{hour:02d}:00:00Z", [0.5, 0.5], None)],
        )
    keys = newest_keys(world.s3, "images", "data_capture/", 3)
    assert [k.split("/")[-2] for k in keys] == ["09", "08", "07"]
    rows = recent_captures(world.s3, "s3://images/data_capture", "scones-image-classifier", 4)
    assert [r.event_id for r in rows] == ["h9", "h8", "h7", "h6"]


def test_no_captures_yet_and_no_report(app: Any) -> None:
    _, _, page = asgi_get(app, "/endpoint")
    assert "No capture records yet." in page
    assert "no report yet" in page and 'id="report"' not in page
    status, _, missing = asgi_get(app, "/monitor/report.html")
    assert status == 404 and "scones monitor" in missing


def test_the_monitor_report_is_linked_and_served(app: Any, world: Any) -> None:
    world.report.parent.mkdir(parents=True)
    world.report.write_text("<html><body><h1>monitor report</h1></body></html>")
    _, _, page = asgi_get(app, "/endpoint")
    assert '<a id="report" href="/monitor/report.html">' in page
    status, headers, report = asgi_get(app, "/monitor/report.html")
    assert status == 200 and "<h1>monitor report</h1>" in report
    assert headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]


def test_unknown_capture_location_on_aws_says_why(app: Any, world: Any) -> None:
    world.source.capture_uri = None
    world.source.sagemaker = None
    _, _, page = asgi_get(app, "/endpoint")
    assert "Data Capture location unknown" in page
