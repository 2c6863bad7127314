"""``scones train``: train locally with ``scones.training.local`` and print the report."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from scones.errors import EXIT_USAGE, CommandError, ErrorTable, user_errors


def _errors() -> ErrorTable:
    from scones.training.local import ModelPackageError
    from scones.training.script import TRAIN_MODULE, SourceDirNotFoundError

    kinds: list[type[BaseException]] = [ModelPackageError, SourceDirNotFoundError]
    train = sys.modules.get(TRAIN_MODULE)  # ml/train.py, once loaded: its TrainingDataError
    if train is not None:
        kinds.append(train.TrainingDataError)
    return [(tuple(kinds), EXIT_USAGE)]


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return {
        "pct": f"{100 * value:.1f} %",
        "f3": f"{value:.3f}",
        "s": f"{value:.1f} s",
        "ms": f"{value:.2f} ms",
        "kb": f"{value / 1024:.0f} KiB",
        "int": f"{value:,}",
        "ips": f"{value:,.0f} img/s",
    }[kind].replace(",", " ")


def format_report(report: dict[str, Any]) -> str:
    """The training report as a two-column table."""
    t = report.get("threshold", 0.93)
    rows = [
        ("test accuracy", _fmt(report.get("accuracy"), "pct")),
        (f"coverage (top prob >= {t})", _fmt(report.get("coverage"), "pct")),
        ("precision among covered", _fmt(report.get("precision_covered"), "pct")),
        ("calibration error (ECE)", _fmt(report.get("ece"), "f3")),
        ("test images", _fmt(report.get("n_test"), "int")),
        ("training images", _fmt(report.get("n_train"), "int")),
        ("training time", _fmt(report.get("train_seconds"), "s")),
        ("training CPU time", _fmt(report.get("train_cpu_seconds"), "s")),
        ("parameters", _fmt(report.get("parameters"), "int")),
        ("model size (ONNX)", _fmt(report.get("model_bytes"), "kb")),
        ("latency, 1 image (onnxruntime)", _fmt(report.get("latency_single_ms"), "ms")),
        ("throughput, batch 64", _fmt(report.get("throughput_batch64_img_s"), "ips")),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


@user_errors(_errors)
def run(args: argparse.Namespace) -> int:
    """Handler of ``scones train``."""
    from scones.training.local import train_local

    data: Path = args.data
    if not (data / "train.lst").is_file() or not (data / "test.lst").is_file():
        raise CommandError(
            f"{data} has no train.lst/test.lst; run `scones etl --output {data}` first"
        )
    extra = []
    for flag in ("batch_size", "lr", "width", "threads", "tta"):
        value = getattr(args, flag)
        if value is not None:
            extra += [f"--{flag.replace('_', '-')}", str(value)]
    report = train_local(
        data,
        args.model_dir,
        epochs=args.epochs,
        seed=args.seed,
        extra=extra,
        progress=not args.quiet,
    )
    print(format_report(report))
    print(f"wrote {args.model_dir / 'model.tar.gz'} and {args.model_dir / 'metrics.json'}")
    if args.json:
        print(json.dumps(report))
    return 0


def register(subparsers: Any) -> None:
    """Add ``scones train`` to the CLI."""
    parser = subparsers.add_parser(
        "train",
        help="train the classifier locally and write model.tar.gz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Train the bicycle/motorcycle classifier on the output of `scones etl` by running\n"
            "the SageMaker training script ml/train.py on this machine (CUDA when available),\n"
            "then pack OUT/model.tar.gz (model.onnx, classes.json, metrics.json, code/) as\n"
            "SageMaker does, print the report and write OUT/metrics.json.\n\n"
            "Defaults: ResNet-9 (width 16), 50 epochs, batch 64, AdamW 3e-3, crop+flip\n"
            "augmentation; about 1 minute on 2 idle CPU cores\n"
            "for 800 images. Deterministic for a given --seed on one machine.\n\n"
            "Example:\n"
            "  scones train --data data --model-dir model"
        ),
    )
    parser.add_argument("--data", required=True, type=Path, help="folder written by scones etl")
    parser.add_argument("--model-dir", required=True, type=Path, help="output folder")
    parser.add_argument("--epochs", type=int, help="training epochs (default 50)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 3e-3)")
    parser.add_argument("--width", type=int, help="network width (default 16)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument(
        "--tta", type=int, choices=(0, 1), help="mirror averaging at test time (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
