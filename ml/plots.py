"""The training report's picture: the reliability diagram beside the risk-coverage curve, drawn
with Pillow alone (no plotting library in the training container). A sibling of ``train.py``
in the SageMaker source directory; imports nothing from scones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANEL = 300  # pixels per panel side
MARGIN = 44


def _frame(draw: Any, x0: int, title: str, xlabel: str, ylabel: str, ylo: float) -> None:
    left, top = x0 + MARGIN, 28
    draw.rectangle([left, top, left + PANEL, top + PANEL], outline=(0, 0, 0))
    draw.text((left + 70, 8), title, fill=(0, 0, 0))
    draw.text((left + PANEL // 2 - 3 * len(xlabel), top + PANEL + 18), xlabel, fill=(0, 0, 0))
    draw.text((x0 + 2, top - 14), ylabel, fill=(0, 0, 0))
    for i in range(6):
        frac = i / 5
        draw.text(
            (left - 2 + int(frac * PANEL) - 8, top + PANEL + 4), f"{frac:.1f}", fill=(0, 0, 0)
        )
        value = ylo + frac * (1 - ylo)
        draw.text((x0 + 6, top + PANEL - int(frac * PANEL) - 6), f"{value:.2f}", fill=(0, 0, 0))


def draw_report_png(
    path: Path,
    reliability: list[dict[str, float]],
    curve: dict[str, Any],
    ece: float,
    threshold: float,
) -> Path:
    """Write ``path``: left, accuracy per confidence bin (bars) against the diagonal; right,
    precision against coverage as the confidence threshold falls, with the point of
    ``threshold`` marked."""
    from PIL import Image, ImageDraw

    width, height = 2 * (PANEL + MARGIN) + 44, PANEL + 70
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, top = MARGIN, 28

    def xy(x0: int, fx: float, fy: float, ylo: float = 0.0) -> tuple[float, float]:
        fy = (fy - ylo) / (1 - ylo)
        return (x0 + MARGIN + fx * PANEL, top + PANEL - max(0.0, min(1.0, fy)) * PANEL)

    _frame(draw, 0, f"reliability (ECE {ece:.3f})", "confidence", "accuracy", 0.0)
    draw.line([xy(0, 0, 0), xy(0, 1, 1)], fill=(160, 160, 160))
    for b in reliability:
        x_lo, _ = xy(0, b["lo"], 0)
        x_hi, y_acc = xy(0, b["hi"], b["accuracy"])
        draw.rectangle([x_lo + 1, y_acc, x_hi - 1, top + PANEL], fill=(70, 110, 200))
        _, y_conf = xy(0, b["hi"], b["confidence"])
        draw.line([x_lo + 1, y_conf, x_hi - 1, y_conf], fill=(220, 60, 60), width=2)
        draw.text((x_lo + 1, y_acc - 12), str(b["count"]), fill=(0, 0, 0))
    draw.text((left + 6, top + 6), "bars: accuracy; red: mean confidence", fill=(0, 0, 0))

    x1, ylo = PANEL + MARGIN + 20, 0.8
    _frame(draw, x1, "risk-coverage", "coverage", "precision", ylo)
    points = [xy(x1, c, p, ylo) for c, p in zip(curve["coverage"], curve["precision"], strict=True)]
    if len(points) > 1:
        draw.line(points, fill=(70, 110, 200), width=2)
    marked = [
        (c, p)
        for t, c, p in zip(curve["threshold"], curve["coverage"], curve["precision"], strict=True)
        if t >= threshold
    ]
    if marked:
        cx, cy = xy(x1, marked[-1][0], marked[-1][1], ylo)
        draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], outline=(220, 60, 60), width=2)
        draw.text(
            (x1 + MARGIN + 6, top + PANEL - 16),
            f"at {threshold}: coverage {marked[-1][0]:.2f}, precision {marked[-1][1]:.3f}",
            fill=(0, 0, 0),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
