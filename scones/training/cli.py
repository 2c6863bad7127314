"""``scones train``: train locally with ``scones.training.local`` and print the report."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from scones.errors import EXIT_USAGE, CommandError, ErrorTable, user_errors

# the options passed on to ml/train.py when given (--epochs and --seed go through train_local)
FORWARDED_FLAGS = [
    "batch_size",
    "lr",
    "width",
    "members",
    "holdout",
    "cutmix",
    "threads",
    "workers",
    "tta",
]


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
        ("ensemble members", _fmt(report.get("hyperparameters", {}).get("members"), "int")),
        ("temperature (fitted on held-out)", _fmt(report.get("temperature"), "f3")),
        ("test accuracy", _fmt(report.get("accuracy"), "pct")),
        (f"coverage (top prob >= {t})", _fmt(report.get("coverage"), "pct")),
        ("precision among covered", _fmt(report.get("precision_covered"), "pct")),
        ("calibration error (ECE)", _fmt(report.get("ece"), "f3")),
        ("area under risk-coverage", _fmt(report.get("aurc"), "f3")),
        ("expected review rate (held-out)", _fmt(report.get("expected_review_rate"), "pct")),
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


def threshold_suggestion(report: dict[str, Any]) -> str:
    """One line: the threshold that would give 99 % precision on the held-out split."""
    found = report.get("suggested_threshold")
    n = (report.get("validation") or {}).get("n_test")
    if not found:
        return "threshold suggestion: none (no held-out images; train with --holdout > 0)"
    if found.get("threshold") is None:
        return (
            f"threshold suggestion: no threshold reaches 99 % precision on the {n} held-out images"
        )
    return (
        f"threshold suggestion: {found['threshold']:.3f} would give "
        f"{100 * found['precision']:.1f} % precision at {100 * found['coverage']:.1f} % coverage "
        f"on the {n} held-out images (the deployed threshold is a deployment parameter: "
        f"ConfidenceThreshold, {report.get('threshold', 0.93)})"
    )


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
    for flag in FORWARDED_FLAGS:
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
    print(threshold_suggestion(report))
    print(
        f"wrote {args.model_dir / 'model.tar.gz'}, {args.model_dir / 'metrics.json'} and "
        f"{args.model_dir / 'reliability.png'}"
    )
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
            "SageMaker does, print the report and the threshold that would give 99 % precision\n"
            "on the held-out images (a suggestion: the deployed threshold is a deployment\n"
            "parameter), and write OUT/metrics.json and OUT/reliability.png (reliability\n"
            "diagram and risk-coverage curve).\n\n"
            "Defaults: an ensemble of 3 ResNet-9 networks (width 8), each 200 epochs, batch 64,\n"
            "AdamW 3e-3, crop+flip augmentation and CutMix on half of the batches, trained on\n"
            "90 % of the training images; the other 10 % fit the temperature of the averaged\n"
            "softmax (one ONNX graph) and give the threshold suggestion. On a CPU the members\n"
            "train side by side, one process each (--workers), under bfloat16 autocast\n"
            "where the CPU has it natively (AMX / AVX-512 BF16). About 2-3 minutes on 2 idle\n"
            "cores for 800 images.\n"
            "Deterministic for a given --seed on one machine.\n\n"
            "Example:\n"
            "  scones train --data data --model-dir model"
        ),
    )
    parser.add_argument("--data", required=True, type=Path, help="folder written by scones etl")
    parser.add_argument("--model-dir", required=True, type=Path, help="output folder")
    parser.add_argument("--epochs", type=int, help="training epochs (default 200)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=int, help="batch size (default 64)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 3e-3)")
    parser.add_argument("--width", type=int, help="network width per member (default 8)")
    parser.add_argument(
        "--members", type=int, help="networks averaged in the exported graph (default 3)"
    )
    parser.add_argument(
        "--holdout",
        type=float,
        help="share of training images held out to fit the temperature (default 0.1)",
    )
    parser.add_argument(
        "--cutmix", type=float, help="share of batches that are CutMix-ed (default 0.5; 0: off)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    parser.add_argument(
        "--workers",
        type=int,
        help="CPU processes training members side by side, one thread each (default: one per "
        "member, up to 8, at most --threads when given; 1: members in turn)",
    )
    parser.add_argument(
        "--tta", type=int, choices=(0, 1), help="mirror averaging at test time (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
