"""The report: figures from the records, a self-contained page, and a real browser loading it."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from chromium_helpers import chromium_dom
from monitor_helpers import make_record, write_capture
from PIL import Image

from scones.monitor.run import MonitorOptions, MonitorResult, run_monitor

FIGURES = (
    "confidence_over_time.png",
    "confidence_histogram.png",
    "class_mix.png",
    "review_rate.png",
    "request_volume.png",
)
DATA_URI = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*data-file="([^"]+)"')


@pytest.fixture
def report(captures: Path, tmp_path: Path) -> MonitorResult:
    """The report on the generated captures, with an alert (7 of 22 below 0.93 > 25%)."""
    options = MonitorOptions(
        source=str(captures),
        output=tmp_path / "report",
        classes=["bicycle", "motorcycle"],
        classes_from="--classes",
        max_review_rate=0.25,
        progress=False,
    )
    return run_monitor(options)


def test_figures_show_the_real_records(report: MonitorResult) -> None:
    figures = report.figures
    assert figures is not None
    assert figures.bucket == "1h"  # 14:05 on Nov 26 to 09:35 on Nov 27: 20 hourly bars
    series = figures.series
    starts = [datetime.fromtimestamp(s, UTC) for s in series["bucket_start"]]
    assert starts[0] == datetime(2026, 11, 26, 14, tzinfo=UTC)
    assert starts[-1] == datetime(2026, 11, 27, 9, tzinfo=UTC)
    assert len(starts) == 20
    busy = {i: v for i, v in enumerate(series["volume"]) if v}
    assert busy == {0: 2, 19: 20}
    assert series["below_threshold"][0] == 0 and series["below_threshold"][19] == 7
    assert series["class bicycle"][0] == 2 and series["class motorcycle"][0] == 0
    assert series["class bicycle"][19] + series["class motorcycle"][19] == 20
    assert series["class bicycle"][19] == 7  # 9 bicycles in all, 2 of them on Nov 26
    assert series["median_confidence"][0] == pytest.approx(0.945)  # of 0.94 and 0.95
    assert all(m != m for m in series["median_confidence"][1:19])  # NaN: no data those hours


def test_report_is_self_contained_and_embeds_every_figure(report: MonitorResult) -> None:
    out = report.written[0].parent
    page = (out / "report.html").read_text()
    embedded = dict((name, base64.b64decode(data)) for data, name in DATA_URI.findall(page))
    assert list(embedded) == list(FIGURES)
    for name, png in embedded.items():
        assert png == (out / name).read_bytes()
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.size == (900, 360)
            colors = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colors is None or len(colors) > 20, f"{name} looks blank"
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must not load anything"
    summary = page[page.index('<table id="summary">') :]
    for text in (
        "22 from 12 files",
        "predicted bicycle</th><td>9 (40.9%)",
        "predicted motorcycle</th><td>13 (59.1%)",
        "31.8% (7 below 0.93)",
        "0 of 22 records",
        "2026-11-26 14:05:00 UTC to 2026-11-27 09:35:00 UTC",
    ):
        assert text in summary, text
    assert 'class="alert"' in page and "exceeds --max-review-rate 25.0%" in page


def test_report_escapes_what_it_shows(tmp_path: Path) -> None:
    folder = tmp_path / "<script>alert(1)</script>"
    write_capture(folder / "a.jsonl", [make_record(), "<b>not json</b>"])
    result = run_monitor(MonitorOptions(source=str(folder), output=tmp_path / "o", progress=False))
    page = (tmp_path / "o" / "report.html").read_text()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page
    assert result.collector.errors_total == 1


CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var out = document.createElement("pre");
  out.id = "img-check";
  out.textContent = "IMAGES " + Array.from(document.images).map(function (img) {
    return img.complete && img.naturalWidth > 0 ? img.naturalWidth + "x" + img.naturalHeight : "broken";
  }).join(",") + " END";
  document.body.appendChild(out);
});
</script>
"""


def render_in_chromium(page: Path, tmp_path: Path) -> str:
    """Load ``page`` plus an image check in headless Chromium; return the ``IMAGES ... END`` text."""
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom, err, code = chromium_dom(checked.as_uri(), tmp_path / "chromium-profile", timeout_s=90)
    match = re.search(r"IMAGES (.*?) END", dom)
    assert match, f"chromium rendered no image check (exit {code}): {err[-800:]}"
    return match.group(1)


def test_report_figures_load_in_a_real_browser(report: MonitorResult, tmp_path: Path) -> None:
    page = report.written[0].parent / "report.html"
    assert render_in_chromium(page, tmp_path) == ",".join(["900x360"] * len(FIGURES))


def test_browser_check_sees_a_broken_figure(report: MonitorResult, tmp_path: Path) -> None:
    page = report.written[0].parent / "report.html"
    broken = tmp_path / "broken.html"
    broken.write_text(
        page.read_text().replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1)
    )
    assert render_in_chromium(broken, tmp_path).split(",")[0] == "broken"
