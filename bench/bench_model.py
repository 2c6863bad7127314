"""Benchmark the model: accuracy, confidence, calibration, training time, size, latency.

Runs the real path (``scones.data.etl.extract`` -> ``scones.training.local.train_local`` -> ``code/inference.py``
from the packed model.tar.gz) on the shared bicycle/motorcycle archive, once per seed, and
prints one table: a row per seed, the median row, and SageMaker's built-in algorithm as the
reference the project set out to beat.

Usage: .venv/bin/python bench/bench_model.py [--seeds 0,1,2] [--epochs N] [--archive PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from shared_data import VEHICLES_ARCHIVE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_ARCHIVE = VEHICLES_ARCHIVE


def load_inference(model_dir: Path) -> ModuleType:
    """Import the shipped code/inference.py as the serving container does."""
    spec = importlib.util.spec_from_file_location(
        "bench_inference", model_dir / "code" / "inference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serving_latency(model_tar: Path, data: Path, workdir: Path) -> dict[str, float]:
    """Per-request latency through inference.py (PNG bytes in, JSON out) and batched throughput."""
    import numpy as np

    model_dir = workdir / "served"
    with tarfile.open(model_tar) as tar:
        tar.extractall(model_dir, filter="data")
    os.environ["SCONES_ORT_THREADS"] = "1"  # what the endpoint server runs
    inf = load_inference(model_dir)
    model = inf.model_fn(model_dir)
    rows = [line.split("\t") for line in (data / "test.lst").read_text().splitlines()]
    bodies = [(data / r[2]).read_bytes() for r in rows]
    labels = np.array([int(r[1]) for r in rows])
    for body in bodies[:20]:  # warm-up
        inf.output_fn(inf.predict_fn(inf.input_fn(body, "image/png"), model), "application/json")
    times, preds = [], []
    for _ in range(3):
        for body in bodies:
            t0 = time.perf_counter()
            out = inf.output_fn(
                inf.predict_fn(inf.input_fn(body, "image/png"), model), "application/json"
            )
            times.append(time.perf_counter() - t0)
            preds.append(int(np.argmax(json.loads(out))))
    decoded = [inf.input_fn(b, "image/png") for b in bodies]
    batch = (decoded * 2)[:64]
    btimes = []
    for _ in range(30):
        t0 = time.perf_counter()
        inf.predict_batch_fn(batch, model)
        btimes.append(time.perf_counter() - t0)
    served_acc = float((np.array(preds[: len(labels)]) == labels).mean())
    return {
        "request_ms": statistics.median(times) * 1e3,
        "batch64_img_s": 64 / statistics.median(btimes),
        "served_accuracy": served_acc,
    }


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", type=Path, default=SHARED_ARCHIVE)
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds (default %(default)s)"
    )
    parser.add_argument("--epochs", type=int, help="default: train.py's default")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    if not args.archive.is_file():
        print(f"bench_model: archive not found: {args.archive}", file=sys.stderr)
        return 2

    from scones.data.etl import extract
    from scones.training.local import train_local

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    load_before = os.getloadavg()[0]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        work = Path(tmp)
        data = work / "data"
        t0 = time.perf_counter()
        extract(args.archive.resolve(), data, progress=False)
        etl_s = time.perf_counter() - t0
        for seed in seeds:
            extra = ["--threads", str(args.threads)] if args.threads else []
            print(f"training seed {seed} ...", file=sys.stderr, flush=True)
            report = train_local(
                data,
                work / f"seed{seed}",
                epochs=args.epochs,
                seed=seed,
                extra=extra,
                progress=False,
            )
            serving = serving_latency(
                work / f"seed{seed}" / "model.tar.gz", data, work / f"serve{seed}"
            )
            plain = (
                report.get("without_tta")
                or report.get("with_tta")
                or {"accuracy": float("nan"), "coverage": float("nan")}
            )
            results.append(
                {
                    **report,
                    **serving,
                    "seed": seed,
                    "acc_no_mirror": plain["accuracy"],
                    "cov_no_mirror": plain["coverage"],
                }
            )
    load_after = os.getloadavg()[0]

    headers = [
        "run",
        "accuracy",
        "coverage@.93",
        "precision",
        "ECE",
        "train s",
        "CPU s",
        "params",
        "ONNX KiB",
        "model 1 img ms",
        "request ms",
        "batch64 img/s",
        "acc/cov other",
    ]

    def cells(name: str, r: dict[str, Any]) -> list[str]:
        return [
            name,
            f"{r['accuracy']:.3f}",
            f"{r['coverage']:.3f}",
            "n/a" if r["precision_covered"] is None else f"{r['precision_covered']:.3f}",
            f"{r['ece']:.3f}",
            f"{r['train_seconds']:.1f}",
            f"{r['train_cpu_seconds']:.1f}",
            f"{r['parameters']:,}",
            f"{r['model_bytes'] / 1024:.0f}",
            f"{r['latency_single_ms']:.2f}",
            f"{r['request_ms']:.2f}",
            f"{r['batch64_img_s']:,.0f}",
            f"{r['acc_no_mirror']:.3f}/{r['cov_no_mirror']:.3f}",
        ]

    table = [cells(f"seed {r['seed']}", r) for r in results]
    keys = [
        "accuracy",
        "coverage",
        "precision_covered",
        "ece",
        "train_seconds",
        "train_cpu_seconds",
        "parameters",
        "model_bytes",
        "latency_single_ms",
        "request_ms",
        "batch64_img_s",
        "acc_no_mirror",
        "cov_no_mirror",
    ]
    median = {
        k: statistics.median([r[k] for r in results if r[k] is not None] or [float("nan")])
        for k in keys
    }
    table.append(cells("median", median))
    table.append(
        [
            "SageMaker built-in (ref.)",
            "0.855",
            "-",
            "-",
            "-",
            "380-580*",
            *["-"] * (len(headers) - 6),
        ]
    )
    widths = [max(len(row[i]) for row in [headers, *table]) for i in range(len(headers))]
    r0 = results[0]
    print()
    print(
        f"bicycle vs motorcycle, {r0['n_train']} train / {r0['n_test']} test images "
        f"({args.archive.name}); epochs {r0['hyperparameters']['epochs']}, "
        f"{r0['device']}, torch threads {r0['torch_threads']}, onnxruntime 1 thread"
    )
    print(fmt_row(headers, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for row in table:
        print(fmt_row(row, widths))
    print()
    print(
        f"ETL {etl_s:.2f} s for {r0['n_train'] + r0['n_test']} images; served accuracy "
        f"(PNG -> inference.py) equals the report: "
        f"{all(abs(r['served_accuracy'] - r['accuracy']) < 1e-9 for r in results)}"
    )
    print(
        f"load average {load_before:.1f} before, {load_after:.1f} after on {os.cpu_count()} cores "
        "(training time grows with other load)"
    )
    print(
        "* SageMaker built-in image-classification (ResNet-152, 30 epochs, V100): billed seconds, "
        "validation accuracy; reference, not measured here"
    )
    print(
        "coverage = share of test images with top probability >= 0.93; precision among those; "
        "ECE with 15 bins; 'model 1 img' = ONNX batch 1; 'request' = PNG decode + model + JSON"
    )
    print(
        "CPU s = training process CPU time; last column: the same network evaluated with the "
        "other test-time setting (mirror averaging on when the default is off)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
