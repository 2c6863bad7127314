"""The report of ``scones cost``: one dictionary (what ``--json`` prints) and its text form."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from scones.cost.options import PerImage, Priced, break_evens
from scones.cost.pricing import PriceTable
from scones.cost.usage import Usage
from scones.errors import CommandError


def read_training_report(path: Path) -> dict[str, Any]:
    """``metrics.json`` from a file, a model folder or a ``model.tar.gz``."""
    try:
        if path.is_dir():
            path = path / "metrics.json"
        if path.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(path, "r:gz") as archive:
                member = archive.extractfile("metrics.json")
                if member is None:
                    raise KeyError("metrics.json")
                return dict(json.loads(member.read().decode("utf-8")))
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, KeyError, ValueError, tarfile.TarError) as exc:
        raise CommandError(f"cannot read the training report from {path}: {exc}") from None


def training_cost(
    prices: PriceTable, instance_type: str, seconds: float | None, where: str
) -> dict[str, Any]:
    """One training run on ``instance_type`` for ``seconds`` (None: unknown)."""
    if seconds is None:
        return {"instance_type": instance_type, "seconds": None, "usd": None, "from": where}
    usd = seconds / 3600 * prices.instance_hour("training", instance_type)
    return {"instance_type": instance_type, "seconds": seconds, "usd": round(usd, 4), "from": where}


def workflow_per_1000(use: PerImage, prices: PriceTable) -> dict[str, float]:
    """Step Functions alone per 1,000 images: Standard and Express."""
    standard = use.transitions * prices.usd("stepfunctions.standard.transition")
    express = prices.usd("stepfunctions.express.request") + use.express_gb_seconds * prices.usd(
        "stepfunctions.express.gb_second"
    )
    return {"standard_usd": round(standard * 1000, 6), "express_usd": round(express * 1000, 6)}


def build_report(
    *,
    state_machine: str,
    state_machine_type: str,
    since: str | None,
    usage: Usage,
    use: PerImage,
    priced: list[Priced],
    prices: PriceTable,
    images_per_month: int,
    training: dict[str, Any],
) -> dict[str, Any]:
    """Everything ``scones cost`` found, as JSON-able values."""
    return {
        "state_machine": state_machine,
        "state_machine_type": state_machine_type,
        "since": since,
        "usage": usage.as_dict(),
        "per_image": {
            "state_transitions": round(use.transitions, 4),
            "express_gb_seconds": round(use.express_gb_seconds, 6),
            "endpoint_calls": round(use.endpoint_calls, 4),
            "endpoint_bytes": round(use.endpoint_bytes, 1),
            "inference_ms": round(use.inference_ms, 3),
            "s3_gets": round(use.s3_gets, 4),
            "s3_puts": round(use.s3_puts, 4),
            "stored_bytes": round(use.stored_bytes, 1),
        },
        "workflow_per_1000_images": workflow_per_1000(use, prices),
        "images_per_month": images_per_month,
        "options": [p.as_dict(images_per_month) for p in priced],
        "break_even": break_evens(priced),
        "training": training,
        "prices": {
            "region": prices.region,
            "where": prices.where,
            "read": prices.read,
            "table": prices.sources(),
        },
    }


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal."""
    u, per = report["usage"], report["per_image"]
    n = report["images_per_month"]
    lines = [
        f"measured: {u['executions']} executions of {report['state_machine']}"
        f" ({report['state_machine_type']})"
        + (f" since {report['since']}" if report["since"] else " (every execution listed)"),
        f"  statuses: {', '.join(f'{k} {v}' for k, v in u['statuses'].items())}",
        f"  state transitions: {u['state_transitions']} ({u['state_entries']} state entries +"
        f" {u['retries']} retries) = {per['state_transitions']:g} per image",
    ]
    for logical_id, fn in u["lambda"].items():
        lines.append(
            f"  {logical_id}: {fn['invocations']} invocations, {fn['billed_ms']} ms billed"
            f" (median {fn['median_ms']} ms), {fn['memory_mb']} MB {fn['architecture']}"
        )
    for name, calls in u["unknown_functions"].items():
        lines.append(f"  {name}: {calls} invocations (not in template.yaml: not priced)")
    lines += [
        f"  endpoint: {u['endpoint_invocations']} invocations, {u['endpoint_bytes_in']:,} bytes in,"
        f" {u['endpoint_bytes_out']:,} bytes out",
        f"  Data Capture: {u['capture_objects']} objects, {u['capture_bytes']:,} bytes",
        f"  S3: {u['s3_get_requests']} GET (image reads); per image {per['s3_puts']:g} PUT"
        " (the upload + capture)",
        "",
        "Step Functions per 1,000 images: Standard"
        f" {_money(report['workflow_per_1000_images']['standard_usd'])}, Express"
        f" {_money(report['workflow_per_1000_images']['express_usd'])}",
        "",
        f"{'option':<58} {'per 1,000':>10} {'floor/mo':>10} {f'{n:,}/mo':>12}",
    ]
    for o in report["options"]:
        lines.append(
            f"{o['name']:<58} {_money(o['per_1000_images_usd']):>10}"
            f" {_money(o['floor_usd']):>10} {_money(o['monthly_usd']):>12}"
        )
    notes: dict[str, list[str]] = {}
    for o in report["options"]:
        for note in o["notes"]:
            notes.setdefault(note, []).append(o["name"])
    for note, names in notes.items():
        lines.append(f"  note ({len(names)} option{'s' if len(names) > 1 else ''}): {note}")
    if report["break_even"]:
        lines.append("break-even (images a month):")
        lines.extend(
            f"  {c['a']}  =  {c['b']}: {c['images_per_month']:,} ({_money(c['monthly_usd'])}/mo)"
            for c in report["break_even"]
        )
    t = report["training"]
    if t["usd"] is not None:
        lines.append(
            f"training: {t['seconds']:g} s on {t['instance_type']} = {_money(t['usd'])} ({t['from']})"
        )
    else:
        lines.append(f"training: not priced ({t['from']})")
    p = report["prices"]
    lines.append(f"prices: {p['where']} ({p['region']}, read {p['read']}); no free tier applied")
    return "\n".join(lines)
