"""Monthly cost against monthly volume, one line per option, break-even points marked:
``cost.png`` (matplotlib, Agg backend, imported lazily) and ``cost.html`` embedding it with the
options, the break-even volumes and every price with its source."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from scones.cost.options import Priced

VOLUMES = (1e3, 1e8)  # images a month on the x axis
_POINTS = 121
_LINE_INCHES = 0.15  # one line of the break-even list under the plot


def volume_grid(low: float = VOLUMES[0], high: float = VOLUMES[1]) -> list[float]:
    """Log-spaced monthly volumes from ``low`` to ``high``."""
    return [low * (high / low) ** (i / (_POINTS - 1)) for i in range(_POINTS)]


def draw_png(priced: list[Priced], crossings: list[dict[str, Any]]) -> bytes:
    """The chart as PNG bytes: a line per option (styles cycle so overlapping lines show), each
    break-even inside the range a numbered dot, the numbers explained under the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inside = [c for c in crossings if VOLUMES[0] <= c["images_per_month"] <= VOLUMES[1]]
    height = 6 + _LINE_INCHES * len(inside)
    fig, ax = plt.subplots(figsize=(10, height), dpi=100)
    grid = volume_grid()
    styles = ("-", "--", ":", "-.")
    for i, option in enumerate(priced):
        ax.plot(
            grid,
            [option.monthly_usd(n) for n in grid],
            styles[i % len(styles)],
            linewidth=1.8,
            label=option.option.name,
        )
    legend_lines = []
    for number, crossing in enumerate(inside, start=1):
        x, y = crossing["images_per_month"], crossing["monthly_usd"]
        ax.plot([x], [y], marker="o", color="black", markersize=5, zorder=5)
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
        legend_lines.append(
            f"{number}: {crossing['a']} = {crossing['b']} at {x:,} images (${y:,.2f})"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("images a month")
    ax.set_ylabel("USD a month (no free tier)")
    ax.set_title("Monthly cost by option; numbered dots: break-even volumes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    if legend_lines:
        fig.text(0.01, 0.01, "\n".join(legend_lines), fontsize=7, va="bottom", family="monospace")
    bottom = (0.1 + _LINE_INCHES * len(legend_lines)) / height if legend_lines else 0.0
    fig.tight_layout(rect=(0, bottom, 1, 1))
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _rows(cells: list[list[str]]) -> str:
    return "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells
    )


def render_html(report: dict[str, Any], png: bytes) -> str:
    """The HTML page: the chart inline, the options, break-evens, usage and the price sources."""
    options = [
        [
            o["name"],
            f"{o['per_1000_images_usd']:.4f}",
            f"{o['floor_usd']:.2f}",
            f"{o['monthly_usd']:.2f}",
        ]
        for o in report["options"]
    ]
    crossings = [
        [c["a"], c["b"], f"{c['images_per_month']:,}", f"{c['monthly_usd']:.2f}"]
        for c in report["break_even"]
    ]
    usage = [[k, str(v)] for k, v in report["usage"].items() if not isinstance(v, dict)]
    prices = [
        [p["key"], f"{p['usd']:g}", str(p["unit"]), str(p["source"]), str(p["read"])]
        for p in report["prices"]["table"]
    ]
    n = report["images_per_month"]
    image = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>scones cost</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:left}}</style></head><body>
<h1>What the workflow costs</h1>
<p>Measured from {report["usage"]["executions"]} executions of
<code>{html.escape(str(report["state_machine"]))}</code>; prices: {html.escape(report["prices"]["where"])}
(read {html.escape(report["prices"]["read"])}). No free tier applied.</p>
<img alt="monthly cost against monthly volume" src="data:image/png;base64,{image}">
<h2>Options</h2>
<table><tr><th>option</th><th>USD per 1,000 images</th><th>floor USD/month</th>
<th>USD/month at {n:,} images</th></tr>
{_rows(options)}</table>
<h2>Break-even volumes</h2>
<table><tr><th>option</th><th>option</th><th>images/month</th><th>USD/month there</th></tr>
{_rows(crossings)}</table>
<h2>Measured usage</h2>
<table>{_rows(usage)}</table>
<h2>Prices and their sources</h2>
<table><tr><th>key</th><th>USD</th><th>unit</th><th>source</th><th>read</th></tr>
{_rows(prices)}</table>
</body></html>
"""


def write_chart(folder: Path, report: dict[str, Any], priced: list[Priced]) -> list[Path]:
    """Write ``cost.png`` and ``cost.html`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    png = draw_png(priced, report["break_even"])
    png_path, html_path = folder / "cost.png", folder / "cost.html"
    png_path.write_bytes(png)
    html_path.write_text(render_html(report, png), encoding="utf-8")
    return [png_path, html_path]
