"""What the twin's commands print: the ``scones classify`` table, and JSON without image bytes."""

from __future__ import annotations

from typing import Any

from scones.twin.classify import REVIEW_ERROR, ClassifyReport

BYTES_FIELDS = frozenset({"image_data"})


def format_report(report: ClassifyReport) -> str:
    """The summary table ``scones classify`` prints."""
    counts = report.counts()
    total = counts["total"] or 1
    rows: list[tuple[str, int]] = [(f"classified: {k}", v) for k, v in counts["classified"].items()]
    rows.append((f"sent to review ({REVIEW_ERROR})", counts["review"]))
    rows.extend((f"failed: {k}", v) for k, v in counts["failed"].items())
    width = max(len(r[0]) for r in rows + [("outcome", 0)])
    lines = [f"{'outcome':<{width}}  {'images':>7}  {'share':>6}", "-" * (width + 17)]
    lines += [f"{name:<{width}}  {n:>7}  {n / total:>6.1%}" for name, n in rows]
    lines.append("-" * (width + 17))
    lines.append(f"{'total':<{width}}  {counts['total']:>7}  {'':>6}")
    rate = counts["total"] / report.seconds if report.seconds else 0.0
    lines.append(
        f"source s3://{report.bucket}/{report.prefix}  ({report.seconds:.1f}s, {rate:.1f} images/s)"
    )
    if report.skipped_files:
        lines.append(f"skipped {report.skipped_files} non-image file(s)")
    runs = f"executions started {report.started}"
    if report.restarted:
        runs += f" ({report.restarted} again after the sfn server lost them)"
    if report.resumed:
        runs += f"; {report.resumed} image(s) already done in an earlier run"
    lines.append(runs)
    if report.stopped:
        lines.append(
            f"STOPPED EARLY ({report.stopped}): {report.unfinished} of {report.images} images "
            "did not end; run the same command again to resume"
        )
    failed = [r for r in report.results if r.outcome == "failed"][:5]
    for r in failed:
        lines.append(f"  failed {r.key}: {r.error}: {(r.cause or '')[:120]}")
    return "\n".join(lines)


def redact(value: Any) -> Any:
    """``value`` with image bytes (``image_data``) replaced by a short note, for printing."""
    if isinstance(value, dict):
        return {
            k: f"<{len(v)} base64 characters>"
            if k in BYTES_FIELDS and isinstance(v, str)
            else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
