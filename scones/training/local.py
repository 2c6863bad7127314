"""``scones train``: run the SageMaker training script ``ml/train.py`` locally and package it.

The script runs in-process with the ``SM_*`` variables SageMaker would set, pointing at local
folders; its model folder is then packed into ``OUT/model.tar.gz`` exactly as SageMaker packs
``/opt/ml/model``, and the report is printed and written to ``OUT/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from scones.training.script import load_train_script

MODEL_FILES = ("model.onnx", "classes.json", "metrics.json", "code")


class ModelPackageError(Exception):
    """The training script did not leave a complete model folder."""


def package_model(model_dir: Path, dest: Path) -> Path:
    """Pack ``model_dir`` into ``dest`` (``model.tar.gz``) with the layout SageMaker loads."""
    missing = [name for name in MODEL_FILES if not (model_dir / name).exists()]
    if missing:
        raise ModelPackageError(f"{model_dir} lacks {', '.join(missing)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(model_dir).as_posix(), filter=clean)
    tmp.replace(dest)
    return dest


def train_local(
    data: Path,
    out: Path,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    extra: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on ``data`` (the ETL output) and write ``out/model.tar.gz`` + ``out/metrics.json``."""
    train = load_train_script()

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scones-train-", dir=out) as tmp:
        model_dir = Path(tmp) / "model"
        output_dir = Path(tmp) / "output"
        argv = [
            "--train",
            str(data),
            "--test",
            str(data),
            "--model-dir",
            str(model_dir),
            "--output-data-dir",
            str(output_dir),
            "--progress",
            "1" if progress else "0",
        ]
        if epochs is not None:
            argv += ["--epochs", str(epochs)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        argv += extra or []
        report = train.run(train.parse_args(argv, environ={}))
        package_model(model_dir, out / "model.tar.gz")
        shutil.copyfile(model_dir / "metrics.json", out / "metrics.json")
    return report


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


def run(args: argparse.Namespace) -> int:
    """Handler of ``scones train``."""
    train = load_train_script()

    data: Path = args.data
    if not (data / "train.lst").is_file() or not (data / "test.lst").is_file():
        print(
            f"scones train: {data} has no train.lst/test.lst; run `scones etl --output {data}` first",
            file=sys.stderr,
        )
        return 2
    extra = []
    for flag in ("batch_size", "lr", "width", "threads", "tta"):
        value = getattr(args, flag)
        if value is not None:
            extra += [f"--{flag.replace('_', '-')}", str(value)]
    try:
        report = train_local(
            data,
            args.model_dir,
            epochs=args.epochs,
            seed=args.seed,
            extra=extra,
            progress=not args.quiet,
        )
    except (train.TrainingDataError, ModelPackageError) as exc:
        print(f"scones train: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
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
